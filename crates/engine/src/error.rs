//! Engine errors, classified retryable or permanent where they arise.
//!
//! [`EngineError`] is what a run returns: a [`StepFailure`] plus the index
//! and action of the step that failed. Its `Display` text is the message
//! stored on the job ("step 2 (`assert`): ..."), so every message says which
//! step went wrong and why, in terms a user can act on. What a server or a
//! browser said in its own words goes to the log, not here.

use std::time::Duration;

use accord_model::{ErrorKind, JobError, JobErrorCode, Step};

use crate::bounded::Exceeded;
use accord_egress::Blocked;

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
pub struct EngineError {
    step: Option<usize>,
    action: Option<&'static str>,
    failure: StepFailure,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.step, self.action) {
            (Some(step), Some(action)) => write!(f, "step {step} (`{action}`): ")?,
            (Some(step), None) => write!(f, "step {step}: ")?,
            (None, _) => {}
        }
        write!(f, "{}", self.failure)
    }
}

impl EngineError {
    /// A failure of `step`, the `index`-th step of its job.
    pub(crate) fn at(index: usize, step: &Step, failure: StepFailure) -> Self {
        Self {
            step: Some(index),
            action: Some(step.action()),
            failure,
        }
    }

    /// A failure of the `index`-th step, when the step itself is not at
    /// hand (its message then names the index only).
    pub(crate) fn at_step(index: usize, failure: StepFailure) -> Self {
        Self {
            step: Some(index),
            action: None,
            failure,
        }
    }

    /// An `auto` job's page needs a browser, as found at `step`.
    pub fn needs_browser(step: usize, reason: impl Into<String>) -> Self {
        Self::at_step(
            step,
            StepFailure::NeedsBrowser {
                reason: reason.into(),
            },
        )
    }

    pub(crate) fn whole_job(failure: StepFailure) -> Self {
        Self {
            step: None,
            action: None,
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

    /// The wire name of the failing step, when known.
    pub fn action(&self) -> Option<&'static str> {
        self.action
    }

    pub fn failure(&self) -> &StepFailure {
        &self.failure
    }

    /// The status the site answered with, when the failure is about one.
    pub fn status(&self) -> Option<u16> {
        match &self.failure {
            StepFailure::ErrorStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What this failure says about the site, for its politeness state:
    /// whether it asked us to wait, is in trouble, or simply answered.
    pub fn site_signal(&self) -> SiteSignal {
        match &self.failure {
            StepFailure::ErrorStatus {
                status: 429 | 503,
                retry_after: Some(wait),
                ..
            } => SiteSignal::RetryAfter(*wait),
            StepFailure::ErrorStatus { status, .. } if *status == 429 || *status >= 500 => {
                SiteSignal::Trouble
            }
            StepFailure::Timeout { .. } | StepFailure::Network { .. } => SiteSignal::Trouble,
            // Never sent, stopped, or the browser's own trouble: says nothing.
            StepFailure::Refused(_)
            | StepFailure::ProcessingCancelled
            | StepFailure::NoSteps
            | StepFailure::Unsupported { .. }
            | StepFailure::InvalidStep(_)
            | StepFailure::Browser(_) => SiteSignal::Unknown,
            _ => SiteSignal::Answered,
        }
    }

    /// Why the page needs a browser, when an `auto` job's HTTP attempt
    /// found that it does.
    pub fn browser_needed(&self) -> Option<&str> {
        match &self.failure {
            StepFailure::NeedsBrowser { reason } => Some(reason),
            _ => None,
        }
    }
}

/// What a run showed about the site it visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteSignal {
    /// The site answered (the job may still have failed for its own reasons).
    Answered,
    /// Network trouble, a timeout, 5xx or 429: counts towards its breaker.
    Trouble,
    /// 429 or 503 with `Retry-After`: every request to it waits this long.
    RetryAfter(Duration),
    /// Nothing was learned.
    Unknown,
}

impl From<EngineError> for JobError {
    fn from(err: EngineError) -> Self {
        let mut error = JobError::new(err.kind(), err.to_string());
        match err.failure {
            StepFailure::Refused(_) => error = error.with_code(JobErrorCode::TargetBlocked),
            StepFailure::PolicyDenied(_) => error = error.with_code(JobErrorCode::PolicyDenied),
            _ => {}
        }
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
        "the {engine} engine cannot run this step; submit the job with `\"engine\": \"browser\"`"
    )]
    Unsupported { engine: &'static str },
    #[error("the step is invalid: {0}")]
    InvalidStep(String),
    #[error("`{action}` needs a page: run a `navigate` step before it")]
    NoPage { action: &'static str },
    #[error(transparent)]
    Refused(#[from] Blocked),
    #[error("too many redirects: gave up after {max} starting at {url}")]
    TooManyRedirects { max: usize, url: String },
    /// A domain policy of the job refused a hop (a redirect, a link followed).
    #[error("{0}")]
    PolicyDenied(String),
    /// The job's own HTTP client (for its policies) could not be built.
    #[error("could not prepare the job's HTTP client: {0}")]
    JobClient(String),
    #[error("response body of {url} is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64, url: String },
    /// A status that ends the step: 429 and 5xx (retryable) on any fetch,
    /// other 4xx and unfollowed 3xx (permanent) on a download.
    #[error("{url} answered with status {status}")]
    ErrorStatus {
        status: u16,
        url: String,
        /// The answer's `Retry-After`, when it had one.
        retry_after: Option<Duration>,
    },
    #[error("fetching {url} timed out after {after:?}")]
    Timeout { after: Duration, url: String },
    #[error("could not fetch {url}: {detail}")]
    Network { url: String, detail: String },
    #[error("no element matches `{selector}`")]
    NoElement { selector: String },
    #[error("the element matching `{selector}` has no link to follow (no `href` or `src`)")]
    NoLink { selector: String },
    #[error("the link {link:?} is not an http(s) URL")]
    BadLink { link: String },
    #[error("the page is not JSON: {detail}")]
    NotJson { detail: String },
    #[error("the page is too costly to process: {0}")]
    PageTooCostly(Exceeded),
    #[error("assert failed: expected {expected}, got {found}")]
    AssertFailed { expected: String, found: String },
    #[error("page processing panicked: {detail}")]
    ProcessingPanicked { detail: String },
    #[error("page processing was cancelled")]
    ProcessingCancelled,
    /// An `auto` job on the HTTP engine found that the page needs a browser.
    /// The worker hands the job over to a browser worker instead of failing it.
    #[error("the page needs a browser: {reason}")]
    NeedsBrowser { reason: String },
    #[error(transparent)]
    Browser(#[from] crate::browser::BrowserFailure),
}

impl StepFailure {
    /// Network trouble and overloaded servers may go away; everything else
    /// fails the same way on every attempt.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ErrorStatus { status, .. } => {
                if *status == 429 || *status >= 500 {
                    ErrorKind::Retryable
                } else {
                    ErrorKind::Permanent
                }
            }
            Self::Timeout { .. }
            | Self::Network { .. }
            | Self::ProcessingCancelled
            | Self::NeedsBrowser { .. } => ErrorKind::Retryable,
            Self::NoSteps
            | Self::Unsupported { .. }
            | Self::InvalidStep(_)
            | Self::NoPage { .. }
            | Self::Refused(_)
            | Self::TooManyRedirects { .. }
            | Self::PolicyDenied(_)
            | Self::JobClient(_)
            | Self::BodyTooLarge { .. }
            | Self::NoElement { .. }
            | Self::NoLink { .. }
            | Self::BadLink { .. }
            | Self::NotJson { .. }
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

    fn step(json: &str) -> Step {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn job_errors_keep_message_kind_and_step() {
        let check =
            |err: EngineError, expected: JobError| assert_eq!(JobError::from(err), expected);
        check(
            EngineError::at(
                2,
                &step(r#"{"action":"click","selector":"a"}"#),
                StepFailure::Unsupported { engine: "http" },
            ),
            JobError::new(
                ErrorKind::Permanent,
                "step 2 (`click`): the http engine cannot run this step; submit the job with \
                 `\"engine\": \"browser\"`",
            )
            .at_step(2),
        );
        check(
            EngineError::at(
                0,
                &step(r#"{"action":"navigate","url":"http://x.test/"}"#),
                StepFailure::ErrorStatus {
                    status: 503,
                    url: "http://x.test/".into(),
                    retry_after: None,
                },
            ),
            JobError::new(
                ErrorKind::Retryable,
                "step 0 (`navigate`): http://x.test/ answered with status 503",
            )
            .at_step(0),
        );
        check(
            EngineError::at_step(1, StepFailure::ProcessingCancelled),
            JobError::new(
                ErrorKind::Retryable,
                "step 1: page processing was cancelled",
            )
            .at_step(1),
        );
        check(
            EngineError::whole_job(StepFailure::NoSteps),
            JobError::new(ErrorKind::Permanent, "the job has no steps"),
        );
    }

    #[test]
    fn failures_are_classified_at_the_source() {
        let check = |failure: StepFailure, expected: ErrorKind| {
            assert_eq!(failure.kind(), expected, "{failure}");
        };
        let status = |status| StepFailure::ErrorStatus {
            retry_after: None,
            status,
            url: "http://x.test/".into(),
        };
        check(status(429), ErrorKind::Retryable);
        check(status(500), ErrorKind::Retryable);
        check(status(503), ErrorKind::Retryable);
        check(status(404), ErrorKind::Permanent);
        check(status(403), ErrorKind::Permanent);
        check(status(302), ErrorKind::Permanent);
        check(
            StepFailure::Timeout {
                after: Duration::from_secs(1),
                url: "u".into(),
            },
            ErrorKind::Retryable,
        );
        check(
            StepFailure::Network {
                url: "u".into(),
                detail: "connection reset".into(),
            },
            ErrorKind::Retryable,
        );
        check(
            StepFailure::NoElement {
                selector: "a".into(),
            },
            ErrorKind::Permanent,
        );
        check(
            StepFailure::AssertFailed {
                expected: "x".into(),
                found: "y".into(),
            },
            ErrorKind::Permanent,
        );
        check(
            StepFailure::Unsupported { engine: "http" },
            ErrorKind::Permanent,
        );
        check(
            StepFailure::NotJson { detail: "x".into() },
            ErrorKind::Permanent,
        );
    }
}
