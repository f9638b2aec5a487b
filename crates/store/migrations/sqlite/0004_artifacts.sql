-- Accord's SQLite schema, version 4: the artifact index.
--
-- One row per artifact a job holds; the bytes are in the blob store under
-- `sha256`, and several rows (of any jobs) may share one blob. Names are
-- unique within a job: a later attempt's upload of a name replaces the row.
-- Rows are deleted with their job when it is pruned.

CREATE TABLE artifacts (
    job_id        TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- The job's, copied so a workspace's usage is a sum over one index.
    workspace_id  TEXT NOT NULL,
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    sha256        TEXT NOT NULL CHECK (length(sha256) = 64),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (job_id, name)
) STRICT;

-- Quota checks: the bytes a workspace holds.
CREATE INDEX artifacts_workspace ON artifacts (workspace_id, size);
-- The blob sweep: does any row still hold this digest?
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
