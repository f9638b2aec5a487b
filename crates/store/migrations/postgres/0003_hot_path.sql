-- Accord's PostgreSQL schema, version 3: a hot path that ignores history.

-- The reaper's index, keyed the same but with a predicate that the worker's
-- reports (`state = 'running' AND worker_id = ...`) do not imply. With the
-- old predicate the planner could drive a report from this index and look
-- each item up in a loop: cheap while the statistics say few jobs run, and
-- quadratic in the batch size when they are stale (say, analyzed over a
-- million finished jobs), which made the whole claim/complete path slower
-- the more history was retained. The reports now look their jobs up by
-- primary key. `lease_expires_at` is set exactly while a job runs (see the
-- CHECK on `jobs`), so the index holds the same rows as before, and the
-- reaper's `lease_expires_at < $1` still implies its predicate.
DROP INDEX jobs_leased;
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;

-- Job counts by workspace, queue, state and priority, so that queue stats
-- and metrics read a few rows instead of grouping every retained job.
--
-- Every statement that writes `jobs` appends its net change to
-- `job_count_deltas` in the same statement (see `counted` in
-- src/postgres/rows.rs). Writers never update a shared counter row: that
-- would make every claim and report wait for the previous one to commit.
-- The maintenance pass folds the deltas into `job_counts`. A count is
-- `job_counts` plus the deltas, summed in one statement, so it is exact
-- in every snapshot.
CREATE TABLE job_counts (
    workspace_id uuid NOT NULL,
    queue        text NOT NULL,
    state        text NOT NULL,
    priority     smallint NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (workspace_id, queue, state, priority)
);

CREATE TABLE job_count_deltas (
    workspace_id uuid NOT NULL,
    queue        text NOT NULL,
    state        text NOT NULL,
    priority     smallint NOT NULL,
    n            bigint NOT NULL
);

-- Deltas are appended and deleted all the time: vacuum them eagerly.
ALTER TABLE job_count_deltas SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- The jobs that exist already. Writers wait until this migration commits,
-- so no change is missed or counted twice.
LOCK TABLE jobs IN SHARE MODE;
INSERT INTO job_counts (workspace_id, queue, state, priority, n)
SELECT workspace_id, queue, state, priority, COUNT(*) FROM jobs
GROUP BY workspace_id, queue, state, priority;
