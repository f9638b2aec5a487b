//! [`FeedStore`]: feed tokens (kept as a hash, bound to the API key that
//! made them) and the entries of Atom feeds: the newest monitor runs that
//! reported events. Implemented in each backend's `feeds.rs`.
//!
//! A run's events are written with its outcome, in the completion's
//! transaction ([`crate::RunRecord::Outcome`]); a feed reads them back
//! through a partial index of the runs that have any, so a monitor that
//! ran a thousand times without news costs nothing to list.

use std::collections::BTreeSet;

use accord_model::{FeedToken, FeedTokenId, MonitorId, NotifyEvent, WorkflowKind, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// One run that reported events, with its monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub monitor_id: MonitorId,
    pub monitor_name: String,
    pub workflow: WorkflowKind,
    /// The page the monitor watches.
    pub monitor_url: String,
    pub run_id: i64,
    pub finished_at: DateTime<Utc>,
    /// Never empty.
    pub events: BTreeSet<NotifyEvent>,
    /// The run's `RunOutcome` as stored.
    pub outcome: serde_json::Value,
}

/// Feed tokens and feed entries.
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Stores a token by the hash of its secret (`token_hash`, unique).
    async fn feed_token_insert(
        &self,
        token: &FeedToken,
        token_hash: &str,
    ) -> Result<(), StoreError>;

    /// The workspace's tokens, newest first, at most `limit`.
    async fn feed_token_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<FeedToken>, StoreError>;

    /// Deletes a token of the workspace; whether there was one.
    async fn feed_token_delete(
        &self,
        workspace: WorkspaceId,
        id: FeedTokenId,
    ) -> Result<bool, StoreError>;

    /// The token with this hash, if the key that made it is still active
    /// at `now` (not revoked, not expired).
    async fn feed_token_resolve(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<FeedToken>, StoreError>;

    /// The newest runs with events of the workspace's monitors (of one
    /// monitor when `monitor` is given), newest first, at most `limit`.
    async fn feed_entries(
        &self,
        workspace: WorkspaceId,
        monitor: Option<MonitorId>,
        limit: u32,
    ) -> Result<Vec<FeedEntry>, StoreError>;
}
