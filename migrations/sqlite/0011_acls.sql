-- Kafka ACLs per virtual cluster, and the cluster setting that turns them on. With
-- acls_enabled = 0 every key of the cluster may do everything; the bindings are kept.
-- Enum columns hold Kafka's wire values (resource type 2 topic, 3 group, 4 cluster,
-- 5 transactional id; pattern 3 literal, 4 prefixed; permission 2 deny, 3 allow).
ALTER TABLE virtual_clusters ADD COLUMN acls_enabled BIGINT NOT NULL DEFAULT 0;

CREATE TABLE acls (
    cluster       TEXT   NOT NULL,
    resource_type BIGINT NOT NULL,
    resource_name TEXT   NOT NULL,
    pattern_type  BIGINT NOT NULL,
    principal     TEXT   NOT NULL,
    host          TEXT   NOT NULL,
    operation     BIGINT NOT NULL,
    permission    BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (cluster, resource_type, resource_name, pattern_type, principal, host, operation, permission)
);
