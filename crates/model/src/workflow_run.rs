//! A workflow run on its own, outside any monitor:
//! `POST /api/v1/workflows/{name}/run` takes a [`NewWorkflowRun`] and
//! answers a [`WorkflowRunView`], which `GET /api/v1/workflow-runs/{id}`
//! reads back with the outcome once the job finished.
//!
//! A run is identified by its job's id: one run is one job. It has no
//! baseline, so its outcome is what a monitor's first run would report.
//! Deliberately does not know the workflows' inputs (the workflows crate
//! parses `input` for its kind).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Engine, JobId, JobState, RunState, TargetUrl, WorkflowKind};

fn default_input() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// `POST /api/v1/workflows/{name}/run`: what to run the workflow on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkflowRun {
    /// The page the workflow loads.
    #[schema(value_type = String, format = Uri)]
    pub url: TargetUrl,
    #[serde(default)]
    pub engine: Engine,
    /// The workflow's input (see `GET /api/v1/workflows/{name}`).
    #[serde(default = "default_input")]
    pub input: serde_json::Value,
}

/// One workflow run (`GET /api/v1/workflow-runs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowRunView {
    /// The run's id: its job's.
    pub id: JobId,
    pub workflow: WorkflowKind,
    #[schema(value_type = String, format = Uri)]
    pub url: TargetUrl,
    pub engine: Engine,
    /// The input as the workflow reads it (defaults filled).
    pub input: serde_json::Value,
    /// `running` until the job finished; then `succeeded` with an
    /// `outcome`, or `error` (`failed` for a smoke check whose page could
    /// not be loaded) with an `error`.
    pub state: RunState,
    /// The job's own state (the job stays readable at `/api/v1/jobs/{id}`
    /// until retention prunes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_state: Option<JobState>,
    /// The workflow's outcome (`RunOutcome`), computed when the job
    /// completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
    /// What the run extracted, with the outcome (the workflow's snapshot:
    /// `page_change`, the normalised `text` and tracked `values`;
    /// `extract_items`, the `items`). A run has no baseline, so its outcome
    /// alone reports nothing new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<serde_json::Value>,
    /// Why the run has no outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Where to read this run back.
    pub url_self: String,
}

impl WorkflowRunView {
    /// The path of a run's resource.
    pub fn path(id: JobId) -> String {
        format!("/api/v1/workflow-runs/{id}")
    }
}
