//! [`MaintenanceStore`]: retention of finished jobs and the figures the
//! queue reads about itself (when the next job falls due, counts by state).
//! Implemented in each backend's `maintenance.rs`.

use std::collections::BTreeMap;

use accord_model::{JobState, Priority, QueueName, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// Jobs counted by queue, state and priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    pub queue: QueueName,
    pub state: JobState,
    pub priority: Priority,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    pub counts: Vec<JobCount>,
    /// `run_at` of the longest-waiting due job.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// Jobs that reached each terminal state since the given time.
    pub finished_since: BTreeMap<JobState, u64>,
}

/// Pruning and the queue's view of itself.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Deletes up to `limit` finished jobs (and their events and artifact
    /// rows) that finished before `cutoff`.
    async fn job_prune_finished(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// When the next queued job becomes due, if any is queued.
    async fn job_next_due_at(
        &self,
        queues: &[QueueName],
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    async fn queue_stats(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<QueueStats, StoreError>;

    /// Counts over all workspaces, for metrics.
    async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError>;
}
