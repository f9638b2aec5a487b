//! Why a browser step failed, classified where it is detected. The run
//! wraps it in an [`EngineError`](crate::EngineError) that adds the step's
//! index and action.
//!
//! Messages are for the job's owner: short, naming the element, URL or
//! limit involved. Chromium's own words (protocol errors, stack traces) go to
//! the log where they are caught, never into these messages.

use std::time::Duration;

use accord_model::ErrorKind;

use super::pool::PoolError;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserFailure {
    // Retryable: the browser, the network or the server may do better next time.
    #[error("{0}")]
    Unavailable(PoolError),
    /// The job's own egress proxy (for its domain policies) did not start.
    #[error("could not start the job's egress proxy: {0}")]
    JobProxy(String),
    #[error("the browser crashed")]
    BrowserCrashed,
    #[error("the page's renderer crashed")]
    RendererCrashed,
    #[error("the job was stopped")]
    Stopped,
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("could not resolve the host of {url} ({code})")]
    Dns { url: String, code: String },
    #[error("could not load {url} ({code})")]
    Network { url: String, code: String },
    #[error("{url} answered with status {status}")]
    ErrorStatus { status: u16, url: String },
    #[error("the browser failed to {action}")]
    Protocol { action: &'static str },

    // Permanent: the same job fails the same way again.
    /// The egress guard refused the page (or a hop it redirected to); the
    /// run reports it as the HTTP engine does (`target_blocked`).
    #[error(transparent)]
    TargetBlocked(accord_egress::Blocked),
    #[error("{url} is blocked ({code})")]
    Blocked { url: String, code: String },
    #[error("{url} has an invalid or untrusted certificate ({code})")]
    Certificate { url: String, code: String },
    #[error("{url} started a download instead of loading a page; use a `download` step")]
    IsDownload { url: String },
    #[error("`{action}` needs a page: run a `navigate` step before it")]
    NoPage { action: &'static str },
    #[error("the browser cannot parse the selector `{selector}`")]
    BadSelector { selector: String },
    #[error("no element matches `{selector}` (waited {waited:?})")]
    NoElement { selector: String, waited: Duration },
    #[error("the element matching `{selector}` {problem}")]
    Element { selector: String, problem: String },
    #[error("{what} did not happen within {waited:?}")]
    WaitFailed { what: String, waited: Duration },
    #[error("assert failed: expected {expected}, got {found}")]
    AssertFailed { expected: String, found: String },
    #[error("the expression threw: {message}")]
    Script { message: String },
    #[error("{0}")]
    Refused(String),
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
}

impl BrowserFailure {
    /// Crashes, timeouts, network trouble and overloaded servers may go
    /// away; everything else fails the same way on every attempt.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_)
            | Self::JobProxy(_)
            | Self::BrowserCrashed
            | Self::RendererCrashed
            | Self::Stopped
            | Self::Timeout { .. }
            | Self::Dns { .. }
            | Self::Network { .. }
            | Self::Protocol { .. } => ErrorKind::Retryable,
            Self::ErrorStatus { status, .. } => status_kind(*status),
            Self::TargetBlocked(_)
            | Self::Blocked { .. }
            | Self::Certificate { .. }
            | Self::IsDownload { .. }
            | Self::NoPage { .. }
            | Self::BadSelector { .. }
            | Self::NoElement { .. }
            | Self::Element { .. }
            | Self::WaitFailed { .. }
            | Self::AssertFailed { .. }
            | Self::Script { .. }
            | Self::Refused(_)
            | Self::TooLarge { .. } => ErrorKind::Permanent,
        }
    }

    /// Classifies a failed load from Chromium's error code (`net::ERR_...`).
    pub fn from_net_error(url: &str, code: &str) -> Self {
        let url = url.to_owned();
        let code = code.to_owned();
        let name = code.strip_prefix("net::").unwrap_or(&code);
        match name {
            "ERR_NAME_NOT_RESOLVED" | "ERR_NAME_RESOLUTION_FAILED" | "ERR_DNS_TIMED_OUT" => {
                Self::Dns { url, code }
            }
            "ERR_ABORTED" => Self::IsDownload { url },
            _ if name.starts_with("ERR_BLOCKED")
                || matches!(
                    name,
                    "ERR_ACCESS_DENIED"
                        | "ERR_UNSAFE_PORT"
                        | "ERR_UNSAFE_REDIRECT"
                        | "ERR_DISALLOWED_URL_SCHEME"
                        | "ERR_UNKNOWN_URL_SCHEME"
                        | "ERR_INVALID_URL"
                        | "ERR_TOO_MANY_REDIRECTS"
                ) =>
            {
                Self::Blocked { url, code }
            }
            _ if name.starts_with("ERR_CERT") || name.starts_with("ERR_SSL") => {
                Self::Certificate { url, code }
            }
            _ => Self::Network { url, code },
        }
    }
}

/// 429 and 5xx may pass; other error statuses will not.
fn status_kind(status: u16) -> ErrorKind {
    if status == 429 || status >= 500 {
        ErrorKind::Retryable
    } else {
        ErrorKind::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_net_errors_are_classified() {
        let check = |code: &str, expected: ErrorKind, message: &str| {
            let failure = BrowserFailure::from_net_error("http://x.test/", code);
            assert_eq!(failure.kind(), expected, "{code}");
            assert_eq!(failure.to_string(), message, "{code}");
        };
        check(
            "net::ERR_NAME_NOT_RESOLVED",
            ErrorKind::Retryable,
            "could not resolve the host of http://x.test/ (net::ERR_NAME_NOT_RESOLVED)",
        );
        check(
            "net::ERR_CONNECTION_REFUSED",
            ErrorKind::Retryable,
            "could not load http://x.test/ (net::ERR_CONNECTION_REFUSED)",
        );
        check(
            "net::ERR_CONNECTION_RESET",
            ErrorKind::Retryable,
            "could not load http://x.test/ (net::ERR_CONNECTION_RESET)",
        );
        check(
            "net::ERR_BLOCKED_BY_CLIENT",
            ErrorKind::Permanent,
            "http://x.test/ is blocked (net::ERR_BLOCKED_BY_CLIENT)",
        );
        check(
            "net::ERR_CERT_AUTHORITY_INVALID",
            ErrorKind::Permanent,
            "http://x.test/ has an invalid or untrusted certificate (net::ERR_CERT_AUTHORITY_INVALID)",
        );
        check(
            "net::ERR_ABORTED",
            ErrorKind::Permanent,
            "http://x.test/ started a download instead of loading a page; use a `download` step",
        );
    }

    #[test]
    fn error_statuses_retry_only_when_the_server_may_recover() {
        let check = |status: u16, expected: ErrorKind| {
            let failure = BrowserFailure::ErrorStatus {
                status,
                url: "http://x.test/".into(),
            };
            assert_eq!(failure.kind(), expected, "{status}");
        };
        check(503, ErrorKind::Retryable);
        check(500, ErrorKind::Retryable);
        check(429, ErrorKind::Retryable);
        check(404, ErrorKind::Permanent);
        check(403, ErrorKind::Permanent);
    }
}
