-- Platform data the Kafka port needs: virtual clusters and their API keys.
-- (Users, teams and invites arrive with the console.)

CREATE TABLE virtual_clusters (
    id                   TEXT   PRIMARY KEY,
    org_id               TEXT   NOT NULL DEFAULT '',
    name                 TEXT   NOT NULL,
    created_at_ms        BIGINT NOT NULL,
    auto_create_topics   BIGINT NOT NULL DEFAULT 1,
    default_partitions   BIGINT NOT NULL DEFAULT 1,
    default_retention_ms BIGINT NOT NULL DEFAULT 604800000,
    UNIQUE (org_id, name)
);

-- An API key is a SASL credential (PLAIN and SCRAM) for one virtual cluster. The secret is
-- never stored: only SCRAM's salted keys, from which PLAIN is checked too.
CREATE TABLE api_keys (
    id              TEXT   PRIMARY KEY,
    cluster_id      TEXT   NOT NULL,
    name            TEXT   NOT NULL,
    created_by      TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    revoked_at_ms   BIGINT,
    iterations      BIGINT NOT NULL,
    salt_256        TEXT   NOT NULL,
    stored_key_256  TEXT   NOT NULL,
    server_key_256  TEXT   NOT NULL,
    salt_512        TEXT   NOT NULL,
    stored_key_512  TEXT   NOT NULL,
    server_key_512  TEXT   NOT NULL
);
CREATE INDEX api_keys_cluster ON api_keys (cluster_id);
