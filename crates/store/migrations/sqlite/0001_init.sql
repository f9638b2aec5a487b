-- Accord's SQLite schema, version 1.
-- Times are Unix milliseconds (UTC). JSON columns hold the model's wire format.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

INSERT INTO workspaces (id, name, created_at)
VALUES ('00000000-0000-0000-0000-000000000001', 'default', 0);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id),
    queue            TEXT NOT NULL,
    priority         INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    state            TEXT NOT NULL CHECK (state IN
                        ('scheduled', 'available', 'running', 'retrying', 'succeeded', 'dead', 'cancelled')),
    engine           TEXT NOT NULL,
    steps            TEXT NOT NULL,
    labels           TEXT NOT NULL,
    retry            TEXT NOT NULL,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_seconds  INTEGER NOT NULL CHECK (timeout_seconds >= 1),
    -- Attempts started so far; also the fencing token of the current lease.
    -- It only ever grows, so a stale worker's token can never match again.
    attempt          INTEGER NOT NULL DEFAULT 0,
    -- Attempts that do not count toward max_attempts (released, or before a requeue).
    attempt_offset   INTEGER NOT NULL DEFAULT 0,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    worker_id        TEXT,
    lease_expires_at INTEGER,
    result           TEXT,
    last_error       TEXT,
    idempotency_key  TEXT,
    request_hash     TEXT,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
) STRICT;

-- The claim path: only claimable rows, in claim order.
CREATE INDEX jobs_claimable ON jobs (priority, run_at, id)
    WHERE state IN ('scheduled', 'available', 'retrying');
-- The reaper: only running rows, by lease expiry.
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'running';
-- Retention and throughput: only finished rows.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('succeeded', 'dead', 'cancelled');
-- Listing, newest first, optionally by state.
CREATE INDEX jobs_workspace ON jobs (workspace_id, id);
CREATE INDEX jobs_workspace_state ON jobs (workspace_id, state, id);
-- Idempotency keys are unique per workspace.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (workspace_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE job_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    from_state   TEXT,
    to_state     TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    worker_id    TEXT,
    message      TEXT
) STRICT;

CREATE INDEX job_events_job ON job_events (job_id, id);
