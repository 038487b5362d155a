-- Cluster metadata (hot path): topics, partitions, segment files, batch rows, producer state.
-- Every integer is 64-bit so one Rust type reads both backends.

CREATE TABLE cluster_info (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE topics (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster         TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    topic_uuid      TEXT    NOT NULL UNIQUE,
    partition_count BIGINT  NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    UNIQUE (cluster, name)
);

CREATE TABLE topic_configs (
    topic_id BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    key      TEXT   NOT NULL,
    value    TEXT   NOT NULL,
    PRIMARY KEY (topic_id, key)
);

CREATE TABLE partitions (
    topic_id         BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    partition        BIGINT NOT NULL,
    next_offset      BIGINT NOT NULL DEFAULT 0,
    log_start_offset BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
);

CREATE TABLE segment_files (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    object_key    TEXT    NOT NULL UNIQUE,
    size_bytes    BIGINT  NOT NULL,
    agent_id      TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL
);

-- One row per stored record batch. The batch bytes live in the segment file at
-- [byte_offset, byte_offset + byte_len); base_offset is patched in when served.
CREATE TABLE batches (
    topic_id      BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    partition     BIGINT NOT NULL,
    base_offset   BIGINT NOT NULL,
    last_offset   BIGINT NOT NULL,
    file_id       BIGINT NOT NULL REFERENCES segment_files (id),
    byte_offset   BIGINT NOT NULL,
    byte_len      BIGINT NOT NULL,
    record_count  BIGINT NOT NULL,
    max_timestamp BIGINT NOT NULL,
    producer_id   BIGINT NOT NULL,
    -- 1 for batches of a transactional producer (transactions land later).
    transactional BIGINT NOT NULL DEFAULT 0,
    committed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition, base_offset)
);
CREATE INDEX batches_file ON batches (file_id);

CREATE TABLE producer_ids (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    transactional_id TEXT UNIQUE,
    epoch            BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL
);

-- Idempotent-producer state per partition: the last sequence and the last five batches
-- (first_seq:last_seq:base_offset, comma separated) so retried batches are answered with
-- their original offsets.
CREATE TABLE producer_state (
    topic_id      BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    partition     BIGINT NOT NULL,
    producer_id   BIGINT NOT NULL,
    epoch         BIGINT NOT NULL,
    last_sequence BIGINT NOT NULL,
    recent        TEXT   NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition, producer_id)
);
