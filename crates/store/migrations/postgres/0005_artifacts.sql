-- Accord's PostgreSQL schema, version 5: the artifact index.
--
-- One row per artifact a job holds; the bytes are in the blob store under
-- `sha256`, and several rows (of any jobs) may share one blob. Names are
-- unique within a job: a later attempt's upload of a name replaces the row.
-- Rows are deleted with their job when it is pruned.

CREATE TABLE artifacts (
    job_id        uuid NOT NULL,
    name          text NOT NULL,
    -- The job's, copied so a workspace's usage is a sum over one index.
    workspace_id  uuid NOT NULL,
    attempt       integer NOT NULL CHECK (attempt >= 1),
    content_type  text NOT NULL,
    size          bigint NOT NULL CHECK (size >= 0),
    sha256        text NOT NULL CHECK (length(sha256) = 64),
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (job_id, name)
);

-- Quota checks: the bytes a workspace holds (an index-only sum).
CREATE INDEX artifacts_workspace ON artifacts (workspace_id) INCLUDE (size);
-- The blob sweep: does any row still hold this digest?
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
