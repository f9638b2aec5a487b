//! `assert` in the browser: the page's status and last load time, text and
//! selectors present or absent (one round trip for all of those), and the
//! console's errors so far.

use accord_model::CssSelector;
use serde::Deserialize;
use serde_json::json;

use super::error::BrowserFailure;
use super::page::{Interrupts, PageSession};

/// What one `assert` step requires.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checks<'a> {
    pub status: Option<u16>,
    pub text: Option<&'a str>,
    pub text_absent: Option<&'a str>,
    pub selector: Option<&'a CssSelector>,
    pub selector_absent: Option<&'a CssSelector>,
    pub max_load_ms: Option<u64>,
    pub no_console_errors: bool,
}

/// Runs the checks in the order they are listed; the first that fails is
/// the step's failure.
pub(super) async fn check(
    page: &PageSession,
    checks: Checks<'_>,
    last_load_ms: Option<u64>,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    if let Some(expected) = checks.status {
        if expected != page.loaded.status {
            return Err(failed(
                format!("status {expected}"),
                page.loaded.status.to_string(),
            ));
        }
    }
    if let Some(max) = checks.max_load_ms {
        match last_load_ms {
            Some(took) if took <= max => {}
            Some(took) => {
                return Err(failed(
                    format!("a load in at most {max} ms"),
                    format!("{took} ms"),
                ))
            }
            None => {
                return Err(failed(
                    format!("a load in at most {max} ms"),
                    "no load".to_owned(),
                ))
            }
        }
    }
    let in_page = checks.text.is_some()
        || checks.text_absent.is_some()
        || checks.selector.is_some()
        || checks.selector_absent.is_some();
    if in_page {
        page_checks(page, checks, interrupts).await?;
    }
    if checks.no_console_errors {
        let console = page.console.snapshot().await;
        if console.errors > 0 {
            let first = console
                .first_error()
                .map(|entry| entry.text.clone())
                .unwrap_or_default();
            return Err(failed(
                "no console errors".to_owned(),
                format!("{} (the first: {first:?})", plural(console.errors, "error")),
            ));
        }
    }
    Ok(())
}

async fn page_checks(
    page: &PageSession,
    checks: Checks<'_>,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Found {
        #[serde(default)]
        bad_selector: bool,
        text: Option<bool>,
        text_absent: Option<bool>,
        selector: Option<bool>,
        selector_absent: Option<bool>,
        #[serde(default)]
        snippet: String,
    }
    let mut args = json!({});
    if let Some(text) = checks.text {
        args["text"] = json!(text);
    }
    if let Some(text) = checks.text_absent {
        args["textAbsent"] = json!(text);
    }
    if let Some(selector) = checks.selector {
        args["selector"] = json!(selector.as_str());
    }
    if let Some(selector) = checks.selector_absent {
        args["selectorAbsent"] = json!(selector.as_str());
    }
    let found: Found = page
        .call("checks", args, "check the page", interrupts)
        .await?;
    if found.bad_selector {
        let selector = checks.selector.or(checks.selector_absent);
        return Err(BrowserFailure::BadSelector {
            selector: selector.map(ToString::to_string).unwrap_or_default(),
        });
    }
    if let (Some(text), Some(false)) = (checks.text, found.text) {
        return Err(failed(
            format!("text {text:?} in the page"),
            format!("page text {:?}", found.snippet),
        ));
    }
    if let (Some(text), Some(false)) = (checks.text_absent, found.text_absent) {
        return Err(failed(
            format!("no text {text:?} in the page"),
            "the text is there".to_owned(),
        ));
    }
    if let (Some(selector), Some(false)) = (checks.selector, found.selector) {
        return Err(failed(
            format!("an element matching `{selector}`"),
            "none".to_owned(),
        ));
    }
    if let (Some(selector), Some(false)) = (checks.selector_absent, found.selector_absent) {
        return Err(failed(
            format!("no element matching `{selector}`"),
            "at least one".to_owned(),
        ));
    }
    Ok(())
}

fn failed(expected: String, found: String) -> BrowserFailure {
    BrowserFailure::AssertFailed { expected, found }
}

fn plural(count: u64, what: &str) -> String {
    if count == 1 {
        format!("1 {what}")
    } else {
        format!("{count} {what}s")
    }
}
