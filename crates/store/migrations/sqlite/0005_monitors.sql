-- Accord's SQLite schema, version 5: monitors, their runs (one per monitor
-- and slot, each with its job), snapshots and tracked values.

CREATE TABLE monitors (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    name            TEXT NOT NULL,
    workflow        TEXT NOT NULL CHECK (workflow IN ('page_change', 'extract_items', 'smoke_check')),
    url             TEXT NOT NULL,
    engine          TEXT NOT NULL,
    input           TEXT NOT NULL,
    -- The schedule as written (`ScheduleSpec`), parsed again when read.
    schedule        TEXT NOT NULL,
    -- A JSON array of tags.
    tags            TEXT NOT NULL,
    paused          INTEGER NOT NULL CHECK (paused IN (0, 1)),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_due_at     INTEGER NOT NULL,
    -- The run whose snapshot the next run is compared with.
    baseline_run_id INTEGER
) STRICT;

-- Listing, newest first.
CREATE INDEX monitors_workspace ON monitors (workspace_id, id);
-- The scheduler: unpaused monitors by due time.
CREATE INDEX monitors_due ON monitors (next_due_at) WHERE paused = 0;

CREATE TABLE monitor_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor_id  TEXT NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    workflow    TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    trigger     TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    -- No foreign key: the job may be pruned by retention before the run.
    job_id      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'error')),
    outcome     TEXT,
    error       TEXT,
    snapshot    TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    UNIQUE (monitor_id, slot)
) STRICT;

CREATE INDEX monitor_runs_monitor ON monitor_runs (monitor_id, id);
CREATE UNIQUE INDEX monitor_runs_job ON monitor_runs (job_id);
-- Unfinished runs, for the overlap check.
CREATE INDEX monitor_runs_running ON monitor_runs (monitor_id) WHERE state = 'running';

CREATE TABLE monitor_values (
    monitor_id TEXT NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    run_id     INTEGER NOT NULL REFERENCES monitor_runs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    value      REAL NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) STRICT;

CREATE INDEX monitor_values_series ON monitor_values (monitor_id, name, run_id);
