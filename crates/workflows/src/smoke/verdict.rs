//! `smoke_check`: one run of the workflow, from the captured facts and the
//! previous snapshot to a verdict and the next snapshot.
//!
//! Every configured check is listed, passed, failed or skipped, each with a
//! sentence a person can act on. A check is skipped, never failed, when the
//! engine could not capture what it needs (console errors on the HTTP
//! engine, a certificate on plain HTTP): a smoke check must not fail for
//! what the monitor cannot see. When the page did not load at all, only the
//! load check (and the certificate, which a TLS failure may still carry)
//! is judged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::{SmokeCheckInput, StatusRule};
use crate::text;
use crate::version::FormatV1;

/// Longest console message quoted in a verdict.
const MAX_QUOTED_CHARS: usize = 200;

/// What the engine observed while loading the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmokeCapture {
    /// Why the page could not be loaded at all (DNS, connection, timeout).
    #[serde(default)]
    pub load_error: Option<String>,
    /// The final HTTP status, after redirects.
    #[serde(default)]
    pub status: Option<u16>,
    /// The URLs redirected from, in order.
    #[serde(default)]
    pub redirects: Vec<String>,
    /// Time to load the page, in milliseconds.
    #[serde(default)]
    #[schema(format = "uint64")]
    pub load_ms: Option<u64>,
    /// The input's required selectors that matched an element, as written there.
    #[serde(default)]
    pub matched_selectors: Vec<String>,
    /// The page's visible text.
    #[serde(default)]
    pub page_text: String,
    /// Errors logged to the console; none when the engine cannot see the
    /// console (the HTTP engine).
    #[serde(default)]
    pub console_errors: Option<Vec<String>>,
    /// When the site's TLS certificate expires, if it was captured.
    #[serde(default)]
    pub tls_not_after: Option<DateTime<Utc>>,
    /// When the page was loaded.
    pub observed_at: DateTime<Utc>,
}

/// Which check a result is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Load,
    Status,
    Redirects,
    LoadTime,
    Selector,
    Text,
    ForbiddenText,
    ConsoleErrors,
    TlsExpiry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Not judged: what it needs was not captured.
    Skipped,
}

/// One check of a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    pub check: CheckKind,
    pub status: CheckStatus,
    /// What was found, as a sentence.
    pub message: String,
}

/// The verdict of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SmokeOutcome {
    /// No check failed.
    pub passed: bool,
    /// Failed checks.
    pub failures: u32,
    /// Every check, in a fixed order: load, status, redirects, load time,
    /// selectors, texts, forbidden texts, console, certificate.
    pub checks: Vec<CheckResult>,
    /// This run failed and the previous one did not (or there was none).
    pub newly_failed: bool,
    /// This run passed and the previous one failed.
    pub recovered: bool,
    /// When the current run of failures started.
    pub failing_since: Option<DateTime<Utc>>,
}

impl SmokeOutcome {
    pub fn failed_checks(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
    }
}

/// What a `smoke_check` monitor keeps between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SmokeSnapshot {
    pub version: FormatV1,
    pub passed: bool,
    /// When the current run of failures started; none while passing.
    pub failing_since: Option<DateTime<Utc>>,
}

/// A run's results: what to record and what to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeRun {
    pub outcome: SmokeOutcome,
    pub snapshot: SmokeSnapshot,
}

/// Judges `capture` under `input`, against `previous`.
pub fn smoke_check(
    input: &SmokeCheckInput,
    capture: &SmokeCapture,
    previous: Option<&SmokeSnapshot>,
) -> SmokeRun {
    let mut checks = Checks::default();
    match &capture.load_error {
        Some(error) => {
            checks.fail(CheckKind::Load, format!("the page did not load: {error}"));
        }
        None => {
            checks.pass(CheckKind::Load, "the page loaded".to_owned());
            judge_page(input, capture, &mut checks);
        }
    }
    judge_console(input, capture, &mut checks);
    judge_tls(input, capture, &mut checks);

    let passed = checks.failures == 0;
    let was_failing = previous.is_some_and(|p| !p.passed);
    let failing_since = match (passed, previous) {
        (true, _) => None,
        (false, Some(p)) if !p.passed => p.failing_since.or(Some(capture.observed_at)),
        (false, _) => Some(capture.observed_at),
    };
    SmokeRun {
        outcome: SmokeOutcome {
            passed,
            failures: checks.failures,
            checks: checks.results,
            newly_failed: !passed && !was_failing,
            recovered: passed && was_failing,
            failing_since,
        },
        snapshot: SmokeSnapshot {
            version: FormatV1,
            passed,
            failing_since,
        },
    }
}

#[derive(Debug, Default)]
struct Checks {
    results: Vec<CheckResult>,
    failures: u32,
}

impl Checks {
    fn push(&mut self, check: CheckKind, status: CheckStatus, message: String) {
        if status == CheckStatus::Failed {
            self.failures += 1;
        }
        self.results.push(CheckResult {
            check,
            status,
            message,
        });
    }

    fn pass(&mut self, check: CheckKind, message: String) {
        self.push(check, CheckStatus::Passed, message);
    }

    fn fail(&mut self, check: CheckKind, message: String) {
        self.push(check, CheckStatus::Failed, message);
    }

    fn skip(&mut self, check: CheckKind, message: String) {
        self.push(check, CheckStatus::Skipped, message);
    }

    fn judge(&mut self, check: CheckKind, ok: bool, passed: String, failed: String) {
        if ok {
            self.pass(check, passed);
        } else {
            self.fail(check, failed);
        }
    }
}

/// The checks that need a loaded page.
fn judge_page(input: &SmokeCheckInput, capture: &SmokeCapture, checks: &mut Checks) {
    match capture.status {
        None => checks.fail(CheckKind::Status, "no HTTP status was captured".to_owned()),
        Some(status) => {
            let (passed, failed) = match input.status {
                StatusRule::Exact(_) => (
                    format!("status {status} is the expected {}", input.status),
                    format!("status {status} is not the expected {}", input.status),
                ),
                StatusRule::Range { .. } => (
                    format!("status {status} is within {}", input.status),
                    format!(
                        "status {status} is outside the expected range {}",
                        input.status
                    ),
                ),
            };
            checks.judge(
                CheckKind::Status,
                input.status.allows(status),
                passed,
                failed,
            );
        }
    }
    if let Some(max) = input.max_redirects {
        let n = capture.redirects.len();
        let followed = match n {
            1 => "1 redirect was followed".to_owned(),
            n => format!("{n} redirects were followed"),
        };
        checks.judge(
            CheckKind::Redirects,
            n <= max as usize,
            format!("{followed} (at most {max} allowed)"),
            format!("{followed}; at most {max} allowed"),
        );
    }
    if let Some(max) = input.max_load_ms {
        match capture.load_ms {
            None => checks.skip(
                CheckKind::LoadTime,
                "the load time was not captured".to_owned(),
            ),
            Some(ms) => checks.judge(
                CheckKind::LoadTime,
                ms <= max,
                format!("the page loaded in {ms} ms (limit {max} ms)"),
                format!("the page took {ms} ms to load; the limit is {max} ms"),
            ),
        }
    }
    for selector in &input.required_selectors {
        let selector = selector.as_str();
        checks.judge(
            CheckKind::Selector,
            capture.matched_selectors.iter().any(|m| m == selector),
            format!("an element matches `{selector}`"),
            format!("no element matches `{selector}`"),
        );
    }
    if input.required_texts.is_empty() && input.forbidden_texts.is_empty() {
        return;
    }
    let page = text::fold(&capture.page_text);
    for required in &input.required_texts {
        checks.judge(
            CheckKind::Text,
            text::contains_folded(&page, required),
            format!("{required:?} appears on the page"),
            format!("{required:?} does not appear on the page"),
        );
    }
    for forbidden in &input.forbidden_texts {
        checks.judge(
            CheckKind::ForbiddenText,
            !text::contains_folded(&page, forbidden),
            format!("the forbidden text {forbidden:?} does not appear"),
            format!("the forbidden text {forbidden:?} appears on the page"),
        );
    }
}

fn judge_console(input: &SmokeCheckInput, capture: &SmokeCapture, checks: &mut Checks) {
    if input.allow_console_errors || capture.load_error.is_some() {
        return;
    }
    match capture.console_errors.as_deref() {
        None => checks.skip(
            CheckKind::ConsoleErrors,
            "console errors were not captured (they need the browser engine)".to_owned(),
        ),
        Some([]) => checks.pass(CheckKind::ConsoleErrors, "no console errors".to_owned()),
        Some(errors) => {
            let first = quoted(&errors[0]);
            let message = match errors.len() {
                1 => format!("1 console error was logged: {first}"),
                n => format!("{n} console errors were logged; the first: {first}"),
            };
            checks.fail(CheckKind::ConsoleErrors, message);
        }
    }
}

/// Judged even when the page did not load: an expired certificate is often
/// why it did not.
fn judge_tls(input: &SmokeCheckInput, capture: &SmokeCapture, checks: &mut Checks) {
    let Some(min_days) = input.tls_min_days else {
        return;
    };
    let Some(not_after) = capture.tls_not_after else {
        if capture.load_error.is_none() {
            checks.skip(
                CheckKind::TlsExpiry,
                "no TLS certificate was captured".to_owned(),
            );
        }
        return;
    };
    let date = not_after.format("%Y-%m-%d");
    let left = not_after - capture.observed_at;
    if left <= chrono::TimeDelta::zero() {
        checks.fail(
            CheckKind::TlsExpiry,
            format!("the TLS certificate expired on {date}"),
        );
        return;
    }
    let days = left.num_days();
    let expires = match days {
        0 => format!("the TLS certificate expires within a day ({date})"),
        1 => format!("the TLS certificate expires in 1 day ({date})"),
        n => format!("the TLS certificate expires in {n} days ({date})"),
    };
    checks.judge(
        CheckKind::TlsExpiry,
        left >= chrono::TimeDelta::days(i64::from(min_days)),
        expires.clone(),
        format!("{expires}; at least {min_days} days are required"),
    );
}

fn quoted(message: &str) -> String {
    let mut shown: String = message.chars().take(MAX_QUOTED_CHARS).collect();
    if shown.len() < message.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}
