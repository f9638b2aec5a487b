//! [`JobStore`]: inserting and reading jobs, and the operator's transitions
//! (cancel, requeue). Implemented in each backend's `jobs.rs`.

use accord_model::{Job, JobEvent, JobId, JobState, NewJob, QueueName, RunEngine, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// A validated job to insert.
#[derive(Debug, Clone)]
pub struct InsertJob {
    pub id: JobId,
    pub workspace_id: WorkspaceId,
    pub job: NewJob,
    /// The engine the first attempt runs on (decided by the queue for `auto`).
    pub run_on: RunEngine,
    /// Why, for `auto` jobs.
    pub engine_reason: Option<String>,
    /// The `Idempotency-Key` header and the hash of the request it came with.
    pub idempotency: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum InsertOutcome {
    Created(Job),
    /// The key was used before with the same request: here is that job.
    Existing(Job),
    /// The key was used before with a different request.
    KeyReused,
}

/// Filters for listing jobs. Results are newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub queue: Option<QueueName>,
    pub label: Option<(String, String)>,
    /// Only jobs older than this one (the cursor).
    pub before: Option<JobId>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub enum CancelOutcome {
    Cancelled {
        job: Job,
        was: JobState,
    },
    /// Already finished; nothing changed.
    Finished(Job),
    NotFound,
}

#[derive(Debug, Clone)]
pub enum RetryOutcome {
    Requeued(Job),
    /// Only dead and cancelled jobs can be requeued.
    NotRetryable(Job),
    NotFound,
}

/// Jobs as the API sees them: written with their `created` event, read
/// within a workspace, cancelled or requeued by an operator.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts a job and its `created` event in one transaction, enforcing
    /// the idempotency key.
    async fn job_insert(
        &self,
        insert: InsertJob,
        now: DateTime<Utc>,
    ) -> Result<InsertOutcome, StoreError>;

    /// Inserts many jobs (without idempotency keys) and their `created`
    /// events in one transaction: all or none.
    async fn job_insert_many(
        &self,
        inserts: &[InsertJob],
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError>;

    async fn job_get(&self, workspace: WorkspaceId, id: JobId) -> Result<Option<Job>, StoreError>;

    async fn job_list(
        &self,
        workspace: WorkspaceId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, StoreError>;

    /// Events of a job in order, after the given event id; `None` when the job does not exist.
    async fn job_events(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Option<Vec<JobEvent>>, StoreError>;

    /// Cancels a job that has not finished, in one statement fenced on the
    /// state and attempt it finds.
    async fn job_cancel(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError>;

    /// Puts a dead or cancelled job back to `available` with a fresh set of
    /// attempts, in one statement fenced on the state it finds.
    async fn job_retry(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError>;
}
