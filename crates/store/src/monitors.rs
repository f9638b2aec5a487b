//! [`MonitorStore`]: monitors, their runs, snapshots and tracked values.
//! Implemented in each backend's `monitors.rs`.
//!
//! A run and its job are inserted in one transaction
//! ([`MonitorStore::monitor_run_start`]), unique per monitor and slot and
//! fenced on the monitor's due time, so two control-plane replicas never
//! start the same slot twice; a monitor with an unfinished run is not due,
//! so it never overlaps itself. A run's outcome and snapshot are written in
//! the same transaction as its job's completion
//! ([`MonitorStore::monitor_run_complete`]), fenced on the lease and on the
//! monitor's baseline (the run whose snapshot the outcome was computed
//! from), so two completions can never both become the baseline. A job
//! that fails for good finishes its run in the same transaction as the
//! failure (`job_fail_if_leased`).
//!
//! Outcomes and snapshots are the workflows crate's versioned formats,
//! kept here as JSON: the store does not read them.
//!
//! Deleting a monitor deletes its runs, snapshots, values and item history
//! with it; the jobs it ran stay, like any job, until retention prunes them.

use accord_model::{
    CompleteItem, Job, JobId, Monitor, MonitorId, MonitorRun, RunState, RunTrigger, SeriesPoint,
    WorkerId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{InsertJob, RunNotice, StoreError, Transition};

/// Filters for listing monitors. Results are newest first.
#[derive(Debug, Clone, Default)]
pub struct MonitorFilter {
    /// Only monitors with this tag.
    pub tag: Option<String>,
    /// Only monitors older than this one (the cursor).
    pub before: Option<MonitorId>,
    pub limit: u32,
}

/// A run to start, with its job.
#[derive(Debug, Clone)]
pub struct StartRun {
    pub workspace_id: WorkspaceId,
    pub monitor_id: MonitorId,
    pub trigger: RunTrigger,
    /// The slot: the due time for a scheduled run; for a manual one, when
    /// it was asked for.
    pub slot: DateTime<Utc>,
    /// For a scheduled run: the monitor's `next_due_at` and `updated_at` as
    /// read (the fence), and its next slot after now. Not for manual runs.
    pub advance: Option<Advance>,
    pub job: InsertJob,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
pub struct Advance {
    pub due_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub next_due_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum StartOutcome {
    Started {
        run: MonitorRun,
        job: Box<Job>,
    },
    /// The monitor has a run whose job has not finished: nothing written.
    Busy,
    /// The monitor changed (due time, update, pause, deletion) since it was
    /// read, or the slot already has its run: nothing written.
    Moved,
}

/// A monitor run in progress, with what its completion needs.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub monitor: Monitor,
    pub run: MonitorRun,
    /// The monitor's baseline: the run whose snapshot the next outcome is
    /// computed against, and that snapshot.
    pub baseline: Option<Baseline>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    pub run_id: i64,
    pub snapshot: serde_json::Value,
}

/// A completion that records a monitor run's outcome (see
/// [`MonitorStore::monitor_run_complete`]).
#[derive(Debug, Clone)]
pub struct CompleteRun {
    pub worker: WorkerId,
    pub item: CompleteItem,
    pub now: DateTime<Utc>,
    pub monitor_id: MonitorId,
    pub run_id: i64,
    /// The baseline run the outcome was computed against (`None` when the
    /// monitor had none): the fence.
    pub baseline_run_id: Option<i64>,
    pub record: RunRecord,
    /// With an outcome: the messages to the monitor's targets, written in
    /// the same transaction (see [`crate::NotificationStore`]).
    pub notice: Option<RunNotice>,
}

/// What a completed job's run records.
#[derive(Debug, Clone, PartialEq)]
pub enum RunRecord {
    /// The workflow ran: its outcome, the snapshot that becomes the
    /// baseline, and the tracked numbers it read, by name.
    Outcome {
        outcome: serde_json::Value,
        snapshot: serde_json::Value,
        values: Vec<(String, f64)>,
        /// What the run reports (empty when nothing happened): kept with
        /// the run for its monitor's feed.
        events: std::collections::BTreeSet<accord_model::NotifyEvent>,
        /// Artifacts the control plane made for the run (the visual diff's
        /// highlight image), whose bytes are already in the blob store:
        /// recorded as the job's, for the completing attempt, in the same
        /// transaction as the outcome that names them. Counted in the
        /// workspace's usage like any artifact (the control plane checks
        /// the quota before storing the bytes) and pruned with the job.
        artifacts: Vec<accord_model::ArtifactRef>,
        /// For an `extract_items` run, every item its snapshot holds, in
        /// page order: the monitor's item history is brought up to date
        /// from them in the same transaction (see
        /// [`crate::ItemHistoryStore`]). `None` for other workflows.
        items: Option<Vec<crate::SeenItem>>,
    },
    /// The workflow could not run on what the job captured (the run ends
    /// in error and the baseline stays).
    Error(String),
}

/// Which snapshots of a monitor to read, and in what order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOrder {
    /// Newest first, of runs older than `before` (the cursor of a listing).
    NewestFirst { before: Option<i64> },
    /// Oldest first, of runs newer than `after` (a fold over the history).
    OldestFirst { after: Option<i64> },
}

/// A snapshot a run kept, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    pub run_id: i64,
    /// When the run finished.
    pub at: DateTime<Utc>,
    pub snapshot: serde_json::Value,
}

/// A monitor's latest state, for the metrics: its last run and the values
/// its baseline run (the latest that recorded an outcome) read.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorGauge {
    pub monitor_id: MonitorId,
    pub name: String,
    /// The newest run's state and when it finished (or started, while it
    /// runs); none before the first run.
    pub last_run: Option<(RunState, DateTime<Utc>)>,
    /// The tracked values of the baseline run, by name.
    pub values: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompleteRunOutcome {
    Applied(Transition),
    /// The worker does not hold this lease (any more): nothing changed.
    Stale,
    /// Another completion moved the baseline since it was read: nothing
    /// changed; compute again against the new baseline.
    BaselineMoved,
}

/// Monitors and their history.
#[async_trait]
pub trait MonitorStore: Send + Sync {
    async fn monitor_insert(&self, monitor: &Monitor) -> Result<(), StoreError>;

    async fn monitor_get(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<Option<Monitor>, StoreError>;

    async fn monitor_list(
        &self,
        workspace: WorkspaceId,
        filter: &MonitorFilter,
    ) -> Result<Vec<Monitor>, StoreError>;

    /// Writes `monitor` over the stored one if that one was last updated at
    /// `expected_updated_at` (no lost update); `false` when it was not
    /// (changed or deleted since it was read).
    async fn monitor_update(
        &self,
        monitor: &Monitor,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes a monitor with its runs, snapshots and values; `false` when
    /// there was none.
    async fn monitor_delete(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<bool, StoreError>;

    /// Monitors due at `now`: unpaused, `next_due_at <= now`, and without a
    /// run whose job has not finished; most overdue first.
    async fn monitors_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Monitor>, StoreError>;

    /// Inserts a run and its job in one transaction: refused when the
    /// monitor has an unfinished run, when the slot has its run already,
    /// and (scheduled runs) when the monitor is paused or its due time or
    /// last update is not the one read; then moves `next_due_at` on.
    async fn monitor_run_start(&self, start: &StartRun) -> Result<StartOutcome, StoreError>;

    /// Starts many runs as [`MonitorStore::monitor_run_start`] would, in
    /// one transaction (one commit), each judged on its own: a busy or
    /// moved monitor writes nothing and the others still start. The
    /// outcomes are in the order of `starts`.
    async fn monitor_runs_start(
        &self,
        starts: &[StartRun],
    ) -> Result<Vec<StartOutcome>, StoreError>;

    /// The monitor run each job is for, if it is one and still running, in
    /// the order of `jobs` (a few statements for the whole list).
    async fn monitor_run_contexts(
        &self,
        jobs: &[JobId],
    ) -> Result<Vec<Option<RunContext>>, StoreError>;

    /// The monitor run a job is for, if it is one and still running.
    async fn monitor_run_context(&self, job_id: JobId) -> Result<Option<RunContext>, StoreError> {
        Ok(self.monitor_run_contexts(&[job_id]).await?.pop().flatten())
    }

    /// Completes each run's job (fenced on its lease, like
    /// `job_complete_if_leased`) and, in the same transaction, records the
    /// run's outcome, makes its snapshot the baseline (fenced on
    /// `baseline_run_id`) and stores its values, its artifacts, its item
    /// history and its messages. The whole batch is one transaction (one
    /// commit, a few statements whatever its size), each run judged on its
    /// own: a stale lease or a moved baseline writes nothing for that run
    /// and the others still complete. Of two runs of one monitor in a
    /// batch, the second finds the baseline moved. Outcomes are in the
    /// order of `batch`.
    async fn monitor_runs_complete(
        &self,
        batch: &[CompleteRun],
    ) -> Result<Vec<CompleteRunOutcome>, StoreError>;

    /// [`MonitorStore::monitor_runs_complete`] for one run.
    async fn monitor_run_complete(
        &self,
        complete: &CompleteRun,
    ) -> Result<CompleteRunOutcome, StoreError> {
        self.monitor_runs_complete(std::slice::from_ref(complete))
            .await?
            .pop()
            .ok_or_else(|| StoreError::corrupt("monitor run", "a completion without an outcome"))
    }

    /// Runs of a monitor, newest first, older than `before`.
    async fn monitor_runs(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<MonitorRun>, StoreError>;

    /// One run of a monitor with its snapshot.
    async fn monitor_run_get(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        run_id: i64,
    ) -> Result<Option<(MonitorRun, Option<serde_json::Value>)>, StoreError>;

    /// The snapshots of a monitor's runs that kept one (succeeded runs),
    /// in `order`.
    async fn monitor_snapshots(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        order: SnapshotOrder,
        limit: u32,
    ) -> Result<Vec<StoredSnapshot>, StoreError>;

    /// The latest state of the first `limit` monitors of every workspace
    /// (oldest first), read by index from each monitor's newest run and
    /// baseline run: no scan of the history.
    async fn monitor_gauges(&self, limit: u32) -> Result<Vec<MonitorGauge>, StoreError>;

    /// Tracked values of a monitor, oldest first, optionally of one name.
    async fn monitor_series(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SeriesPoint>, StoreError>;
}
