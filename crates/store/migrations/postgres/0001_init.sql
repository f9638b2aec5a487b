-- Accord's PostgreSQL schema, version 1.
-- Times are timestamptz (microsecond precision). JSON columns hold the
-- model's wire format as jsonb.

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL
);

INSERT INTO workspaces (id, name, created_at)
VALUES ('00000000-0000-0000-0000-000000000001', 'default', '1970-01-01T00:00:00Z');

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL REFERENCES workspaces (id),
    queue            text NOT NULL,
    priority         smallint NOT NULL CHECK (priority BETWEEN 0 AND 3),
    state            text NOT NULL CHECK (state IN
                        ('scheduled', 'available', 'running', 'retrying', 'succeeded', 'dead', 'cancelled')),
    engine           text NOT NULL,
    steps            jsonb NOT NULL,
    labels           jsonb NOT NULL,
    retry            jsonb NOT NULL,
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    timeout_seconds  integer NOT NULL CHECK (timeout_seconds >= 1),
    -- Attempts started so far; also the fencing token of the current lease.
    -- It only ever grows, so a stale worker's token can never match again.
    attempt          integer NOT NULL DEFAULT 0,
    -- Attempts that do not count toward max_attempts (released, or before a requeue).
    attempt_offset   integer NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    worker_id        text,
    lease_expires_at timestamptz,
    result           jsonb,
    last_error       jsonb,
    idempotency_key  text,
    request_hash     text,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);

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
    id           bigserial PRIMARY KEY,
    workspace_id uuid NOT NULL,
    job_id       uuid NOT NULL,
    at           timestamptz NOT NULL,
    kind         text NOT NULL,
    from_state   text,
    to_state     text NOT NULL,
    attempt      integer NOT NULL,
    worker_id    text,
    message      text
);

CREATE INDEX job_events_job ON job_events (job_id, id);
