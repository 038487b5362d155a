-- Consumer groups as their coordinating agent sees them, for the console on other agents:
-- the coordinator writes a group's row (and its members) when the group changes and
-- deletes it when the group leaves it. A row whose agent_id is not a live agent is stale
-- and ignored. Member metadata and assignment are base64 of the protocol bytes.
CREATE TABLE group_snapshots (
    cluster       TEXT   NOT NULL,
    group_id      TEXT   NOT NULL,
    agent_id      TEXT   NOT NULL,
    phase         TEXT   NOT NULL,
    generation    BIGINT NOT NULL,
    protocol_type TEXT   NOT NULL,
    protocol      TEXT   NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (cluster, group_id)
);

CREATE TABLE group_snapshot_members (
    cluster     TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    member_id   TEXT NOT NULL,
    instance_id TEXT,
    client_id   TEXT NOT NULL,
    client_host TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    assignment  TEXT NOT NULL,
    PRIMARY KEY (cluster, group_id, member_id)
);
