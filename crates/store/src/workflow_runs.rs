//! [`WorkflowRunStore`]: workflow runs outside any monitor
//! (`POST /api/v1/workflows/{name}/run`). Implemented in each backend's
//! `workflow_runs.rs`.
//!
//! A run and its job are inserted in one transaction; the run's outcome
//! (or why it has none) is written in the same transaction as its job's
//! completion, fenced on the lease like `job_complete_if_leased`. A job
//! that fails for good leaves the run without an outcome: readers take its
//! end from the job's state (`job_state`), so the failure path needs no
//! second write.
//!
//! Outcomes and snapshots are the workflows crate's versioned formats,
//! kept as JSON.

use accord_model::{
    CompleteItem, Engine, Job, JobId, JobState, TargetUrl, WorkerId, WorkflowKind, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{InsertJob, StoreError, Transition};

/// A workflow run to start, with its job.
#[derive(Debug, Clone)]
pub struct StartWorkflowRun {
    pub workflow: WorkflowKind,
    pub url: TargetUrl,
    pub engine: Engine,
    /// The input as the workflow reads it.
    pub input: serde_json::Value,
    pub job: InsertJob,
    pub now: DateTime<Utc>,
}

/// A stored workflow run.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRun {
    pub job_id: JobId,
    pub workspace_id: WorkspaceId,
    pub workflow: WorkflowKind,
    pub url: TargetUrl,
    pub engine: Engine,
    pub input: serde_json::Value,
    pub outcome: Option<serde_json::Value>,
    /// What the run extracted (the workflow's snapshot), with the outcome.
    pub snapshot: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The job's state; none once retention pruned the job.
    pub job_state: Option<JobState>,
    /// The job's last error message, if it failed.
    pub job_error: Option<String>,
}

/// What a completed workflow run records.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowRecord {
    Outcome {
        outcome: serde_json::Value,
        snapshot: serde_json::Value,
    },
    /// The workflow could not run on what the job captured.
    Error(String),
}

/// A completion that records a workflow run's outcome.
#[derive(Debug, Clone)]
pub struct CompleteWorkflowRun {
    pub worker: WorkerId,
    pub item: CompleteItem,
    pub now: DateTime<Utc>,
    pub record: WorkflowRecord,
}

/// Workflow runs and their outcomes.
#[async_trait]
pub trait WorkflowRunStore: Send + Sync {
    /// Inserts the run and its job in one transaction; returns the job.
    async fn workflow_run_start(&self, start: &StartWorkflowRun) -> Result<Job, StoreError>;

    /// The workflow run each job is for, if it is one and has no outcome
    /// yet, in the order of `jobs`.
    async fn workflow_runs_pending(
        &self,
        jobs: &[JobId],
    ) -> Result<Vec<Option<WorkflowRun>>, StoreError>;

    /// The workflow run a job is for, if it is one and has no outcome yet.
    async fn workflow_run_pending(&self, job_id: JobId) -> Result<Option<WorkflowRun>, StoreError> {
        Ok(self.workflow_runs_pending(&[job_id]).await?.pop().flatten())
    }

    /// Completes the run's job (fenced on its lease) and records its
    /// outcome in the same transaction; `None` when the worker does not
    /// hold the lease (nothing changed).
    async fn workflow_run_complete(
        &self,
        complete: &CompleteWorkflowRun,
    ) -> Result<Option<Transition>, StoreError>;

    /// One run of a workspace, with its job's state.
    async fn workflow_run_get(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
    ) -> Result<Option<WorkflowRun>, StoreError>;

    /// Deletes up to `limit` runs that ended (or started, when they never
    /// recorded an end) before `cutoff` and whose job is finished or gone:
    /// retention, like the jobs'. Returns how many.
    async fn workflow_run_prune(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}
