//! Response bodies of the REST API that are not domain types themselves:
//! pages, statistics, status and the error body. Shared by the server and
//! the typed client so both read the same shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Job, JobEvent, JobState, Priority};

/// `POST /api/v1/jobs/batch`: many jobs, accepted all or none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJobBatch {
    /// 1 to 1000 jobs.
    pub jobs: Vec<crate::NewJob>,
}

/// The jobs a batch created, in request order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobBatch {
    pub jobs: Vec<Job>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<Job>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A page of a job's events, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<JobEvent>,
    /// Pass as `after` to get the next page; absent when there are no more events yet.
    pub next_cursor: Option<i64>,
}

/// Throughput over the last minute.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Throughput {
    pub succeeded: u64,
    pub dead: u64,
    pub cancelled: u64,
    /// Finished jobs per second, averaged over the minute.
    pub per_second: f64,
}

/// Counts and flow of the queue in this workspace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueStatsView {
    /// Every state, zero included.
    pub by_state: BTreeMap<JobState, u64>,
    /// Priority, then state.
    pub by_priority: BTreeMap<Priority, BTreeMap<JobState, u64>>,
    /// Queue name, then state.
    pub by_queue: BTreeMap<String, BTreeMap<JobState, u64>>,
    /// How long the longest-waiting due job has waited.
    pub oldest_available_age_seconds: Option<f64>,
    pub last_minute: Throughput,
}

/// What this control plane is and how it is doing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OpsStatus {
    pub version: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    pub store_reachable: bool,
    pub uptime_seconds: u64,
    /// Workers heard from within two lease lengths.
    pub active_workers: usize,
    pub lease_ttl_seconds: u64,
    /// Finished jobs are deleted after this long; absent when kept forever.
    pub retention_seconds: Option<u64>,
    pub allow_private_targets: bool,
    /// Whether this replica runs the reaper and the pruner (one replica
    /// does at a time).
    pub maintenance_leader: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `ok` (alive), `ready`, `degraded` (ready, but Redis is down: rate
    /// limits are per replica until it is back) or `unavailable` (the
    /// database does not answer).
    pub status: String,
    /// `up` or `down`; absent when no Redis is configured (and on `/health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code; see the table in the API docs.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Extra structured context; reserved for codes that need it (none today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}
