-- Key compaction (cleanup.policy=compact), broker/src/key_compaction.rs.
-- cleaned_offset: every batch below it was compacted by a pass whose key map reached at
-- least this offset (Kafka's "first dirty offset"); batches from here on are the dirty
-- part that decides when the next pass is due (min.cleanable.dirty.ratio).
-- tombstones_at_ms: the oldest commit time of a batch below cleaned_offset that still
-- holds a tombstone or a transaction marker (NULL: none), so a pass runs when they pass
-- delete.retention.ms even if nothing new was written.
ALTER TABLE partitions ADD COLUMN cleaned_offset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE partitions ADD COLUMN tombstones_at_ms BIGINT;
