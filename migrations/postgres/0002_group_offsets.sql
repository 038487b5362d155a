-- Committed consumer-group offsets. Keyed by topic name, as Kafka does; rows of a deleted
-- topic are removed with it.
CREATE TABLE group_offsets (
    cluster          TEXT   NOT NULL,
    group_id         TEXT   NOT NULL,
    topic            TEXT   NOT NULL,
    partition        BIGINT NOT NULL,
    committed_offset BIGINT NOT NULL,
    leader_epoch     BIGINT NOT NULL,
    metadata         TEXT,
    commit_time_ms   BIGINT NOT NULL,
    PRIMARY KEY (cluster, group_id, topic, partition)
);
CREATE INDEX group_offsets_topic ON group_offsets (cluster, topic);
