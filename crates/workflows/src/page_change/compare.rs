//! `page_change`: one run of the workflow, from the captured page and the
//! previous snapshot to the outcome and the next snapshot.
//!
//! The next snapshot always holds this run's text, so each diff is against
//! the run before it, whether or not that change counted (a change the
//! trigger did not let through is still in the outcome's diff). A run is a
//! baseline, with nothing compared, when there is no previous snapshot or
//! when the rules that shape the text (selectors, removals, ignore
//! patterns, sorting, format) changed since it was taken: comparing texts
//! made by different rules would report the rules as a change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::diff::{diff_texts, TextDiff};
use super::input::{BodyFormat, PageChangeInput, Trigger, TriggerWhen};
use super::normalize::{normalize, read_body, Body};
use crate::html::PageTooComplex;
use crate::outcome::BaselineReason;
use crate::text;
use crate::values::{track_value, ValueOutcome, ValueSpec, ValueState};
use crate::version::FormatV1;
use crate::visual::{compare_screenshots, VisualComparison, VisualRule};

/// What the engine captured of the page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageCapture {
    /// The response body (the DOM's HTML on the browser engine).
    pub body: String,
    /// The response's `Content-Type`, if known.
    pub content_type: Option<String>,
    /// A PNG screenshot (browser engine).
    pub screenshot_png: Option<Vec<u8>>,
}

/// What a `page_change` monitor keeps between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PageSnapshot {
    pub version: FormatV1,
    /// Fingerprint of the rules that shaped `text`.
    pub rules: String,
    /// The normalised text, one line per `\n`.
    pub text: String,
    /// SHA-256 (hex) of the last screenshot, stored as an artifact by the
    /// control plane; kept from an earlier run when this one took none.
    pub screenshot_sha256: Option<String>,
    /// Tracked values by name.
    pub values: BTreeMap<String, ValueState>,
}

/// The previous run, as the control plane passes it back.
#[derive(Debug, Clone, Copy)]
pub struct PreviousPage<'a> {
    pub snapshot: &'a PageSnapshot,
    /// The screenshot whose hash the snapshot holds, if it is still stored.
    pub screenshot_png: Option<&'a [u8]>,
}

/// How the trigger text decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TriggerOutcome {
    pub text: String,
    pub when: TriggerWhen,
    /// The text was on the page on the previous run (false on a baseline).
    pub before: bool,
    /// The text is on the page now.
    pub now: bool,
    /// The trigger lets this run's change count.
    pub satisfied: bool,
}

/// The visual part of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum VisualOutcome {
    Compared(VisualComparison),
    /// No comparison, and why.
    Skipped {
        reason: String,
    },
}

/// What one run of `page_change` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PageChangeOutcome {
    /// Set when nothing was compared, with the reason.
    pub baseline: Option<BaselineReason>,
    /// The page changed and the change counts (after the trigger): what a
    /// notification is about.
    pub changed: bool,
    /// The normalised text differs from the previous run's.
    pub text_changed: bool,
    /// How the body was read (never `auto`).
    pub compared_as: BodyFormat,
    /// Lines of normalised text.
    pub lines: u32,
    /// Watched selectors that matched nothing (often a sign the page was
    /// redesigned).
    pub unmatched_selectors: Vec<String>,
    /// The text diff, when the text changed.
    pub diff: Option<TextDiff>,
    pub trigger: Option<TriggerOutcome>,
    pub visual: Option<VisualOutcome>,
    pub values: Vec<ValueOutcome>,
}

/// A run's results: what to record, what to keep, what to store as an
/// artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct PageChangeRun {
    pub outcome: PageChangeOutcome,
    pub snapshot: PageSnapshot,
    /// The visual diff's highlight image (PNG), when screenshots were compared.
    pub highlight_png: Option<Vec<u8>>,
}

/// Why a capture could not be processed; reads after "failed to".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("read the page: {0}")]
    Page(#[from] PageTooComplex),
}

/// Runs `page_change` on `capture` against `previous`.
pub fn page_change(
    input: &PageChangeInput,
    capture: &PageCapture,
    previous: Option<PreviousPage<'_>>,
) -> Result<PageChangeRun, CaptureError> {
    let mut body = read_body(input.format, capture.content_type.as_deref(), &capture.body)?;
    let (text, unmatched_selectors) = normalize(input, &mut body, &capture.body);
    let rules = rules_fingerprint(input);
    let baseline = match previous {
        None => Some(BaselineReason::FirstRun),
        Some(p) if p.snapshot.rules != rules => Some(BaselineReason::RulesChanged),
        Some(_) => None,
    };
    let compared = previous.filter(|_| baseline.is_none());

    let diff = compared
        .map(|p| diff_texts(&p.snapshot.text, &text))
        .filter(|d| !d.is_empty());
    let text_changed = diff.is_some();
    let trigger = input
        .trigger
        .as_ref()
        .map(|t| judge_trigger(t, compared.map(|p| p.snapshot.text.as_str()), &text));
    let (visual, highlight_png) = match &input.visual {
        None => (None, None),
        Some(rule) => {
            let (visual, highlight) = judge_visual(rule, capture, compared, baseline);
            (Some(visual), highlight)
        }
    };
    let visual_changed = matches!(&visual, Some(VisualOutcome::Compared(c)) if c.changed);
    let trigger_allows = trigger.as_ref().is_none_or(|t| t.satisfied);
    let changed = baseline.is_none() && (text_changed || visual_changed) && trigger_allows;

    let (values, value_states) =
        track_values(&input.values, &body, previous.map(|p| &p.snapshot.values));
    let screenshot_sha256 = match &capture.screenshot_png {
        Some(png) => Some(hex::encode(Sha256::digest(png))),
        None => previous.and_then(|p| p.snapshot.screenshot_sha256.clone()),
    };
    let lines = u32::try_from(text.lines().count()).unwrap_or(u32::MAX);
    Ok(PageChangeRun {
        outcome: PageChangeOutcome {
            baseline,
            changed,
            text_changed,
            compared_as: body.format(),
            lines,
            unmatched_selectors,
            diff,
            trigger,
            visual,
            values,
        },
        snapshot: PageSnapshot {
            version: FormatV1,
            rules,
            text,
            screenshot_sha256,
            values: value_states,
        },
        highlight_png,
    })
}

/// The visual comparison, or why there is none, and the highlight image.
fn judge_visual(
    rule: &VisualRule,
    capture: &PageCapture,
    compared: Option<PreviousPage<'_>>,
    baseline: Option<BaselineReason>,
) -> (VisualOutcome, Option<Vec<u8>>) {
    let Some(current) = &capture.screenshot_png else {
        let reason = "this run took no screenshot (screenshots need the browser engine)";
        return (skipped(reason), None);
    };
    let Some(previous) = compared else {
        return (skipped(baseline_reason(baseline)), None);
    };
    let Some(before) = previous.screenshot_png else {
        return (
            skipped("the previous run's screenshot is not available"),
            None,
        );
    };
    match compare_screenshots(before, current, rule) {
        Ok(diff) => (
            VisualOutcome::Compared(diff.comparison),
            Some(diff.highlight_png),
        ),
        Err(err) => (skipped(&format!("failed to {err}")), None),
    }
}

/// Each tracked value's outcome, and the states to keep by name (values no
/// longer tracked are dropped).
fn track_values(
    specs: &[ValueSpec],
    body: &Body,
    previous: Option<&BTreeMap<String, ValueState>>,
) -> (Vec<ValueOutcome>, BTreeMap<String, ValueState>) {
    let mut outcomes = Vec::with_capacity(specs.len());
    let mut states = BTreeMap::new();
    for spec in specs {
        let found = value_text(spec, body);
        let before = previous.and_then(|v| v.get(&spec.name));
        let (outcome, state) = track_value(spec, found.as_deref().map_err(Clone::clone), before);
        outcomes.push(outcome);
        states.insert(spec.name.clone(), state);
    }
    (outcomes, states)
}

fn skipped(reason: &str) -> VisualOutcome {
    VisualOutcome::Skipped {
        reason: reason.to_owned(),
    }
}

fn baseline_reason(baseline: Option<BaselineReason>) -> &'static str {
    match baseline {
        Some(BaselineReason::RulesChanged) => "the rules changed: this run is the new baseline",
        _ => "this is the first run: there is nothing to compare with",
    }
}

/// Whether `trigger` lets a change through, given the previous text (none
/// on a baseline) and the current one.
fn judge_trigger(trigger: &Trigger, before: Option<&str>, now: &str) -> TriggerOutcome {
    let on = |page: &str| text::contains_folded(&text::fold(page), &trigger.text);
    let was = before.is_some_and(on);
    let is = on(now);
    let satisfied = before.is_some()
        && match trigger.when {
            TriggerWhen::Appears => is && !was,
            TriggerWhen::Disappears => was && !is,
        };
    TriggerOutcome {
        text: trigger.text.clone(),
        when: trigger.when,
        before: was,
        now: is,
        satisfied,
    }
}

/// The text a tracked value is read from, or why there is none.
fn value_text(spec: &ValueSpec, body: &Body) -> Result<String, String> {
    match (body, &spec.selector, &spec.json_pointer) {
        (Body::Html(page), Some(selector), _) => page
            .first_text(selector)
            .ok_or_else(|| format!("no element matches `{selector}`")),
        (Body::Json(value), _, Some(pointer)) => match value.pointer(pointer) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err(format!(
                "the value at `{pointer}` is not a string or a number"
            )),
            None => Err(format!("the body has nothing at `{pointer}`")),
        },
        (body, Some(_), _) => Err(format!(
            "a selector needs an HTML page; this body was read as {}",
            format_name(body.format())
        )),
        (body, _, _) => Err(format!(
            "a JSON pointer needs a JSON body; this body was read as {}",
            format_name(body.format())
        )),
    }
}

fn format_name(format: BodyFormat) -> &'static str {
    match format {
        BodyFormat::Auto => "auto",
        BodyFormat::Html => "HTML",
        BodyFormat::Json => "JSON",
        BodyFormat::Text => "text",
    }
}

/// SHA-256 (hex, first 16 bytes) of the rules that shape the text.
fn rules_fingerprint(input: &PageChangeInput) -> String {
    let rules = serde_json::json!({
        "selectors": input.selectors,
        "remove": input.remove,
        "ignore": input.ignore,
        "sort_lines": input.sort_lines,
        "format": input.format,
    });
    let digest = Sha256::digest(rules.to_string().as_bytes());
    hex::encode(&digest[..16])
}
