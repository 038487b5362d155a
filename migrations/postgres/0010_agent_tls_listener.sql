-- The advertised address of an agent's Kafka TLS listener (SSL and SASL_SSL), NULL when
-- it has none. Clients that came in over TLS are given these addresses in Metadata,
-- FindCoordinator and DescribeCluster.
ALTER TABLE agents ADD COLUMN tls_host TEXT;
ALTER TABLE agents ADD COLUMN tls_port BIGINT;
