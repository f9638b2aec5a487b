-- Accord's SQLite schema, version 2: API keys and the audit log.

CREATE TABLE api_keys (
    -- The public part of the key (acc_<id>_<secret>).
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    name               TEXT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'worker')),
    -- SHA-256 of the secret, hex. The secret itself is never stored.
    secret_hash        TEXT NOT NULL,
    rate_burst         INTEGER,
    rate_per_second    REAL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER,
    revoked_at         INTEGER,
    last_used_at       INTEGER,
    CHECK ((rate_burst IS NULL) = (rate_per_second IS NULL))
) STRICT;

CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id  TEXT NOT NULL,
    at            INTEGER NOT NULL,
    key_id        TEXT,
    role          TEXT,
    action        TEXT NOT NULL,
    route         TEXT NOT NULL,
    target        TEXT,
    outcome       TEXT NOT NULL,
    status        INTEGER NOT NULL,
    client_addr   TEXT,
    detail        TEXT
) STRICT;

CREATE INDEX audit_log_workspace ON audit_log (workspace_id, id);
CREATE INDEX audit_log_at ON audit_log (at);
