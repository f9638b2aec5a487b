//! Engine errors, classified retryable or permanent where they arise.
//!
//! [`EngineError`] is what a run returns: a [`StepFailure`] plus the index of
//! the step that failed. Its `Display` text is the message stored on the job,
//! so every message says what went wrong in terms a user can act on.

use std::time::Duration;

use accord_model::{ErrorKind, JobError};

use crate::bounded::Exceeded;
use crate::RefusedTarget;

impl From<Exceeded> for StepFailure {
    fn from(exceeded: Exceeded) -> Self {
        match exceeded {
            Exceeded::Cancelled => Self::ProcessingCancelled,
            limit => Self::PageTooCostly(limit),
        }
    }
}

/// Why a run failed, and at which step.
#[derive(Debug, thiserror::Error)]
#[error("{failure}")]
pub struct EngineError {
    step: Option<usize>,
    failure: StepFailure,
}

impl EngineError {
    pub(crate) fn at_step(step: usize, failure: StepFailure) -> Self {
        Self {
            step: Some(step),
            failure,
        }
    }

    pub(crate) fn whole_job(failure: StepFailure) -> Self {
        Self {
            step: None,
            failure,
        }
    }

    /// Whether another attempt could succeed.
    pub fn kind(&self) -> ErrorKind {
        self.failure.kind()
    }

    /// Index of the failing step, when a step failed.
    pub fn step(&self) -> Option<usize> {
        self.step
    }

    pub fn failure(&self) -> &StepFailure {
        &self.failure
    }
}

impl From<EngineError> for JobError {
    fn from(err: EngineError) -> Self {
        let error = JobError::new(err.kind(), err.to_string());
        match err.step {
            Some(step) => error.at_step(step),
            None => error,
        }
    }
}

/// What went wrong in one step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepFailure {
    #[error("the job has no steps")]
    NoSteps,
    #[error(
        "step {step} (`{action}`) is not supported by the http engine; use the browser engine"
    )]
    Unsupported { step: usize, action: &'static str },
    #[error("`{action}` needs a page: run a `navigate` step before it")]
    NoPage { action: &'static str },
    #[error(transparent)]
    Refused(#[from] RefusedTarget),
    #[error("too many redirects: gave up after {max} starting at {url}")]
    TooManyRedirects { max: usize, url: String },
    #[error("response body of {url} is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize, url: String },
    #[error("{url} answered with status {status}")]
    ErrorStatus { status: u16, url: String },
    #[error("navigate to {url} timed out after {after:?}")]
    Timeout { after: Duration, url: String },
    #[error("could not fetch {url}: {detail}")]
    Network { url: String, detail: String },
    #[error("the page is too costly to process: {0}")]
    PageTooCostly(Exceeded),
    #[error("assert failed: expected {expected}, got {found}")]
    AssertFailed { expected: String, found: String },
    #[error("page processing panicked: {detail}")]
    ProcessingPanicked { detail: String },
    #[error("page processing was cancelled")]
    ProcessingCancelled,
    #[error(transparent)]
    Browser(#[from] crate::browser::BrowserFailure),
}

impl StepFailure {
    /// Network trouble and overloaded servers may go away; everything else
    /// fails the same way on every attempt.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ErrorStatus { .. }
            | Self::Timeout { .. }
            | Self::Network { .. }
            | Self::ProcessingCancelled => ErrorKind::Retryable,
            Self::NoSteps
            | Self::Unsupported { .. }
            | Self::NoPage { .. }
            | Self::Refused(_)
            | Self::TooManyRedirects { .. }
            | Self::BodyTooLarge { .. }
            | Self::PageTooCostly(_)
            | Self::AssertFailed { .. }
            | Self::ProcessingPanicked { .. } => ErrorKind::Permanent,
            Self::Browser(failure) => failure.kind(),
        }
    }
}

/// Why [`HttpEngine::new`](crate::HttpEngine::new) refused its configuration.
#[derive(Debug, thiserror::Error)]
pub enum EngineBuildError {
    #[error("invalid user agent {0:?}: not a valid HTTP header value")]
    UserAgent(String),
    #[error("could not build the http client")]
    Client(#[source] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_errors_keep_message_kind_and_step() {
        let check =
            |err: EngineError, expected: JobError| assert_eq!(JobError::from(err), expected);
        check(
            EngineError::at_step(
                2,
                StepFailure::Unsupported {
                    step: 2,
                    action: "click",
                },
            ),
            JobError::new(
                ErrorKind::Permanent,
                "step 2 (`click`) is not supported by the http engine; use the browser engine",
            )
            .at_step(2),
        );
        check(
            EngineError::at_step(
                0,
                StepFailure::ErrorStatus {
                    status: 503,
                    url: "http://x.test/".into(),
                },
            ),
            JobError::new(
                ErrorKind::Retryable,
                "http://x.test/ answered with status 503",
            )
            .at_step(0),
        );
        check(
            EngineError::whole_job(StepFailure::NoSteps),
            JobError::new(ErrorKind::Permanent, "the job has no steps"),
        );
    }
}
