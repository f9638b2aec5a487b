-- Accord's SQLite schema, version 9: Atom feeds. Each run records the
-- events it reported (what a feed lists), and feed tokens let a feed
-- reader read a workspace's feeds without an API key.

-- The run's events (`["changed", "new_items"]`), written with its outcome;
-- NULL when nothing happened (most runs).
ALTER TABLE monitor_runs ADD COLUMN events TEXT;

-- Runs written before this version: their events, from their outcome's
-- summary (the same rule as the queue's `events_of`).
UPDATE monitor_runs SET events = '[' || rtrim(
    CASE WHEN json_extract(outcome, '$.summary.changed') THEN '"changed",' ELSE '' END ||
    CASE WHEN json_extract(outcome, '$.summary.new_items') > 0 THEN '"new_items",' ELSE '' END ||
    CASE WHEN json_extract(outcome, '$.summary.condition_newly_met') THEN '"condition_met",' ELSE '' END ||
    CASE WHEN json_extract(outcome, '$.summary.newly_failed') THEN '"failed",' ELSE '' END ||
    CASE WHEN json_extract(outcome, '$.summary.recovered') THEN '"recovered",' ELSE '' END,
    ',') || ']'
WHERE outcome IS NOT NULL;
UPDATE monitor_runs SET events = NULL WHERE events = '[]';

-- A monitor's feed: its newest runs with events.
CREATE INDEX monitor_runs_events ON monitor_runs (monitor_id, id) WHERE events IS NOT NULL;
-- A workspace's feed: the newest runs with events of any monitor.
CREATE INDEX monitor_runs_events_all ON monitor_runs (id) WHERE events IS NOT NULL;

CREATE TABLE feed_tokens (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    -- The API key that made it: the token works while that key does.
    key_id       TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- SHA-256 of the token, hex. The token itself is never stored.
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX feed_tokens_workspace ON feed_tokens (workspace_id, created_at);
