-- Transactions (KIP-98): the coordinator's state per transactional id lives on its
-- producer_ids row, so any agent can take a coordinator over after a crash.
-- txn_state is Kafka's name of the state: Empty, Ongoing, CompleteCommit, CompleteAbort
-- (the Prepare states never outlive the SQL transaction that ends a transaction).
ALTER TABLE producer_ids ADD COLUMN txn_state TEXT NOT NULL DEFAULT 'Empty';
ALTER TABLE producer_ids ADD COLUMN txn_timeout_ms BIGINT NOT NULL DEFAULT 60000;
-- When the current transaction became Ongoing (its timeout counts from there).
ALTER TABLE producer_ids ADD COLUMN txn_started_at_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX producer_ids_open_txns ON producer_ids (txn_state, txn_started_at_ms);

-- The partitions of each open transaction. first_offset is the offset of the
-- transaction's first batch in the partition (NULL until one lands): the last stable
-- offset of a partition is the least first_offset of its rows.
CREATE TABLE txn_partitions (
    producer_id  BIGINT NOT NULL,
    topic_id     BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    partition    BIGINT NOT NULL,
    first_offset BIGINT,
    PRIMARY KEY (producer_id, topic_id, partition)
);
CREATE INDEX txn_partitions_open ON txn_partitions (topic_id, partition, first_offset);

-- Aborted transactions per partition, [first_offset, last_offset] (last_offset is the
-- abort marker), listed in read_committed fetches so clients drop their records.
CREATE TABLE aborted_txns (
    topic_id     BIGINT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    partition    BIGINT NOT NULL,
    producer_id  BIGINT NOT NULL,
    first_offset BIGINT NOT NULL,
    last_offset  BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition, last_offset)
);

-- Offsets committed inside a transaction (TxnOffsetCommit): moved into group_offsets by
-- the commit that ends it, dropped by an abort.
CREATE TABLE txn_offsets (
    producer_id      BIGINT NOT NULL,
    cluster          TEXT   NOT NULL,
    group_id         TEXT   NOT NULL,
    topic            TEXT   NOT NULL,
    partition        BIGINT NOT NULL,
    committed_offset BIGINT NOT NULL,
    leader_epoch     BIGINT NOT NULL,
    metadata         TEXT,
    PRIMARY KEY (producer_id, group_id, topic, partition)
);
CREATE INDEX txn_offsets_group ON txn_offsets (cluster, group_id);

-- 1 for control batches (transaction markers), which carry no data records.
ALTER TABLE batches ADD COLUMN control BIGINT NOT NULL DEFAULT 0;
