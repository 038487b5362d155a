-- Offset resets from an agent that does not coordinate the group: the resetting agent asks
-- for a hold ('requested'); the coordinating agent holds the group empty in memory (joins
-- wait) and answers 'granted', or 'refused' with the member count in detail; the resetting
-- agent commits the new offsets and deletes the row, which ends the hold. A row past
-- expires_at_ms is dead whoever wrote it (its agent crashed mid-reset).
CREATE TABLE group_holds (
    cluster       TEXT   NOT NULL,
    group_id      TEXT   NOT NULL,
    holder        TEXT   NOT NULL,
    state         TEXT   NOT NULL,
    detail        BIGINT NOT NULL DEFAULT 0,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (cluster, group_id)
);
