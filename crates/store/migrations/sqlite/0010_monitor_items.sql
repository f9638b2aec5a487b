-- Accord's SQLite schema, version 11: the item history of extract_items
-- monitors, one row per monitor and item key, kept up to date by each
-- run's completion (in its transaction) instead of being folded from the
-- snapshots on every read.

CREATE TABLE monitor_items (
    -- The order the items were first seen (by run, then page order): the
    -- listing's order and cursor.
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor_id     TEXT NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    -- A JSON object: the fields when last seen.
    fields         TEXT NOT NULL,
    -- The key and the field values, one a line, lowercased by the control
    -- plane: what the listing's text query searches.
    search         TEXT NOT NULL,
    first_run_id   INTEGER NOT NULL,
    first_seen_at  INTEGER NOT NULL,
    last_run_id    INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    -- The run that no longer found it; both NULL while it is current.
    removed_run_id INTEGER,
    removed_at     INTEGER,
    -- How many times its fields changed from one sighting to the next.
    changes        INTEGER NOT NULL DEFAULT 0 CHECK (changes >= 0),
    UNIQUE (monitor_id, key),
    CHECK ((removed_run_id IS NULL) = (removed_at IS NULL))
) STRICT;

-- Listing a monitor's items in order, and the completion's removal pass.
CREATE INDEX monitor_items_monitor ON monitor_items (monitor_id, id);

-- Monitors that ran before this table: their latest snapshot's items, in
-- page order, first and last seen on that run, no changes counted (the
-- earlier runs are not replayed). SQLite's lower() folds ASCII only; the
-- next run that sees an item writes its search text again.
INSERT INTO monitor_items (monitor_id, key, fields, search, first_run_id, first_seen_at,
                           last_run_id, last_seen_at)
SELECT m.id,
       json_extract(e.value, '$.key'),
       json(json_extract(e.value, '$.fields')),
       lower(json_extract(e.value, '$.key') || COALESCE(
           (SELECT char(10) || group_concat(f.value, char(10))
            FROM json_each(e.value, '$.fields') f WHERE f.value IS NOT NULL), '')),
       r.id, r.finished_at, r.id, r.finished_at
FROM monitors m
JOIN monitor_runs r ON r.id = m.baseline_run_id
JOIN json_each(r.snapshot, '$.items') e
WHERE m.workflow = 'extract_items'
  AND r.snapshot IS NOT NULL
  AND r.finished_at IS NOT NULL
  AND json_extract(r.snapshot, '$.workflow') = 'extract_items'
ORDER BY m.id, e.id
ON CONFLICT (monitor_id, key) DO NOTHING;
