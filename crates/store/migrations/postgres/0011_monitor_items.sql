-- Accord's PostgreSQL schema, version 12: the item history of
-- extract_items monitors, one row per monitor and item key, kept up to
-- date by each run's completion (in its transaction) instead of being
-- folded from the snapshots on every read.

CREATE TABLE monitor_items (
    -- The order the items were first seen (by run, then page order): the
    -- listing's order and cursor.
    id             bigserial PRIMARY KEY,
    monitor_id     uuid NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    key            text NOT NULL,
    -- The fields when last seen.
    fields         jsonb NOT NULL,
    -- The key and the field values, one a line, lowercased by the control
    -- plane: what the listing's text query searches.
    search         text NOT NULL,
    first_run_id   bigint NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    last_run_id    bigint NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    -- The run that no longer found it; both NULL while it is current.
    removed_run_id bigint,
    removed_at     timestamptz,
    -- How many times its fields changed from one sighting to the next.
    changes        integer NOT NULL DEFAULT 0 CHECK (changes >= 0),
    UNIQUE (monitor_id, key),
    CHECK ((removed_run_id IS NULL) = (removed_at IS NULL))
);

-- Listing a monitor's items in order, and the completion's removal pass.
CREATE INDEX monitor_items_monitor ON monitor_items (monitor_id, id);

-- Monitors that ran before this table: their latest snapshot's items, in
-- page order, first and last seen on that run, no changes counted (the
-- earlier runs are not replayed).
INSERT INTO monitor_items (monitor_id, key, fields, search, first_run_id, first_seen_at,
                           last_run_id, last_seen_at)
SELECT m.id,
       e.item ->> 'key',
       e.item -> 'fields',
       lower(concat_ws(E'\n', e.item ->> 'key',
           (SELECT string_agg(f.value, E'\n' ORDER BY f.key)
            FROM jsonb_each_text(e.item -> 'fields') f WHERE f.value IS NOT NULL))),
       r.id, r.finished_at, r.id, r.finished_at
FROM monitors m
JOIN monitor_runs r ON r.id = m.baseline_run_id
CROSS JOIN LATERAL jsonb_array_elements(r.snapshot -> 'items') WITH ORDINALITY AS e(item, position)
WHERE m.workflow = 'extract_items'
  AND r.snapshot IS NOT NULL
  AND r.finished_at IS NOT NULL
  AND r.snapshot ->> 'workflow' = 'extract_items'
ORDER BY m.id, e.position
ON CONFLICT (monitor_id, key) DO NOTHING;
