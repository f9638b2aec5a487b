//! What a user asks of a `smoke_check` monitor, and its checks.

use accord_model::{CssSelector, ValidationError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{check_len, check_texts, invalid};

/// Most redirects a limit may allow.
pub const MAX_REDIRECTS: u32 = 20;
/// Longest load time limit, in milliseconds (ten minutes).
pub const MAX_LOAD_MS: u64 = 600_000;
/// Longest TLS expiry warning, in days.
pub const MAX_TLS_DAYS: u32 = 365;

/// Which final HTTP statuses pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StatusRule {
    /// Exactly this status.
    Exact(u16),
    /// Any status from `min` to `max`, both included.
    Range { min: u16, max: u16 },
}

impl Default for StatusRule {
    /// Any success.
    fn default() -> Self {
        Self::Range { min: 200, max: 299 }
    }
}

impl StatusRule {
    pub fn allows(self, status: u16) -> bool {
        match self {
            Self::Exact(expected) => status == expected,
            Self::Range { min, max } => (min..=max).contains(&status),
        }
    }
}

impl std::fmt::Display for StatusRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(status) => write!(f, "{status}"),
            Self::Range { min, max } => write!(f, "{min}-{max}"),
        }
    }
}

/// Input of the `smoke_check` workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmokeCheckInput {
    /// The final status (after redirects) that passes; any 2xx by default.
    #[serde(default)]
    pub status: StatusRule,
    /// Most redirects the page may take to load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 20)]
    pub max_redirects: Option<u32>,
    /// Longest the page may take to load, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uint64", minimum = 1, maximum = 600000)]
    pub max_load_ms: Option<u64>,
    /// CSS selectors that must each match an element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub required_selectors: Vec<CssSelector>,
    /// Texts that must appear on the page (ignoring case and spacing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub required_texts: Vec<String>,
    /// Texts that must not appear on the page (ignoring case and spacing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub forbidden_texts: Vec<String>,
    /// Whether errors in the browser console are allowed (browser engine).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub allow_console_errors: bool,
    /// Fail when the TLS certificate expires within this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 365)]
    pub tls_min_days: Option<u32>,
}

fn yes() -> bool {
    true
}

impl SmokeCheckInput {
    /// Checks what serde cannot (selectors were checked when parsed).
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self.status {
            StatusRule::Exact(status) if !(100..=599).contains(&status) => {
                return Err(invalid("status.exact", "must be an HTTP status (100-599)"));
            }
            StatusRule::Range { min, max }
                if !(100..=599).contains(&min) || !(100..=599).contains(&max) =>
            {
                return Err(invalid(
                    "status.range",
                    "min and max must be HTTP statuses (100-599)",
                ));
            }
            StatusRule::Range { min, max } if min > max => {
                return Err(invalid(
                    "status.range",
                    format!("min ({min}) is above max ({max})"),
                ));
            }
            _ => {}
        }
        if self.max_redirects.is_some_and(|n| n > MAX_REDIRECTS) {
            return Err(invalid(
                "max_redirects",
                format!("must be at most {MAX_REDIRECTS}"),
            ));
        }
        if self
            .max_load_ms
            .is_some_and(|ms| !(1..=MAX_LOAD_MS).contains(&ms))
        {
            return Err(invalid(
                "max_load_ms",
                format!("must be between 1 and {MAX_LOAD_MS}"),
            ));
        }
        check_len("required_selectors", &self.required_selectors)?;
        check_texts("required_texts", &self.required_texts)?;
        check_texts("forbidden_texts", &self.forbidden_texts)?;
        if self.tls_min_days.is_some_and(|d| d > MAX_TLS_DAYS) {
            return Err(invalid(
                "tls_min_days",
                format!("must be at most {MAX_TLS_DAYS}"),
            ));
        }
        Ok(())
    }
}
