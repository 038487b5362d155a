-- Batches stored in the database instead of the bucket: the internal __consumer_offsets
-- topic's records (one record per batch), appended in the transaction that changes
-- group_offsets. A newer record of a key replaces the older one (the topic is always
-- compacted), so record_key is indexed. data holds the batch with base offset 0.
CREATE TABLE inline_batches (
    topic_id        BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    partition       BIGINT NOT NULL,
    base_offset     BIGINT NOT NULL,
    record_key      BYTEA   NOT NULL,
    data            BYTEA   NOT NULL,
    committed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition, base_offset)
);
CREATE INDEX inline_batches_key ON inline_batches (topic_id, partition, record_key);
