//! What can go wrong in the queue; the api maps each case to a status and code.

use accord_artifacts::BlobError;
use accord_model::{ArtifactName, ContentTypeError, JobId, JobState, MonitorId, ValidationError};
use accord_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job {0} not found")]
    JobNotFound(JobId),
    #[error("invalid job: {0}")]
    Invalid(#[from] ValidationError),
    #[error("target not allowed: {0}")]
    TargetNotAllowed(String),
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("job {id} is {state} and cannot be cancelled")]
    NotCancellable { id: JobId, state: JobState },
    #[error("job {id} is {state}; only dead or cancelled jobs can be retried")]
    NotRetryable { id: JobId, state: JobState },
    /// The worker does not hold the lease it uploads for (any more).
    #[error("the lease of job {job_id} at attempt {attempt} is not held by this worker (it expired, moved on, or the job finished)")]
    StaleLease { job_id: JobId, attempt: u32 },
    #[error(
        "artifact names starting with `manifest-` are reserved for evidence manifests, not {0}"
    )]
    ReservedArtifactName(ArtifactName),
    #[error("Content-Type: {0}")]
    InvalidContentType(#[from] ContentTypeError),
    #[error("an artifact of {size} bytes is larger than the limit of {max} bytes")]
    ArtifactTooLarge { size: u64, max: u64 },
    #[error("the workspace's artifacts hold {usage} of {quota} bytes; {size} more do not fit")]
    QuotaExceeded { usage: u64, quota: u64, size: u64 },
    #[error("the job already holds {max} artifacts, the most one job may hold")]
    TooManyArtifacts { max: u32 },
    #[error("job {job_id} has no artifact named {name}")]
    ArtifactNotFound { job_id: JobId, name: ArtifactName },
    #[error("job {job_id} has no evidence manifest{}", .attempt.map(|a| format!(" for attempt {a}")).unwrap_or_default())]
    ManifestNotFound { job_id: JobId, attempt: Option<u32> },
    #[error("monitor {0} not found")]
    MonitorNotFound(MonitorId),
    #[error("monitor {monitor} has no run {run}")]
    RunNotFound { monitor: MonitorId, run: i64 },
    #[error("workflow run {0} not found")]
    WorkflowRunNotFound(JobId),
    #[error("monitor {0} has a run in progress; a monitor never runs twice at once")]
    MonitorBusy(MonitorId),
    #[error("monitor {0} was changed or deleted meanwhile; read it again")]
    MonitorChanged(MonitorId),
    #[error("notification target {0} not found")]
    TargetNotFound(accord_model::TargetId),
    #[error("notification target {0} was changed or deleted meanwhile; read it again")]
    TargetChanged(accord_model::TargetId),
    #[error("notification target {0} is not a webhook: only webhooks have a signing secret")]
    NotAWebhook(accord_model::TargetId),
    #[error("domain policy {0} not found")]
    PolicyNotFound(accord_model::PolicyId),
    #[error("this workspace already has a domain policy for `{0}`")]
    PolicyExists(String),
    #[error("domain policy {0} was changed or deleted meanwhile; read it again")]
    PolicyChanged(accord_model::PolicyId),
    /// A policy request that does not make sense (a 400 naming the field).
    #[error("{0}")]
    InvalidPolicy(ValidationError),
    /// A domain policy refuses the submitted work.
    #[error("{0}")]
    PolicyDenied(accord_model::PolicyDenial),
    #[error("delivery {0} not found")]
    DeliveryNotFound(accord_model::MessageId),
    /// A computation on a blocking thread panicked or was cancelled.
    #[error("finish a computation on a blocking thread: {0}")]
    Blocking(String),
    #[error("no blob store is configured for artifacts")]
    NoBlobStore,
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
