-- Accord's SQLite schema, version 12: robots.txt answers shared by every
-- worker, one row per origin, with the short claim of the worker fetching
-- it. A row may hold a claim before it holds any answer.

CREATE TABLE robots_answers (
    -- `https://example.com:8443`, as a URL library serializes it.
    origin        TEXT PRIMARY KEY,
    -- NULL until some worker published an answer.
    status        TEXT CHECK (status IN ('fetched', 'unavailable', 'unreachable')),
    -- A fetched answer's body (at most 512 KiB, cut at a whole line).
    body          BLOB NOT NULL DEFAULT x'',
    reason        TEXT NOT NULL DEFAULT '',
    fetched_at    INTEGER,
    expires_at    INTEGER,
    -- The worker fetching it now, and until when its claim holds.
    claimed_by    TEXT,
    claimed_until INTEGER,
    CHECK ((status IS NULL) = (fetched_at IS NULL) AND (status IS NULL) = (expires_at IS NULL)),
    CHECK ((claimed_by IS NULL) = (claimed_until IS NULL))
) STRICT;
