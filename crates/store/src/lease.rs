//! [`LeaseStore`]: the worker's side of a job (claim with a lease,
//! heartbeat, complete, fail, release) and the reaper that takes expired
//! leases back. Implemented in each backend's `lease.rs`. Every call that
//! names a lease is fenced on `state = 'running'`, the attempt (the fencing
//! token) and the worker.

use std::collections::BTreeSet;
use std::time::Duration;

use accord_model::{
    ClaimedJob, CompleteItem, Engine, EscalateItem, FailItem, JobId, JobState, LeaseRef, MonitorId,
    NotifyEvent, QueueName, RunEngine, WorkerId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{RunNotice, StoreError};

#[derive(Debug, Clone)]
pub struct ClaimParams {
    pub worker_id: WorkerId,
    /// Only jobs of this workspace; `None` for every workspace.
    pub workspace: Option<WorkspaceId>,
    /// Empty means every queue.
    pub queues: Vec<QueueName>,
    pub limit: u32,
    /// Only jobs whose next attempt runs on one of these engines.
    pub engines: Vec<RunEngine>,
    pub now: DateTime<Utc>,
    pub lease_ttl: Duration,
}

impl ClaimParams {
    /// The one engine to filter on, when the claim cannot take every engine.
    pub fn only_engine(&self) -> Option<RunEngine> {
        let mut taken = RunEngine::ALL
            .into_iter()
            .filter(|engine| self.engines.contains(engine));
        match (taken.next(), taken.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }
}

/// Moves `auto` jobs from HTTP to the browser (see
/// [`LeaseStore::job_escalate_if_leased`]).
#[derive(Debug, Clone)]
pub struct EscalateParams {
    pub worker_id: WorkerId,
    pub items: Vec<EscalateItem>,
    pub now: DateTime<Utc>,
    /// How long the job's domain is remembered to need a browser.
    pub remember_for: Duration,
}

#[derive(Debug, Clone)]
pub struct FailParams {
    pub worker_id: WorkerId,
    pub items: Vec<FailItem>,
    pub now: DateTime<Utc>,
    /// Uniform random numbers in `[0, 1)`, one per item, for retry jitter.
    pub jitter: Vec<f64>,
    /// Verdicts for the items' smoke-check runs, recorded only for the
    /// jobs that die here (see [`DeadRunVerdict`]).
    pub verdicts: Vec<DeadRunVerdict>,
}

/// What a smoke check's run records when its job fails for good (the site
/// did not answer, every attempt used): a failed verdict, the snapshot
/// that becomes the baseline, and the messages to the monitor's targets,
/// all in the failure's transaction, so a site that is down notifies like
/// a page that is broken.
///
/// Fenced like a completion: when the monitor's baseline is no longer
/// `baseline_run_id` (the verdict's "newly failed" was judged against
/// another run), the run only fails with the job's error.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRunVerdict {
    pub job_id: JobId,
    pub monitor_id: MonitorId,
    pub run_id: i64,
    pub baseline_run_id: Option<i64>,
    pub outcome: serde_json::Value,
    pub snapshot: serde_json::Value,
    /// What the run reports (kept with the run for its monitor's feed).
    pub events: BTreeSet<NotifyEvent>,
    pub notice: Option<RunNotice>,
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

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatOutcome {
    pub extended: Vec<JobId>,
    pub cancelled: Vec<JobId>,
    pub lost: Vec<JobId>,
}

/// Leases: how workers take jobs, keep them and give them back.
/// A lease to put back until `run_at`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferLease {
    pub lease: LeaseRef,
    pub run_at: DateTime<Utc>,
    pub message: String,
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
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

    /// Applies [`RetryPolicy::after_failure`](accord_model::RetryPolicy::after_failure)
    /// to each failed attempt: `retrying` with a backoff, or `dead`.
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

    /// Returns leases unrun until each item's `run_at`, with its message in
    /// the job's events; the attempt does not count toward `max_attempts`
    /// (the job's domain asked us to wait, the job did nothing wrong).
    async fn job_defer_if_leased(
        &self,
        worker: &WorkerId,
        items: &[DeferLease],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError>;

    /// Puts leased `auto` jobs that ran on HTTP back in the queue to run on
    /// the browser, without counting the attempt, and remembers for
    /// `remember_for` that the domain of each job's first page needs a
    /// browser, in the same transaction. Jobs that are not `auto` or already
    /// run on the browser are refused as stale.
    async fn job_escalate_if_leased(
        &self,
        params: &EscalateParams,
    ) -> Result<Vec<ReportOutcome>, StoreError>;

    /// Returns jobs whose lease expired before `now` to the queue (or to
    /// `dead` when attempts are exhausted), at most `limit` of them.
    async fn job_reap_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transition>, StoreError>;
}
