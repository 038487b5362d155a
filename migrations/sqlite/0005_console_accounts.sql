-- Platform data of the console: users, organisations (teams), memberships and invites.
-- Sessions live in the session store's own table (created by tower-sessions' migrate()).

CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE orgs (
    id            TEXT   PRIMARY KEY,
    name          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- role: owner | admin | member
CREATE TABLE memberships (
    org_id        TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id       TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role          TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- A one-time invite link. Only the SHA-256 of its token is stored.
CREATE TABLE invites (
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
CREATE INDEX invites_org ON invites (org_id);
