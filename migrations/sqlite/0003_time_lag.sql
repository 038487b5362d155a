-- Timestamp index: which offsets were committed in which minutes (broker clock), per
-- partition. Old rows are folded into coarser ones by the merge job.
CREATE TABLE timestamp_index (
    topic_id     BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    partition    BIGINT NOT NULL,
    minute_start BIGINT NOT NULL,
    base_offset  BIGINT NOT NULL,
    offset_count BIGINT NOT NULL,
    minute_count BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (topic_id, partition, minute_start)
);

-- Per-group lag history at one-minute resolution, kept for a bounded time, for charts.
CREATE TABLE lag_history (
    cluster         TEXT   NOT NULL,
    group_id        TEXT   NOT NULL,
    minute_start    BIGINT NOT NULL,
    max_time_lag_ms BIGINT NOT NULL,
    offset_lag      BIGINT NOT NULL,
    PRIMARY KEY (cluster, group_id, minute_start)
);
