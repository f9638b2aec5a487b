-- Accord's PostgreSQL schema, version 13: robots.txt answers shared by
-- every worker, one row per origin, with the short claim of the worker
-- fetching it. A row may hold a claim before it holds any answer.

CREATE TABLE robots_answers (
    -- `https://example.com:8443`, as a URL library serializes it.
    origin        text PRIMARY KEY,
    -- NULL until some worker published an answer.
    status        text CHECK (status IN ('fetched', 'unavailable', 'unreachable')),
    -- A fetched answer's body (at most 512 KiB, cut at a whole line).
    body          bytea NOT NULL DEFAULT ''::bytea,
    reason        text NOT NULL DEFAULT '',
    fetched_at    timestamptz,
    expires_at    timestamptz,
    -- The worker fetching it now, and until when its claim holds.
    claimed_by    text,
    claimed_until timestamptz,
    CHECK ((status IS NULL) = (fetched_at IS NULL) AND (status IS NULL) = (expires_at IS NULL)),
    CHECK ((claimed_by IS NULL) = (claimed_until IS NULL))
);
