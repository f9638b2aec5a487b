//! The worker protocol under `/internal/v1/worker/`: claim, heartbeat,
//! complete, fail, release. Workers speak only this; they never touch the
//! database. Every call after `claim` presents the lease's fencing token
//! (the attempt number), and a call with a stale token changes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{JobError, JobId, JobResult, JobSpec, PolicySet, QueueName, RunEngine, WorkerId};

/// Ask for up to `limit` due jobs, waiting up to `wait_ms` for one to appear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Stored behind the key's id (`<key id>.<worker_id>`), which leaves 111
    /// of a worker id's 128 characters; the same on every call.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    /// Queues to take jobs from; empty means every queue.
    #[serde(default)]
    pub queues: Vec<QueueName>,
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: u32,
    /// Waits longer than 30 s are cut to 30 s.
    // Not utoipa's `int64` for a u64: the document would refuse values the API accepts.
    #[serde(default)]
    #[schema(format = "uint64")]
    pub wait_ms: u64,
    /// The engines this claim has room for: only jobs that run on one of
    /// them are leased. A worker with free HTTP slots but no free browser
    /// slot claims `["http"]`. Omitted means `["http"]`, what a worker
    /// without a browser can run.
    #[serde(default = "default_claim_engines")]
    #[schema(min_items = 1, max_items = 2)]
    pub engines: Vec<RunEngine>,
}

fn default_claim_engines() -> Vec<RunEngine> {
    vec![RunEngine::Http]
}

/// A job handed to a worker, with its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimedJob {
    pub job_id: JobId,
    /// The fencing token: present it on every later call about this job.
    pub attempt: u32,
    pub lease_expires_at: DateTime<Utc>,
    /// When the job became due; the claim latency is measured from here.
    pub due_at: DateTime<Utc>,
    pub queue: QueueName,
    pub spec: JobSpec,
    /// The engine this attempt runs on (for `auto` jobs, decided by the
    /// control plane).
    #[serde(default)]
    pub run_on: RunEngine,
    /// Why this engine, for `auto` jobs (e.g. a step needs a browser, or the
    /// domain is remembered to need one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_reason: Option<String>,
    /// The domain policies of the job's workspace, so the worker decides
    /// every hop (redirects land anywhere) as the control plane did at
    /// submission; absent when the workspace has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<PolicySet>,
}

impl ClaimedJob {
    pub fn lease(&self) -> LeaseRef {
        LeaseRef {
            job_id: self.job_id,
            attempt: self.attempt,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimResponse {
    pub jobs: Vec<ClaimedJob>,
}

/// A lease as the worker names it: which job, which attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    pub job_id: JobId,
    // Not utoipa's `int32` for a u32: the document would refuse attempts the API accepts.
    #[schema(format = "uint32")]
    pub attempt: u32,
}

/// Extend every lease a worker holds, in one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub leases: Vec<LeaseRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatResponse {
    /// Leases that were extended.
    pub extended: Vec<JobId>,
    /// Jobs cancelled by a user: abort them.
    pub cancelled: Vec<JobId>,
    /// Leases this worker no longer holds (expired and given to another
    /// attempt, or the job is gone): abort them, their results would be refused.
    pub lost: Vec<JobId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteItem {
    pub job_id: JobId,
    #[schema(format = "uint32")]
    pub attempt: u32,
    pub result: JobResult,
}

/// Report successful attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub items: Vec<CompleteItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailItem {
    pub job_id: JobId,
    #[schema(format = "uint32")]
    pub attempt: u32,
    pub error: JobError,
}

/// Report failed attempts; the queue decides between retry and dead-letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub items: Vec<FailItem>,
}

/// An `auto` job's HTTP attempt found that the page needs a browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateItem {
    pub job_id: JobId,
    #[schema(format = "uint32")]
    pub attempt: u32,
    /// What showed that a browser is needed, in a sentence (kept on the
    /// job and in the result).
    #[schema(max_length = 512)]
    pub reason: String,
}

/// Move `auto` jobs from the HTTP engine to the browser: each goes back to
/// the queue for a browser worker without using up an attempt, and the
/// job's domain is remembered to need a browser for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub items: Vec<EscalateItem>,
}

/// Give leases back unrun (a worker shutting down); the attempt is not counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub leases: Vec<LeaseRef>,
}

/// The answer to complete, fail and release: which items were applied and
/// which were refused. A refused item is data, not an error: the call
/// answers 200 and the other items were applied all the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportResponse {
    pub accepted: Vec<JobId>,
    pub rejected: Vec<RejectedItem>,
}

/// An item of a report that changed nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectedItem {
    pub job_id: JobId,
    pub reason: RejectReason,
}

/// Why a report's item was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The worker does not hold this lease (any more): it expired and went
    /// to another attempt, the job was cancelled or already finished, the
    /// token is wrong, or the job is not one this worker's key may see.
    StaleLease,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StaleLease => "stale_lease",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ReportResponse {
    /// Refuses these jobs as stale leases and accepts the rest.
    pub fn new(accepted: Vec<JobId>, stale: Vec<JobId>) -> Self {
        let rejected = stale
            .into_iter()
            .map(|job_id| RejectedItem {
                job_id,
                reason: RejectReason::StaleLease,
            })
            .collect();
        Self { accepted, rejected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_answer_names_each_rejected_job_with_its_reason() {
        let accepted = JobId::new();
        let stale = JobId::new();
        let answer = ReportResponse::new(vec![accepted], vec![stale]);
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "accepted": [accepted.to_string()],
                "rejected": [{"job_id": stale.to_string(), "reason": "stale_lease"}],
            })
        );
        let back: ReportResponse = serde_json::from_value(json).unwrap();
        assert_eq!(back, answer);
    }
}
