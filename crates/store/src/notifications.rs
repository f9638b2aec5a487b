//! [`NotificationStore`]: notification targets, the outbox of messages to
//! them and the log of every delivery attempt. Implemented in each
//! backend's `notifications.rs`.
//!
//! A run's messages are written in the same transaction as its completion
//! ([`crate::MonitorStore::monitor_run_complete`] with a [`RunNotice`]): one
//! row per subscribed, unpaused target of the monitor's workspace whose
//! events match, unique per run and target, each with a message id that
//! stays the same across retries (the receiver's `webhook-id`). A crash
//! before the commit leaves neither the outcome nor the messages; after it,
//! both.
//!
//! Claiming due messages ([`NotificationStore::notification_claim`]) takes
//! a lease (the message is not due again until it expires) and bumps the
//! attempt number, which is the fence every later record presents: a
//! replica whose lease expired cannot record over the next one. PostgreSQL
//! claims with `FOR UPDATE SKIP LOCKED`, SQLite with a single `UPDATE ...
//! RETURNING`, so two replicas never hold the same message.
//!
//! Webhook secrets are stored as is for now; they move to the credential
//! vault (encrypted at rest) when it exists.

use std::collections::BTreeSet;

use accord_model::{
    DeliveryView, MessageId, MonitorId, Notice, NotifyEvent, Target, TargetId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// What a completed run tells its monitor's targets (see
/// [`crate::CompleteRun::notice`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunNotice {
    /// What happened on the run; each subscribed target gets the ones it
    /// asked for, and nothing when none matches.
    pub events: BTreeSet<NotifyEvent>,
    pub notice: Notice,
}

/// A message to put in the outbox outside a run (a test message).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub id: MessageId,
    pub workspace_id: WorkspaceId,
    pub target_id: TargetId,
    pub notice: Notice,
    pub now: DateTime<Utc>,
}

/// A message claimed for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedMessage {
    pub id: MessageId,
    pub target: Target,
    pub monitor_id: Option<MonitorId>,
    pub run_id: Option<i64>,
    pub events: BTreeSet<NotifyEvent>,
    pub notice: Notice,
    /// This attempt's number, counting every attempt (the fence).
    pub attempt: u32,
    /// This attempt's number since the message was last (re)queued: what
    /// the retry schedule counts.
    pub round_attempt: u32,
    pub created_at: DateTime<Utc>,
}

/// What became of a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    Delivered,
    /// Failed; try again at this time.
    RetryAt(DateTime<Utc>),
    /// Failed for good.
    Failed,
}

/// One attempt's result, recorded with the message's next state.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub message_id: MessageId,
    /// The claimed attempt number (the fence).
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    pub next: AttemptNext,
    /// The target is paused when this many attempts in a row have failed.
    pub pause_after: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Recorded; `target_paused` when this failure paused the target.
    Recorded { target_paused: bool },
    /// The lease was lost (another attempt was claimed): nothing written.
    Stale,
}

/// Filters for listing deliveries, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub monitor: Option<MonitorId>,
    pub target: Option<TargetId>,
    /// Only messages older than this one (the cursor).
    pub before: Option<MessageId>,
    pub limit: u32,
}

/// Most attempts shown with one delivery (the latest).
pub const MAX_ATTEMPTS_SHOWN: u32 = 50;

/// Notification targets, the outbox and the attempt log.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    async fn target_insert(&self, target: &Target) -> Result<(), StoreError>;

    async fn target_get(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
    ) -> Result<Option<Target>, StoreError>;

    /// Targets of a workspace, newest first, at most `limit`.
    async fn target_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<Target>, StoreError>;

    /// Writes `target` over the stored one if that one was last updated at
    /// `expected_updated_at`; `false` when it was not.
    async fn target_update(
        &self,
        target: &Target,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes a target with its messages and their attempts.
    async fn target_delete(&self, workspace: WorkspaceId, id: TargetId)
        -> Result<bool, StoreError>;

    /// Which of `ids` are targets of `workspace`.
    async fn targets_existing(
        &self,
        workspace: WorkspaceId,
        ids: &[TargetId],
    ) -> Result<BTreeSet<TargetId>, StoreError>;

    /// Puts a message with no run (a test message) in the outbox, due now.
    async fn notification_enqueue(&self, message: &NewMessage) -> Result<(), StoreError>;

    /// Claims up to `limit` due messages of unpaused targets, oldest due
    /// first, each leased until `lease_until`.
    async fn notification_claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError>;

    /// Logs an attempt and moves its message on (fenced on the attempt
    /// number), and counts the target's failures in a row, pausing it at
    /// `pause_after`; all in one transaction.
    async fn notification_record(
        &self,
        record: &AttemptRecord,
    ) -> Result<RecordOutcome, StoreError>;

    /// Queues a message again, due at `now`, with a new round of attempts;
    /// `false` when the workspace has no such message.
    async fn notification_redeliver(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Messages with their latest attempts (oldest first), newest first.
    async fn deliveries(
        &self,
        workspace: WorkspaceId,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, StoreError>;

    /// One message with its attempts.
    async fn delivery_get(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<Option<DeliveryView>, StoreError>;
}
