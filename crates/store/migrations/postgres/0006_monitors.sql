-- Accord's PostgreSQL schema, version 6: monitors, their runs (one per
-- monitor and slot, each with its job), snapshots and tracked values.

CREATE TABLE monitors (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces (id),
    name            text NOT NULL,
    workflow        text NOT NULL CHECK (workflow IN ('page_change', 'extract_items', 'smoke_check')),
    url             text NOT NULL,
    engine          text NOT NULL,
    input           jsonb NOT NULL,
    -- The schedule as written (`ScheduleSpec`), parsed again when read.
    schedule        jsonb NOT NULL,
    tags            text[] NOT NULL,
    paused          boolean NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    next_due_at     timestamptz NOT NULL,
    -- The run whose snapshot the next run is compared with.
    baseline_run_id bigint
);

CREATE INDEX monitors_workspace ON monitors (workspace_id, id);
CREATE INDEX monitors_due ON monitors (next_due_at) WHERE NOT paused;

CREATE TABLE monitor_runs (
    id          bigserial PRIMARY KEY,
    monitor_id  uuid NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    workflow    text NOT NULL,
    slot        timestamptz NOT NULL,
    trigger     text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    -- No foreign key: the job may be pruned by retention before the run.
    job_id      uuid NOT NULL,
    state       text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'error')),
    outcome     jsonb,
    error       text,
    snapshot    jsonb,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz,
    UNIQUE (monitor_id, slot)
);

CREATE INDEX monitor_runs_monitor ON monitor_runs (monitor_id, id);
CREATE UNIQUE INDEX monitor_runs_job ON monitor_runs (job_id);
CREATE INDEX monitor_runs_running ON monitor_runs (monitor_id) WHERE state = 'running';

CREATE TABLE monitor_values (
    monitor_id uuid NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    run_id     bigint NOT NULL REFERENCES monitor_runs (id) ON DELETE CASCADE,
    name       text NOT NULL,
    value      double precision NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE INDEX monitor_values_series ON monitor_values (monitor_id, name, run_id);
