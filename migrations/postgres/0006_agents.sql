-- The agent registry and job leases (scale-out).
--
-- agents: one row per leased Kafka node id. An agent heartbeats its row; a row whose
-- last_seen_ms is older than the session timeout is expired and another agent may take the
-- id over (the old holder learns it on its next heartbeat). agent_id is a random id per
-- process, so a restarted agent is a new holder. roles is comma-separated (produce,fetch,…).
CREATE TABLE agents (
    node_id       BIGINT PRIMARY KEY,
    agent_id      TEXT   NOT NULL,
    host          TEXT   NOT NULL,
    port          BIGINT NOT NULL,
    rack          TEXT,
    agent_group   TEXT   NOT NULL,
    roles         TEXT   NOT NULL,
    version       TEXT   NOT NULL,
    started_at_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL
);
CREATE INDEX agents_last_seen ON agents (last_seen_ms);

-- job_leases: who runs a singleton job until when. token is the fencing token: it grows by
-- one at every new tenure (a change of holder, or the holder taking its lease back after it
-- expired), and rows are never deleted, so a token is never handed out twice for a job.
CREATE TABLE job_leases (
    job           TEXT   PRIMARY KEY,
    holder        TEXT   NOT NULL,
    token         BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
