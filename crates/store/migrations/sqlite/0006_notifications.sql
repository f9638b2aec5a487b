-- Accord's SQLite schema, version 6: notification targets, the monitors'
-- subscriptions to them, the outbox of messages and every delivery attempt.

-- The monitor's subscriptions (`[{"target": ..., "events": [...]}]`),
-- read in the completion's transaction to write its messages.
ALTER TABLE monitors ADD COLUMN notify TEXT NOT NULL DEFAULT '[]';

CREATE TABLE notification_targets (
    id                    TEXT PRIMARY KEY,
    workspace_id          TEXT NOT NULL REFERENCES workspaces (id),
    name                  TEXT NOT NULL,
    kind                  TEXT NOT NULL CHECK (kind IN ('webhook', 'slack', 'discord', 'email')),
    -- A URL, or an email address for email targets.
    address               TEXT NOT NULL,
    -- Webhook signing secrets, as is until the credential vault exists.
    secret                TEXT,
    previous_secret       TEXT,
    previous_secret_until INTEGER,
    paused                INTEGER NOT NULL CHECK (paused IN (0, 1)),
    paused_reason         TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
) STRICT;

CREATE INDEX notification_targets_workspace ON notification_targets (workspace_id, id);

CREATE TABLE notification_messages (
    -- A UUIDv7, stable across retries: the receiver's webhook-id.
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    target_id       TEXT NOT NULL REFERENCES notification_targets (id) ON DELETE CASCADE,
    -- No foreign keys: the message outlives its monitor and run.
    monitor_id      TEXT,
    run_id          INTEGER,
    events          TEXT NOT NULL,
    notice          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    -- Attempts claimed so far (the fence), and that count when the message
    -- was last (re)queued.
    attempts        INTEGER NOT NULL DEFAULT 0,
    round_start     INTEGER NOT NULL DEFAULT 0,
    -- When it is due: its next attempt, or the end of the current lease.
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    UNIQUE (run_id, target_id)
) STRICT;

-- Claiming: pending messages by due time.
CREATE INDEX notification_messages_due ON notification_messages (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX notification_messages_target ON notification_messages (target_id, id);
CREATE INDEX notification_messages_monitor ON notification_messages (monitor_id, id);

CREATE TABLE notification_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL REFERENCES notification_messages (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER,
    latency_ms  INTEGER NOT NULL,
    delivered   INTEGER NOT NULL CHECK (delivered IN (0, 1)),
    error       TEXT,
    excerpt     TEXT
) STRICT;

CREATE INDEX notification_attempts_message ON notification_attempts (message_id, id);
