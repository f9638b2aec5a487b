-- Accord's PostgreSQL schema, version 7: notification targets, the monitors'
-- subscriptions to them, the outbox of messages and every delivery attempt.

-- The monitor's subscriptions (`[{"target": ..., "events": [...]}]`),
-- read in the completion's transaction to write its messages.
ALTER TABLE monitors ADD COLUMN notify jsonb NOT NULL DEFAULT '[]';

CREATE TABLE notification_targets (
    id                    uuid PRIMARY KEY,
    workspace_id          uuid NOT NULL REFERENCES workspaces (id),
    name                  text NOT NULL,
    kind                  text NOT NULL CHECK (kind IN ('webhook', 'slack', 'discord', 'email')),
    -- A URL, or an email address for email targets.
    address               text NOT NULL,
    -- Webhook signing secrets, as is until the credential vault exists.
    secret                text,
    previous_secret       text,
    previous_secret_until timestamptz,
    paused                boolean NOT NULL,
    paused_reason         text,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);

CREATE INDEX notification_targets_workspace ON notification_targets (workspace_id, id);

CREATE TABLE notification_messages (
    -- A UUIDv7, stable across retries: the receiver's webhook-id.
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL,
    target_id       uuid NOT NULL REFERENCES notification_targets (id) ON DELETE CASCADE,
    -- No foreign keys: the message outlives its monitor and run.
    monitor_id      uuid,
    run_id          bigint,
    events          text[] NOT NULL,
    notice          jsonb NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    -- Attempts claimed so far (the fence), and that count when the message
    -- was last (re)queued.
    attempts        integer NOT NULL DEFAULT 0,
    round_start     integer NOT NULL DEFAULT 0,
    -- When it is due: its next attempt, or the end of the current lease.
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    UNIQUE (run_id, target_id)
);

-- Claiming: pending messages by due time.
CREATE INDEX notification_messages_due ON notification_messages (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX notification_messages_target ON notification_messages (target_id, id);
CREATE INDEX notification_messages_monitor ON notification_messages (monitor_id, id);

CREATE TABLE notification_attempts (
    id          bigserial PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES notification_messages (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL,
    status      integer,
    latency_ms  bigint NOT NULL,
    delivered   boolean NOT NULL,
    error       text,
    excerpt     text
);

CREATE INDEX notification_attempts_message ON notification_attempts (message_id, id);
