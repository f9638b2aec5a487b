-- Accord's PostgreSQL schema, version 10: Atom feeds. Each run records the
-- events it reported (what a feed lists), and feed tokens let a feed
-- reader read a workspace's feeds without an API key.

-- The run's events, written with its outcome; NULL when nothing happened
-- (most runs).
ALTER TABLE monitor_runs ADD COLUMN events text[];

-- Runs written before this version: their events, from their outcome's
-- summary (the same rule as the queue's `events_of`).
UPDATE monitor_runs SET events = array_remove(ARRAY[
    CASE WHEN (outcome -> 'summary' ->> 'changed')::boolean THEN 'changed' END,
    CASE WHEN (outcome -> 'summary' ->> 'new_items')::bigint > 0 THEN 'new_items' END,
    CASE WHEN (outcome -> 'summary' ->> 'condition_newly_met')::boolean THEN 'condition_met' END,
    CASE WHEN (outcome -> 'summary' ->> 'newly_failed')::boolean THEN 'failed' END,
    CASE WHEN (outcome -> 'summary' ->> 'recovered')::boolean THEN 'recovered' END
], NULL)
WHERE outcome IS NOT NULL;
UPDATE monitor_runs SET events = NULL WHERE events = '{}';

-- A monitor's feed: its newest runs with events.
CREATE INDEX monitor_runs_events ON monitor_runs (monitor_id, id) WHERE events IS NOT NULL;
-- A workspace's feed: the newest runs with events of any monitor.
CREATE INDEX monitor_runs_events_all ON monitor_runs (id) WHERE events IS NOT NULL;

CREATE TABLE feed_tokens (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id),
    -- The API key that made it: the token works while that key does.
    key_id       text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- SHA-256 of the token, hex. The token itself is never stored.
    token_hash   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL
);

CREATE INDEX feed_tokens_workspace ON feed_tokens (workspace_id, created_at);
