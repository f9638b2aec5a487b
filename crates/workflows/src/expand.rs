//! Expansion and capture mapping: the job a workflow runs (`expand`), and
//! what the post-processing reads back out of that job's result
//! (`capture_from_result`). The two are written side by side because the
//! second reads exactly the fields the first asks for.
//!
//! What each workflow's job does:
//! - `page_change`: `navigate`, then `extract` of the whole page (the
//!   `html` element's HTML, or the whole JSON document with
//!   `format: json`); the workflow applies selectors, removals and ignore
//!   rules itself, so changing them never changes the job. A `screenshot`
//!   named [`SCREENSHOT_ARTIFACT`] when a visual rule is set (browser or
//!   auto engine only).
//! - `extract_items`: `navigate`, then `extract` of the records; with
//!   `pagination`, for each further page up to `max_pages` an optional
//!   `follow` of the next-page link (the job ends where there is none) and
//!   an `extract` of that page's records. The outcome's items are every
//!   page's, in page order.
//! - `smoke_check`: `navigate` keeping error statuses (a 500 is a verdict,
//!   not a retry), then `extract` of the visible text and of each required
//!   selector. No `assert` step: an assertion would fail the job, and the
//!   verdict must list every failed check, not the first.
//!
//! Deliberately does not enqueue anything nor read artifacts: the control
//! plane passes the screenshot's bytes in when there is one.

use std::collections::BTreeMap;

use accord_model::{
    ArtifactName, CssSelector, Engine, ExtractedValue, FieldSpec, ItemsSpec, JobResult, JobSpec,
    JsonPointer, Step, TargetUrl, ValidationError, WaitUntil,
};
use chrono::{DateTime, Utc};

use crate::items::Record;
use crate::kind::WorkflowInput;
use crate::page_change::{BodyFormat, PageCapture};
use crate::run::Capture;
use crate::smoke::SmokeCapture;
use crate::validate::invalid;

/// The name of the screenshot a visual `page_change` job keeps.
pub const SCREENSHOT_ARTIFACT: &str = "monitor-screenshot.png";

/// The extracted field holding the page (`page_change`) or its visible
/// text (`smoke_check`).
const PAGE_FIELD: &str = "page";
/// The extracted field holding the records (`extract_items`).
const ITEMS_FIELD: &str = "items";
/// The field holding the records of page `page` (2 and on) of
/// `extract_items`; the first page's are under [`ITEMS_FIELD`].
fn page_field(page: u32) -> String {
    format!("{ITEMS_FIELD}_page_{page}")
}

/// Prefix of the fields holding each required selector's matches.
const SELECTOR_FIELD_PREFIX: &str = "required_";

/// Where and how a workflow's job runs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTarget<'a> {
    pub url: &'a TargetUrl,
    pub engine: Engine,
    pub timeout_seconds: u32,
}

fn selector(source: &str) -> CssSelector {
    CssSelector::parse(source).expect("a built-in selector is valid")
}

fn navigate(url: &TargetUrl, accept_error_status: bool) -> Step {
    Step::Navigate {
        url: url.clone(),
        wait_until: WaitUntil::default(),
        accept_error_status,
    }
}

fn extract(fields: BTreeMap<String, FieldSpec>) -> Step {
    Step::Extract { fields }
}

/// The job that runs `input` against `target`; an error names the input
/// field the engine cannot serve (`visual` on the HTTP engine).
pub fn expand(input: &WorkflowInput, target: &JobTarget<'_>) -> Result<JobSpec, ValidationError> {
    let steps = match input {
        WorkflowInput::PageChange(input) => {
            let page = if input.format == BodyFormat::Json {
                FieldSpec {
                    json_pointer: Some(
                        JsonPointer::parse("").expect("the empty pointer is the whole document"),
                    ),
                    ..FieldSpec::default()
                }
            } else {
                FieldSpec {
                    selector: Some(selector("html")),
                    html: true,
                    ..FieldSpec::default()
                }
            };
            let mut steps = vec![
                navigate(target.url, false),
                extract(BTreeMap::from([(PAGE_FIELD.to_owned(), page)])),
            ];
            if input.visual.is_some() {
                if !target.engine.supports(accord_model::Capability::Browser) {
                    return Err(invalid(
                        "visual",
                        format!(
                            "a visual comparison needs screenshots, which the {} engine cannot \
                             take: use the browser or auto engine",
                            target.engine.as_str()
                        ),
                    ));
                }
                steps.push(Step::Screenshot {
                    selector: None,
                    full_page: false,
                    width: 1_280,
                    height: 800,
                    name: Some(
                        ArtifactName::new(SCREENSHOT_ARTIFACT).expect("a valid artifact name"),
                    ),
                });
            }
            steps
        }
        WorkflowInput::ExtractItems(input) => {
            let fields = input
                .fields
                .iter()
                .map(|(name, field)| {
                    (
                        name.clone(),
                        accord_model::ItemField {
                            selector: field.selector.clone(),
                            attribute: field.attribute.clone(),
                            html: false,
                            all: false,
                        },
                    )
                })
                .collect();
            let items = FieldSpec {
                items: Some(ItemsSpec {
                    selector: input.item_selector.clone(),
                    fields,
                }),
                ..FieldSpec::default()
            };
            let mut steps = vec![
                navigate(target.url, false),
                extract(BTreeMap::from([(ITEMS_FIELD.to_owned(), items.clone())])),
            ];
            // Each further page: follow the "next" link (the job ends when
            // there is none), then read its records under a field of its own.
            if let Some(pagination) = &input.pagination {
                for page in 2..=pagination.max_pages {
                    steps.push(Step::Follow {
                        selector: pagination.next_selector.clone(),
                        optional: true,
                    });
                    steps.push(extract(BTreeMap::from([(page_field(page), items.clone())])));
                }
            }
            steps
        }
        WorkflowInput::SmokeCheck(input) => {
            let mut fields =
                BTreeMap::from([(PAGE_FIELD.to_owned(), FieldSpec::text(selector("html")))]);
            for (i, required) in input.required_selectors.iter().enumerate() {
                fields.insert(
                    format!("{SELECTOR_FIELD_PREFIX}{i}"),
                    FieldSpec {
                        selector: Some(required.clone()),
                        all: true,
                        ..FieldSpec::default()
                    },
                );
            }
            vec![navigate(target.url, true), extract(fields)]
        }
    };
    Ok(JobSpec {
        engine: target.engine,
        steps,
        timeout_seconds: target.timeout_seconds,
    })
}

/// Text of an extracted value: a string as it is, a list joined by lines,
/// other JSON as canonical JSON text.
fn text_of(value: &ExtractedValue) -> Option<String> {
    match value {
        ExtractedValue::One(text) => text.clone(),
        ExtractedValue::List(items) => Some(items.join("\n")),
        ExtractedValue::Records(_) | ExtractedValue::Json(_) => serde_json::to_string(value).ok(),
    }
}

/// What the workflow of `input` reads out of the result of the job
/// `expand` made for it. `screenshot_png` is the bytes of the
/// [`SCREENSHOT_ARTIFACT`] the job uploaded, if any; `requested` the URL
/// the job navigated to; `observed_at` when the result was reported.
pub fn capture_from_result(
    input: &WorkflowInput,
    result: &JobResult,
    requested: &TargetUrl,
    screenshot_png: Option<Vec<u8>>,
    observed_at: DateTime<Utc>,
) -> Capture {
    let field = |name: &str| result.extracted.get(name);
    match input {
        WorkflowInput::PageChange(input) => {
            let (body, content_type) = match field(PAGE_FIELD) {
                Some(ExtractedValue::One(Some(html))) if input.format != BodyFormat::Json => {
                    (format!("<html>{html}</html>"), Some("text/html".to_owned()))
                }
                Some(ExtractedValue::One(None)) | None => (String::new(), None),
                Some(value) if input.format == BodyFormat::Json => (
                    serde_json::to_string(value).unwrap_or_default(),
                    Some("application/json".to_owned()),
                ),
                Some(value) => (text_of(value).unwrap_or_default(), None),
            };
            Capture::PageChange(PageCapture {
                body,
                content_type,
                screenshot_png,
            })
        }
        WorkflowInput::ExtractItems(input) => {
            let pages = input.pagination.as_ref().map_or(1, |p| p.max_pages);
            let names = std::iter::once(ITEMS_FIELD.to_owned()).chain((2..=pages).map(page_field));
            let mut records = Vec::new();
            for name in names {
                if let Some(ExtractedValue::Records(page)) = field(&name) {
                    records.extend(page.iter().map(|record| {
                        record
                            .iter()
                            .map(|(name, value)| (name.clone(), text_of(value)))
                            .collect::<Record>()
                    }));
                }
            }
            Capture::ExtractItems(records)
        }
        WorkflowInput::SmokeCheck(input) => {
            let matched_selectors = input
                .required_selectors
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    matches!(
                        field(&format!("{SELECTOR_FIELD_PREFIX}{i}")),
                        Some(ExtractedValue::List(list)) if !list.is_empty()
                    ) || matches!(
                        field(&format!("{SELECTOR_FIELD_PREFIX}{i}")),
                        Some(ExtractedValue::One(Some(_)))
                    )
                })
                .map(|(_, s)| s.as_str().to_owned())
                .collect();
            // The engines report the final address only: a different one
            // means at least one redirect, from the address asked for.
            let redirects =
                if result.final_url.is_empty() || same_url(&result.final_url, requested.as_str()) {
                    Vec::new()
                } else {
                    vec![requested.as_str().to_owned()]
                };
            Capture::SmokeCheck(SmokeCapture {
                load_error: None,
                status: Some(result.status),
                redirects,
                load_ms: Some(result.timings.fetch_ms),
                matched_selectors,
                page_text: field(PAGE_FIELD).and_then(text_of).unwrap_or_default(),
                console_errors: None,
                tls_not_after: None,
                observed_at,
            })
        }
    }
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// What a `smoke_check` sees of a job that failed: the page did not load.
pub fn capture_from_failure(message: &str, observed_at: DateTime<Utc>) -> SmokeCapture {
    SmokeCapture {
        load_error: Some(message.to_owned()),
        status: None,
        redirects: Vec::new(),
        load_ms: None,
        matched_selectors: Vec::new(),
        page_text: String::new(),
        console_errors: None,
        tls_not_after: None,
        observed_at,
    }
}

#[cfg(test)]
mod tests;
