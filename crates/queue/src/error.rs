//! What can go wrong in the queue; the api maps each case to a status and code.

use accord_model::{JobId, JobState, ValidationError};
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
    #[error(transparent)]
    Store(#[from] StoreError),
}
