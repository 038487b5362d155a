-- Client quotas per virtual cluster, Kafka's `user=<key id>` entity: one row per key and
-- quota name (producer_byte_rate, consumer_byte_rate), the value in bytes per second.
CREATE TABLE client_quotas (
    cluster     TEXT             NOT NULL,
    entity_user TEXT             NOT NULL,
    quota_key   TEXT             NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (cluster, entity_user, quota_key)
);
