//! What both backends' schemas share: the column list of `jobs`, the sets of
//! claimable and terminal states as SQL, decoding stored text into model
//! values, and the error the reaper records. Each backend maps its own row
//! type with these; nothing here knows which database it is.

use accord_model::{
    ApiKeyId, AuditOutcome, Engine, ErrorKind, JobError, JobState, Priority, QueueName, RateLimit,
    Role, RunEngine, WorkerId,
};

use crate::StoreError;

/// Every column of `jobs`, in the order each backend's `job_from_row` reads
/// them by name.
pub(crate) const JOB_COLUMNS: &str = "id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
    max_attempts, timeout_seconds, attempt, attempt_offset, run_at, created_at, updated_at, started_at, \
    finished_at, worker_id, lease_expires_at, result, last_error";

/// The states a claim takes jobs from, as an SQL list.
pub(crate) const CLAIMABLE: &str = "('scheduled', 'available', 'retrying')";

/// The finished states, as an SQL list.
pub(crate) const TERMINAL: &str = "('succeeded', 'dead', 'cancelled')";

/// The states an operator may requeue a job from, as an SQL list.
pub(crate) const REQUEUEABLE: &str = "('dead', 'cancelled')";

pub(crate) fn parse_state(text: &str) -> Result<JobState, StoreError> {
    text.parse()
        .map_err(|err| StoreError::corrupt("job state", err))
}

pub(crate) fn parse_queue(text: String) -> Result<QueueName, StoreError> {
    QueueName::new(text).map_err(|err| StoreError::corrupt("queue name", err))
}

pub(crate) fn parse_engine(text: &str) -> Result<Engine, StoreError> {
    Engine::parse(text).ok_or_else(|| StoreError::corrupt("engine", text))
}

pub(crate) fn parse_run_engine(text: &str) -> Result<RunEngine, StoreError> {
    RunEngine::parse(text).ok_or_else(|| StoreError::corrupt("run engine", text))
}

pub(crate) fn parse_priority(rank: i16) -> Result<Priority, StoreError> {
    Priority::from_rank(rank).ok_or_else(|| StoreError::corrupt("priority", rank))
}

pub(crate) fn parse_worker(text: Option<String>) -> Result<Option<WorkerId>, StoreError> {
    text.map(|w| WorkerId::new(w).map_err(|err| StoreError::corrupt("worker id", err)))
        .transpose()
}

pub(crate) fn parse_key_id(text: &str) -> Result<ApiKeyId, StoreError> {
    text.parse()
        .map_err(|err| StoreError::corrupt("key id", err))
}

pub(crate) fn parse_role(text: &str) -> Result<Role, StoreError> {
    text.parse().map_err(|err| StoreError::corrupt("role", err))
}

pub(crate) fn parse_audit_outcome(text: &str) -> Result<AuditOutcome, StoreError> {
    text.parse()
        .map_err(|err| StoreError::corrupt("audit outcome", err))
}

pub(crate) fn parse_status(status: i64) -> Result<u16, StoreError> {
    u16::try_from(status).map_err(|err| StoreError::corrupt("status", err))
}

/// A key's own rate limit, stored as two columns that are both set or both
/// `NULL`.
pub(crate) fn parse_rate_limit(
    burst: Option<i64>,
    per_second: Option<f64>,
) -> Result<Option<RateLimit>, StoreError> {
    match (burst, per_second) {
        (Some(burst), Some(per_second)) => Ok(Some(RateLimit {
            burst: u32::try_from(burst).map_err(|err| StoreError::corrupt("rate burst", err))?,
            per_second,
        })),
        _ => Ok(None),
    }
}

/// The error the reaper records on a job whose lease expired.
/// Why a monitor run ended without an outcome when its job was cancelled.
pub(crate) const RUN_CANCELLED: &str = "the run's job was cancelled";
/// Why a monitor run ended without an outcome when its worker died on the
/// job's last attempt.
pub(crate) const RUN_LEASE_EXPIRED: &str =
    "the worker stopped renewing its lease on the job's last attempt (it died, hung or lost its connection)";

pub(crate) fn lease_expired_error() -> JobError {
    JobError::new(
        ErrorKind::LeaseExpired,
        "the worker stopped renewing its lease (it died, hung or lost its connection)",
    )
}

/// Refuses a job whose text no backend can keep: PostgreSQL's text and
/// JSON types cannot hold NUL, so SQLite refuses it too and both stores
/// accept exactly the same jobs.
pub(crate) fn check_storable(insert: &crate::InsertJob) -> Result<(), StoreError> {
    let nul = |text: &str| text.contains('\0');
    let key_has_nul = insert.idempotency.as_ref().is_some_and(|(key, _)| nul(key));
    if key_has_nul {
        return Err(StoreError::Unstorable {
            what: "an idempotency key",
        });
    }
    let job = &insert.job;
    let labels = job.labels.iter().any(|(key, value)| nul(key) || nul(value));
    // Every free text a step carries, as the model lists them. (URLs,
    // selectors and other parsed values cannot hold NUL: their parsers
    // refuse or encode it.)
    let steps = job
        .steps
        .iter()
        .any(|step| step.texts().iter().any(|entry| nul(entry.text)));
    if labels || steps {
        return Err(StoreError::Unstorable { what: "a job" });
    }
    Ok(())
}

/// Whether a label filter can match nothing stored (it holds NUL), so both
/// backends answer it alike without asking the database.
pub(crate) fn label_filter_is_unmatchable(filter: &crate::JobFilter) -> bool {
    filter
        .label
        .as_ref()
        .is_some_and(|(key, value)| key.contains('\0') || value.contains('\0'))
}

pub(crate) fn parse_artifact_name(text: String) -> Result<accord_model::ArtifactName, StoreError> {
    accord_model::ArtifactName::new(text).map_err(|err| StoreError::corrupt("artifact name", err))
}

pub(crate) fn parse_digest(text: &str) -> Result<accord_model::Sha256Digest, StoreError> {
    text.parse()
        .map_err(|err| StoreError::corrupt("artifact digest", err))
}

pub(crate) fn parse_workflow(text: &str) -> Result<accord_model::WorkflowKind, StoreError> {
    accord_model::WorkflowKind::parse(text).ok_or_else(|| StoreError::corrupt("workflow", text))
}

pub(crate) fn parse_target(text: &str) -> Result<accord_model::TargetUrl, StoreError> {
    accord_model::TargetUrl::parse(text).map_err(|err| StoreError::corrupt("monitor url", err))
}

/// A stored schedule, parsed again (it was checked against the workspace's
/// minimum when written, so none applies here).
pub(crate) fn parse_schedule(
    spec: &accord_model::ScheduleSpec,
) -> Result<accord_model::Schedule, StoreError> {
    accord_model::Schedule::parse(spec, "schedule", 0)
        .map_err(|err| StoreError::corrupt("monitor schedule", err))
}

pub(crate) fn parse_run_state(text: &str) -> Result<accord_model::RunState, StoreError> {
    accord_model::RunState::parse(text).ok_or_else(|| StoreError::corrupt("run state", text))
}

pub(crate) fn parse_trigger(text: &str) -> Result<accord_model::RunTrigger, StoreError> {
    accord_model::RunTrigger::parse(text).ok_or_else(|| StoreError::corrupt("run trigger", text))
}

/// Refuses a monitor no backend can keep (NUL in text), before any
/// statement runs.
pub(crate) fn check_monitor_storable(monitor: &accord_model::Monitor) -> Result<(), StoreError> {
    let input = monitor.input.to_string();
    if monitor.name.contains('\0') || input.contains("\\u0000") {
        return Err(StoreError::Unstorable { what: "monitor" });
    }
    Ok(())
}

pub(crate) fn parse_target_kind(text: &str) -> Result<accord_model::TargetKind, StoreError> {
    accord_model::TargetKind::parse(text).ok_or_else(|| StoreError::corrupt("target kind", text))
}

pub(crate) fn parse_address(
    kind: accord_model::TargetKind,
    text: &str,
) -> Result<accord_model::TargetAddress, StoreError> {
    accord_model::TargetAddress::parse(kind, text)
        .map_err(|err| StoreError::corrupt("target address", err))
}

pub(crate) fn parse_secret(
    text: Option<String>,
) -> Result<Option<accord_model::WebhookSecret>, StoreError> {
    text.map(|text| {
        text.parse()
            .map_err(|err: String| StoreError::corrupt("webhook secret", err))
    })
    .transpose()
}

pub(crate) fn parse_delivery_state(text: &str) -> Result<accord_model::DeliveryState, StoreError> {
    accord_model::DeliveryState::parse(text)
        .ok_or_else(|| StoreError::corrupt("delivery state", text))
}

pub(crate) fn parse_events(
    names: &[String],
) -> Result<std::collections::BTreeSet<accord_model::NotifyEvent>, StoreError> {
    names
        .iter()
        .map(|name| {
            accord_model::NotifyEvent::parse(name)
                .ok_or_else(|| StoreError::corrupt("notification event", name))
        })
        .collect()
}

/// Why a target was paused automatically.
pub(crate) fn pause_reason(after: u32) -> String {
    format!("paused after {after} failed attempts in a row")
}

/// The events of a run a subscription asks for, as stored.
pub(crate) fn matching_events(
    subscription: &accord_model::Subscription,
    events: &std::collections::BTreeSet<accord_model::NotifyEvent>,
) -> Vec<String> {
    subscription
        .events
        .intersection(events)
        .map(|event| event.as_str().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use accord_model::JobState;

    use super::*;

    /// The SQL lists name exactly the states the model calls queued,
    /// terminal and requeueable.
    #[test]
    fn state_lists_match_the_model() {
        let list = |keep: fn(JobState) -> bool| {
            let names: Vec<String> = JobState::ALL
                .into_iter()
                .filter(|state| keep(*state))
                .map(|state| format!("'{state}'"))
                .collect();
            format!("({})", names.join(", "))
        };
        assert_eq!(CLAIMABLE, list(JobState::is_queued));
        assert_eq!(TERMINAL, list(JobState::is_terminal));
        assert_eq!(
            REQUEUEABLE,
            list(|state| matches!(state, JobState::Dead | JobState::Cancelled))
        );
    }
}
