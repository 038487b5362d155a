-- Transactional ids and producer ids belong to a virtual cluster: the same transactional
-- id in two clusters names two producers. Rows from before this migration are given to
-- `default`.
ALTER TABLE producer_ids ADD COLUMN cluster TEXT NOT NULL DEFAULT 'default';
ALTER TABLE producer_ids DROP CONSTRAINT producer_ids_transactional_id_key;
CREATE UNIQUE INDEX producer_ids_transactional ON producer_ids (cluster, transactional_id);
