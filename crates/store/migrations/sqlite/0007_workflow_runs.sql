-- Accord's SQLite schema, version 7: workflow runs outside any monitor
-- (`POST /api/v1/workflows/{name}/run`), one per job, with the outcome
-- written in the job's completion transaction. (Version 6 is left to the
-- notifications branch.)

CREATE TABLE workflow_runs (
    -- No foreign key: the job may be pruned by retention before the run.
    job_id       TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    workflow     TEXT NOT NULL CHECK (workflow IN ('page_change', 'extract_items', 'smoke_check')),
    url          TEXT NOT NULL,
    engine       TEXT NOT NULL,
    input        TEXT NOT NULL,
    outcome      TEXT,
    -- What the run extracted (the workflow's snapshot): a one-off run has
    -- no baseline, so its outcome alone lists no items.
    snapshot     TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    CHECK (outcome IS NULL OR error IS NULL),
    CHECK ((outcome IS NULL) = (snapshot IS NULL))
) STRICT;
