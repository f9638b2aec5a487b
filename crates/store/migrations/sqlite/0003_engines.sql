-- Accord's SQLite schema, version 3: which engine an attempt runs on, and
-- which engine each domain is known to need.

-- The engine the next attempt runs on: the job's own for `http` and
-- `browser` jobs; for `auto` jobs, `http` until the page shows it needs a
-- browser (or the domain is remembered to need one).
ALTER TABLE jobs ADD COLUMN run_on TEXT NOT NULL DEFAULT 'http' CHECK (run_on IN ('http', 'browser'));
-- Why an `auto` job runs on `run_on`, in a sentence.
ALTER TABLE jobs ADD COLUMN engine_reason TEXT;
UPDATE jobs SET run_on = 'browser' WHERE engine = 'browser';

-- Claims by a worker that has room for one engine only.
CREATE INDEX jobs_claimable_by_engine ON jobs (run_on, priority, run_at, id)
    WHERE state IN ('scheduled', 'available', 'retrying');

-- What `auto` learned per domain: the next jobs go straight to `engine`
-- until `expires_at`, after which HTTP is tried again.
CREATE TABLE domain_engines (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    domain       TEXT NOT NULL,
    engine       TEXT NOT NULL CHECK (engine IN ('http', 'browser')),
    reason       TEXT NOT NULL,
    decided_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, domain)
) STRICT;
