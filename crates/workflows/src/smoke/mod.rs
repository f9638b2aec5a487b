//! `smoke_check`: whether a page loads and shows what it must, as a
//! pass/fail verdict listing every check with a sentence, and whether this
//! run newly failed or recovered.
//!
//! Deliberately does not load the page, match selectors or take the
//! failure screenshot: the engine captured those facts.

mod input;
mod verdict;

pub use input::{SmokeCheckInput, StatusRule, MAX_LOAD_MS, MAX_REDIRECTS, MAX_TLS_DAYS};
pub use verdict::{
    smoke_check, CheckKind, CheckResult, CheckStatus, SmokeCapture, SmokeOutcome, SmokeRun,
    SmokeSnapshot,
};

#[cfg(test)]
mod tests;
