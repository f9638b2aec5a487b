-- Accord's PostgreSQL schema, version 8: workflow runs outside any monitor
-- (`POST /api/v1/workflows/{name}/run`), one per job, with the outcome
-- written in the job's completion transaction. (Version 7 is left to the
-- notifications branch.)

CREATE TABLE workflow_runs (
    -- No foreign key: the job may be pruned by retention before the run.
    job_id       uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id),
    workflow     text NOT NULL CHECK (workflow IN ('page_change', 'extract_items', 'smoke_check')),
    url          text NOT NULL,
    engine       text NOT NULL,
    input        jsonb NOT NULL,
    outcome      jsonb,
    -- What the run extracted (the workflow's snapshot): a one-off run has
    -- no baseline, so its outcome alone lists no items.
    snapshot     jsonb,
    error        text,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    CHECK (outcome IS NULL OR error IS NULL),
    CHECK ((outcome IS NULL) = (snapshot IS NULL))
);
