//! A job as stored and as shown: its state machine and priority.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    Engine, JobError, JobId, JobResult, QueueName, RetryPolicy, Step, WorkerId, WorkspaceId,
};

/// How urgent a job is. Workers always take the most urgent due job first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Critical, Self::High, Self::Normal, Self::Low];

    /// The sort rank stored in the database: lower is claimed first.
    pub fn rank(self) -> i16 {
        match self {
            Self::Critical => 0,
            Self::High => 1,
            Self::Normal => 2,
            Self::Low => 3,
        }
    }

    pub fn from_rank(rank: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.rank() == rank)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a job is in its life.
///
/// ```text
///  scheduled ─┐                      ┌─> succeeded
///             ├─> (due) ─> running ──┼─> retrying ─> (due) ─> running ...
///  available ─┘                      ├─> dead ──(retry)──> available
///                                    └─> cancelled ─(retry)─> available
/// ```
/// `scheduled`, `available` and `retrying` jobs are claimable once their
/// `run_at` has passed; the last three states are terminal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Scheduled,
    Available,
    Running,
    Retrying,
    Succeeded,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        Self::Scheduled,
        Self::Available,
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::Dead,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Available => "available",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// Waiting to be claimed (once due).
    pub fn is_queued(self) -> bool {
        matches!(self, Self::Scheduled | Self::Available | Self::Retrying)
    }

    /// Will never change again on its own (only an operator's retry revives it).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// A job with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub id: JobId,
    pub workspace_id: WorkspaceId,
    pub queue: QueueName,
    pub priority: Priority,
    pub state: JobState,
    pub engine: Engine,
    pub steps: Vec<Step>,
    pub labels: BTreeMap<String, String>,
    /// When the job becomes (or became) due.
    pub run_at: DateTime<Utc>,
    pub max_attempts: u32,
    pub timeout_seconds: u32,
    pub retry: RetryPolicy,
    /// How many attempts have started. Also the fencing token of the current lease.
    pub attempt: u32,
    /// Attempts left before the job is dead-lettered.
    pub attempts_left: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Set while `running`: the worker holding the lease, and until when.
    pub worker_id: Option<WorkerId>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub result: Option<JobResult>,
    pub last_error: Option<JobError>,
}
