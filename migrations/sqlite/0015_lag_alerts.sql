-- Lag alerts: a rule per consumer group of a virtual cluster that fires while the group's
-- max time lag stays above max_time_lag_seconds for for_seconds, and posts to webhook_url
-- when it fires and when it resolves. The rule's state is written by the lag job after each
-- pass, so an agent taking the job's lease over continues where the last one stopped:
-- state 'ok' or 'firing', firing_since_ms while firing, above_since_ms while the lag is
-- above the threshold, the last lag seen and when. Rows go with their cluster
-- (store/clusters.rs).
CREATE TABLE lag_alerts (
    id                    TEXT             NOT NULL PRIMARY KEY,
    cluster               TEXT             NOT NULL,
    group_id              TEXT             NOT NULL,
    max_time_lag_seconds  DOUBLE PRECISION NOT NULL,
    for_seconds           BIGINT           NOT NULL,
    webhook_url           TEXT             NOT NULL,
    created_at_ms         BIGINT           NOT NULL,
    state                 TEXT             NOT NULL DEFAULT 'ok',
    above_since_ms        BIGINT,
    firing_since_ms       BIGINT,
    last_time_lag_seconds DOUBLE PRECISION,
    evaluated_at_ms       BIGINT
);
CREATE INDEX lag_alerts_cluster ON lag_alerts (cluster, group_id);
