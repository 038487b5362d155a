-- Transactional ids and producer ids belong to a virtual cluster: the same transactional
-- id in two clusters names two producers. Rows from before this migration are given to
-- `default`. SQLite cannot drop the old UNIQUE (transactional_id) constraint in place, so
-- the table is rebuilt.
CREATE TABLE producer_ids_by_cluster (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster          TEXT NOT NULL DEFAULT 'default',
    transactional_id TEXT,
    epoch            BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL
);
INSERT INTO producer_ids_by_cluster (id, cluster, transactional_id, epoch, updated_at_ms)
    SELECT id, 'default', transactional_id, epoch, updated_at_ms FROM producer_ids;
DROP TABLE producer_ids;
ALTER TABLE producer_ids_by_cluster RENAME TO producer_ids;
CREATE UNIQUE INDEX producer_ids_transactional ON producer_ids (cluster, transactional_id);
