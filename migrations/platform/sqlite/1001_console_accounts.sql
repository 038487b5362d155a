-- Platform data of the console: users, organisations (teams), memberships and invites.
-- Sessions live in the session store's own table (created by tower-sessions' migrate()).
--
-- The console's own migrations: versions from 1001, so they never collide with the
-- cluster metadata's (migrations/sqlite, migrations/postgres) in the shared
-- _sqlx_migrations table. Until the split these tables came with the broker's
-- 0005_console_accounts; IF NOT EXISTS lets a database created then upgrade in place.

CREATE TABLE IF NOT EXISTS users (
    id            TEXT   PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS orgs (
    id            TEXT   PRIMARY KEY,
    name          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- role: owner | admin | member
CREATE TABLE IF NOT EXISTS memberships (
    org_id        TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id       TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user ON memberships (user_id);

-- A one-time invite link. Only the SHA-256 of its token is stored.
CREATE TABLE IF NOT EXISTS invites (
    id            TEXT   PRIMARY KEY,
    org_id        TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    token_hash    TEXT   NOT NULL UNIQUE,
    role          TEXT   NOT NULL,
    note          TEXT   NOT NULL DEFAULT '',
    created_by    TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms    BIGINT,
    used_by       TEXT,
    revoked_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS invites_org ON invites (org_id);
