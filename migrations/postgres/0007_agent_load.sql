-- What each agent reports about its load at every heartbeat (the console's Agents page):
-- bytes per second produced to and fetched from it over its last few seconds, and the
-- bytes its produce and fetch gates hold right now.
ALTER TABLE agents ADD COLUMN produce_bytes_per_s BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN fetch_bytes_per_s BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN inflight_bytes BIGINT NOT NULL DEFAULT 0;
