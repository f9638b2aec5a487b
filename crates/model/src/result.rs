//! What running a job produced: a result on success, an error on failure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One extracted field: text (or `null` when nothing matched), or a list when
/// the field asked for `all` matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ExtractedValue {
    List(Vec<String>),
    One(Option<String>),
}

/// Where the time of a run went, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
// Not utoipa's `int64` for a u64 (nor `int32` for a u32, below): the
// document would refuse values the API accepts.
pub struct Timings {
    #[schema(format = "uint64")]
    pub total_ms: u64,
    /// Network time of all `navigate` steps (request to last body byte).
    #[schema(format = "uint64")]
    pub fetch_ms: u64,
    /// Parsing, extraction and checks.
    #[schema(format = "uint64")]
    pub process_ms: u64,
    /// Time of each step, in step order.
    #[schema(format = "uint64")]
    pub steps_ms: Vec<u64>,
}

/// The outcome of a successful run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    pub extracted: BTreeMap<String, ExtractedValue>,
    /// HTTP status of the last page loaded.
    pub status: u16,
    /// URL of the last page loaded, after redirects.
    pub final_url: String,
    pub timings: Timings,
}

/// Why an attempt failed, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Worth another attempt (network trouble, 5xx, 429).
    Retryable,
    /// Will fail the same way again (bad selector, failed assertion, refused target).
    Permanent,
    /// The attempt ran past `timeout_seconds`; retried like `retryable`.
    Timeout,
    /// The worker holding the lease stopped heartbeating.
    LeaseExpired,
}

impl ErrorKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
            Self::Timeout => "timeout",
            Self::LeaseExpired => "lease_expired",
        }
    }

    pub fn is_retryable(self) -> bool {
        !matches!(self, Self::Permanent)
    }
}

/// An attempt's failure as reported and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
    /// Index of the step that failed, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uint32")]
    pub step: Option<u32>,
}

impl JobError {
    /// The longest message kept; longer ones are cut at a character boundary.
    pub const MAX_MESSAGE_LEN: usize = 4_096;

    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > Self::MAX_MESSAGE_LEN {
            let mut cut = Self::MAX_MESSAGE_LEN;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Self {
            kind,
            message,
            step: None,
        }
    }

    pub fn at_step(mut self, step: usize) -> Self {
        self.step = Some(step as u32);
        self
    }
}
