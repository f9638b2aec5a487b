//! Job events: the append-only history of every state transition.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{JobId, JobState, WorkerId};

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Claimed,
    Succeeded,
    Failed,
    LeaseExpired,
    Released,
    Cancelled,
    Requeued,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        Self::Created,
        Self::Claimed,
        Self::Succeeded,
        Self::Failed,
        Self::LeaseExpired,
        Self::Released,
        Self::Cancelled,
        Self::Requeued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Claimed => "claimed",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::LeaseExpired => "lease_expired",
            Self::Released => "released",
            Self::Cancelled => "cancelled",
            Self::Requeued => "requeued",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobEvent {
    /// Increasing within a store; use it to page and to resume streams.
    pub id: i64,
    pub job_id: JobId,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    /// `None` for `created`.
    pub from_state: Option<JobState>,
    pub to_state: JobState,
    pub attempt: u32,
    pub worker_id: Option<WorkerId>,
    pub message: Option<String>,
}
