//! The storage interface every backend implements, and its parameter and
//! outcome types.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use accord_model::{
    ApiKey, ApiKeyId, AuditEntry, AuditOutcome, ClaimedJob, CompleteItem, Engine, FailItem, Job,
    JobEvent, JobId, JobState, LeaseRef, NewAuditEntry, NewJob, Priority, QueueName, WorkerId,
    Workspace, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// A validated job to insert.
#[derive(Debug, Clone)]
pub struct InsertJob {
    pub id: JobId,
    pub workspace_id: WorkspaceId,
    pub job: NewJob,
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
pub struct ClaimParams {
    pub worker_id: WorkerId,
    /// Only jobs of this workspace; `None` for every workspace.
    pub workspace: Option<WorkspaceId>,
    /// Empty means every queue.
    pub queues: Vec<QueueName>,
    pub limit: u32,
    pub now: DateTime<Utc>,
    pub lease_ttl: Duration,
}

/// A transition the store made, for metrics and wake-ups.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub job_id: JobId,
    pub queue: QueueName,
    pub engine: Engine,
    pub from: JobState,
    pub to: JobState,
    pub attempt: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What became of one item of a complete, fail or release call.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportOutcome {
    Applied(Transition),
    /// The worker does not hold this lease (any more): nothing changed.
    Stale(JobId),
}

#[derive(Debug, Clone)]
pub struct FailParams {
    pub worker_id: WorkerId,
    pub items: Vec<FailItem>,
    pub now: DateTime<Utc>,
    /// Uniform random numbers in `[0, 1)`, one per item, for retry jitter.
    pub jitter: Vec<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatOutcome {
    pub extended: Vec<JobId>,
    pub cancelled: Vec<JobId>,
    pub lost: Vec<JobId>,
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

/// A key as stored: its listing plus the hash of its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredApiKey {
    pub key: ApiKey,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
}

/// Filters for reading the audit log. Results are newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub key_id: Option<ApiKeyId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries older than this one (the cursor).
    pub before: Option<i64>,
    pub limit: u32,
}

/// Hints, from other processes sharing the database, that jobs may have
/// become claimable. Hints can be lost (while reconnecting); claims keep a
/// polling backstop.
#[async_trait]
pub trait JobWakeups: Send + fmt::Debug {
    /// Waits for the next hint. After an error the caller may call again:
    /// the listener reconnects.
    async fn next(&mut self) -> Result<(), StoreError>;
}

/// Held by the one process that runs the background duties (reaper,
/// pruner) among all that share the database; dropping it steps down.
#[async_trait]
pub trait Leadership: Send + fmt::Debug {
    /// Whether this process still leads (its session is alive).
    async fn still_held(&mut self) -> bool;
}

/// Durable storage of jobs and their events.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Which backend this is, for logs and `/ready`.
    fn backend(&self) -> &'static str;

    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the connections, waiting for statements under way.
    async fn close(&self);

    /// Subscribes to wake-up hints from other processes; `None` when the
    /// backend is used by one process only (SQLite).
    async fn job_wakeups(&self) -> Result<Option<Box<dyn JobWakeups>>, StoreError>;

    /// Tries to become the process that runs background duties; `None` when
    /// another process leads. A single-process store always grants it.
    async fn leadership_try_acquire(&self) -> Result<Option<Box<dyn Leadership>>, StoreError>;

    /// Creates a workspace; `false` when the name is taken (nothing changed).
    async fn workspace_create(&self, workspace: &Workspace) -> Result<bool, StoreError>;

    /// Every workspace, oldest first.
    async fn workspace_list(&self) -> Result<Vec<Workspace>, StoreError>;

    async fn workspace_get(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError>;

    async fn workspace_find(&self, name: &str) -> Result<Option<Workspace>, StoreError>;

    /// A workspace named by its id or, failing that, by its name.
    async fn workspace_lookup(&self, reference: &str) -> Result<Option<Workspace>, StoreError> {
        match reference.parse::<WorkspaceId>() {
            Ok(id) => self.workspace_get(id).await,
            Err(_) => self.workspace_find(reference).await,
        }
    }

    async fn api_key_insert(&self, key: &StoredApiKey) -> Result<(), StoreError>;

    /// Looks a key up by id in any workspace: this is how a request is
    /// authenticated, before its workspace is known.
    async fn api_key_get(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError>;

    /// The workspace's keys, oldest first, revoked ones included.
    async fn api_key_list(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key of the workspace; revoking twice keeps the first time.
    /// `None` when the workspace has no such key.
    async fn api_key_revoke(
        &self,
        workspace: WorkspaceId,
        id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// Records that the key was used.
    async fn api_key_touch(&self, id: &ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Keys that are neither revoked nor expired at `now`, over all workspaces.
    async fn api_key_count_active(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn audit_insert(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError>;

    async fn audit_list(
        &self,
        workspace: WorkspaceId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Deletes up to `limit` audit entries older than `cutoff`.
    async fn audit_prune(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

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

    /// Leases up to `limit` due jobs to a worker, most urgent first.
    async fn job_claim_available(
        &self,
        params: &ClaimParams,
    ) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Extends every given lease the worker still holds. A lease is never
    /// extended past the job's timeout plus one lease length.
    async fn job_heartbeat_leased(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
        lease_ttl: Duration,
    ) -> Result<HeartbeatOutcome, StoreError>;

    async fn job_complete_if_leased(
        &self,
        worker: &WorkerId,
        items: &[CompleteItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError>;

    /// Retryable failures go to `retrying` (or `dead` when attempts are
    /// exhausted); permanent ones go to `dead`.
    async fn job_fail_if_leased(
        &self,
        params: &FailParams,
    ) -> Result<Vec<ReportOutcome>, StoreError>;

    /// Returns leases unrun; the attempt does not count toward `max_attempts`.
    async fn job_release_if_leased(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError>;

    async fn job_cancel(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError>;

    /// Puts a dead or cancelled job back to `available` with a fresh set of attempts.
    async fn job_retry(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError>;

    /// Returns jobs whose lease expired before `now` to the queue (or to
    /// `dead` when attempts are exhausted), at most `limit` of them.
    async fn job_reap_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transition>, StoreError>;

    /// Deletes up to `limit` finished jobs (and their events) that finished before `cutoff`.
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
