//! The typed steps of a job, one JSON shape for every engine, and the
//! small values they carry (key names, URL patterns, load states).
//!
//! Owns what each step means, what it needs from an engine
//! ([`Step::requires`]), the artifact it leaves ([`Step::artifact_name`]),
//! and the checks a step can make on its own ([`Step::check`]). The checks
//! that need the whole job (bounds from [`Limits`](crate::Limits), the job
//! timeout, artifact names unique across steps) live in `spec`.
//!
//! Deliberately does not run steps (the engines do).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ArtifactName, CssSelector, FieldSource, FieldSpec, ItemField, TargetUrl};

/// Longest extract field name or attribute name, in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 128;
/// Longest text a step carries (assert text, a value to type), in bytes.
pub const MAX_STEP_TEXT_BYTES: usize = 4_096;
/// Longest `evaluate` expression, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 16 * 1024;
/// Longest `capture_network` URL pattern, in bytes.
pub const MAX_URL_PATTERN_BYTES: usize = 1_024;
/// Longest wait (`wait_for` timeout or delay, `assert` load time), in
/// milliseconds; the job's own timeout caps it further.
pub const MAX_WAIT_MS: u64 = 3_600_000;
/// Most rounds a `scroll` step may take.
pub const MAX_SCROLL_ROUNDS: u32 = 200;
/// Screenshot widths accepted, in CSS pixels.
pub const SCREENSHOT_WIDTHS: std::ops::RangeInclusive<u32> = 320..=3_840;
/// Screenshot (viewport) heights accepted, in CSS pixels.
pub const SCREENSHOT_HEIGHTS: std::ops::RangeInclusive<u32> = 200..=4_000;
/// Largest response body one `capture_network` step keeps per response.
pub const MAX_CAPTURE_BODY_BYTES: u32 = 4 * 1024 * 1024;
/// Largest file a `download` step may fetch.
pub const MAX_DOWNLOAD_BYTES: u64 = 500 * 1024 * 1024;

const DEFAULT_SCROLL_ROUNDS: u32 = 20;
const DEFAULT_SCREENSHOT_WIDTH: u32 = 1_280;
const DEFAULT_SCREENSHOT_HEIGHT: u32 = 800;
const DEFAULT_CAPTURE_BODY_BYTES: u32 = 256 * 1024;
const DEFAULT_DOWNLOAD_BYTES: u64 = 50 * 1024 * 1024;

/// One typed step of a job. Steps run in order on one page.
///
/// Before the first `navigate` only `capture_network` may come (so it sees
/// the first page load); every other step works on a loaded page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Load a page (GET, redirects followed).
    Navigate {
        url: TargetUrl,
        /// When the browser considers the page loaded (the HTTP engine reads
        /// the whole body whatever this says).
        #[serde(default, skip_serializing_if = "WaitUntil::is_default")]
        wait_until: WaitUntil,
        /// Keep a 429 or 5xx response instead of failing the attempt as retryable.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        accept_error_status: bool,
    },
    /// Wait for exactly one of: an element (`selector`, in a `state`), a
    /// text in the page (`text`), or a fixed delay (`delay_ms`). Browser only.
    WaitFor {
        /// Wait until an element matching this selector is in `state`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
        /// With `selector`: `visible` (the default) or `hidden` (absent or not shown).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<ElementState>,
        /// Wait until this text is in the page's visible text (at most 4096 bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 4096)]
        text: Option<String>,
        /// Wait this long, in milliseconds (at most the job's timeout).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 1, maximum = 3_600_000, format = "uint64")]
        delay_ms: Option<u64>,
        /// With `selector` or `text`: fail (permanently) after this long, in
        /// milliseconds; at most the job's timeout, which applies when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 1, maximum = 3_600_000, format = "uint64")]
        timeout_ms: Option<u64>,
    },
    /// Click the first element matching the selector. Browser only.
    Click { selector: CssSelector },
    /// Go to the address the first element matching `selector` links to
    /// (its `href`, else its `src`, resolved against the page), like a
    /// `navigate` to it: the steps after it work on that page. Both
    /// engines. With `optional`, a page without such an element (or whose
    /// element links nowhere) ends the job there, successfully, skipping
    /// the remaining steps: how a "next page" link ends pagination.
    Follow {
        selector: CssSelector,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        optional: bool,
    },
    /// Type a value into a form field, replacing its content. Browser only.
    Fill {
        selector: CssSelector,
        /// The text to type (at most 4096 bytes).
        #[schema(max_length = 4096)]
        value: String,
    },
    /// Choose the option with this value in a select element. Browser only.
    Select {
        selector: CssSelector,
        /// The `value` of the option to choose (at most 4096 bytes).
        #[schema(max_length = 4096)]
        value: String,
    },
    /// Tick a checkbox (or choose a radio button). Browser only.
    Check { selector: CssSelector },
    /// Clear a checkbox. Browser only.
    Uncheck { selector: CssSelector },
    /// Press and release a key, in the focused element or in the first
    /// element matching `selector`. Browser only.
    Press {
        key: KeyName,
        /// Focus this element first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
    },
    /// Submit a form: the one matching `selector` (a form or an element in
    /// it), else the form of the focused element. Browser only.
    Submit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
    },
    /// Scroll to the bottom until the page stops growing (lazy lists), at
    /// most `max_rounds` times. Browser only.
    Scroll {
        #[serde(default = "default_scroll_rounds")]
        #[schema(minimum = 1, maximum = 200, default = 20, format = "uint32")]
        max_rounds: u32,
    },
    /// Move the mouse over the first element matching the selector. Browser only.
    Hover { selector: CssSelector },
    /// Extract named fields from the current page (at most `max_fields`).
    Extract { fields: BTreeMap<String, FieldSpec> },
    /// Capture the viewport, the full page or one element as a PNG at a
    /// fixed width, so two captures of the same page have the same size.
    /// Browser only.
    Screenshot {
        /// Capture only the first element matching this selector.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
        /// Capture the whole page, not just the viewport (not with `selector`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        full_page: bool,
        /// Viewport width in CSS pixels.
        #[serde(default = "default_screenshot_width")]
        #[schema(minimum = 320, maximum = 3840, default = 1280, format = "uint32")]
        width: u32,
        /// Viewport height in CSS pixels.
        #[serde(default = "default_screenshot_height")]
        #[schema(minimum = 200, maximum = 4000, default = 800, format = "uint32")]
        height: u32,
        /// The artifact's name; `step-{index}-screenshot.png` by default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<ArtifactName>,
    },
    /// From here on, record the request/response pairs whose URL matches
    /// `url_pattern` (method, URL, status, headers without cookies or
    /// authorization, bodies up to `max_body_bytes`) into one JSON
    /// artifact. The HTTP engine records the pages it loads itself.
    CaptureNetwork {
        url_pattern: UrlPattern,
        /// Longest body kept per response, in bytes; longer ones are cut.
        #[serde(default = "default_capture_body_bytes")]
        #[schema(minimum = 0, maximum = 4_194_304, default = 262_144, format = "uint32")]
        max_body_bytes: u32,
        /// The artifact's name; `step-{index}-network.json` by default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<ArtifactName>,
    },
    /// Download a file, by `url` or by following the link (or, in a
    /// browser, clicking the element) matching `selector`: exactly one of
    /// the two. Its SHA-256 is recorded.
    Download {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<TargetUrl>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
        /// A bigger file fails the step (permanently).
        #[serde(default = "default_download_bytes")]
        #[schema(
            minimum = 1,
            maximum = 524_288_000,
            default = 52_428_800,
            format = "uint64"
        )]
        max_bytes: u64,
        /// The artifact's name; `step-{index}-download` by default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<ArtifactName>,
    },
    /// Evaluate a JavaScript expression in the page; its JSON value becomes
    /// the result field `field`. Browser only, and refused unless the
    /// server enables it (`--allow-evaluate`).
    Evaluate {
        /// At most 16 KiB.
        #[schema(max_length = 16384)]
        expression: String,
        /// The result field to set (at most 128 bytes).
        #[schema(max_length = 128)]
        field: String,
    },
    /// Check the current page; a failed check fails the job permanently.
    /// At least one check.
    Assert {
        /// The page's HTTP status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 100, maximum = 599)]
        status: Option<u16>,
        /// Text that must appear in the page's visible text (at most 4096 bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 4096)]
        text: Option<String>,
        /// Text that must not appear in the page's visible text (at most 4096 bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 4096)]
        text_absent: Option<String>,
        /// A CSS selector that must match at least one element.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
        /// A CSS selector that must match no element.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector_absent: Option<CssSelector>,
        /// The last `navigate` took at most this long, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 1, maximum = 3_600_000, format = "uint64")]
        max_load_ms: Option<u64>,
        /// The page logged no console error so far. Browser only.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_console_errors: bool,
    },
    /// Keep the current page's HTML as an artifact. (Browser runs always
    /// keep the final page as `page.html`; HTTP runs keep HTML only here.)
    SaveHtml {
        /// The artifact's name; `step-{index}-page.html` by default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<ArtifactName>,
    },
}

fn default_scroll_rounds() -> u32 {
    DEFAULT_SCROLL_ROUNDS
}

fn default_screenshot_width() -> u32 {
    DEFAULT_SCREENSHOT_WIDTH
}

fn default_screenshot_height() -> u32 {
    DEFAULT_SCREENSHOT_HEIGHT
}

fn default_capture_body_bytes() -> u32 {
    DEFAULT_CAPTURE_BODY_BYTES
}

fn default_download_bytes() -> u64 {
    DEFAULT_DOWNLOAD_BYTES
}

/// When a browser considers a navigation done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
pub enum WaitUntil {
    /// The `load` event: the page and its sub-resources.
    #[default]
    #[serde(rename = "load")]
    Load,
    /// The `DOMContentLoaded` event: the document is parsed.
    #[serde(rename = "domcontentloaded")]
    DomContentLoaded,
    /// No network request for 500 ms after `load`.
    #[serde(rename = "networkidle")]
    NetworkIdle,
}

impl WaitUntil {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The state a `wait_for` step waits for an element to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ElementState {
    /// Present and shown (non-empty box, not `visibility: hidden`).
    #[default]
    Visible,
    /// Absent, or present but not shown.
    Hidden,
}

/// What a `wait_for` step waits for: the typed view of its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition<'a> {
    Element {
        selector: &'a CssSelector,
        state: ElementState,
    },
    Text(&'a str),
    Delay(u64),
}

/// Where a `download` step's file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadSource<'a> {
    Url(&'a TargetUrl),
    Element(&'a CssSelector),
}

/// What a step needs from the engine that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Load a page or a file over the network.
    Fetch,
    /// Read the loaded page's markup (or JSON body).
    ReadPage,
    /// A live page: scripts, layout, input events, rendering, console.
    Browser,
}

/// A text a step carries, with where it sits and how long it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepText<'a> {
    /// Path within the step, e.g. `fields.title.attribute`.
    pub path: String,
    pub text: &'a str,
    /// Most bytes allowed.
    pub max: usize,
}

/// A step that does not make sense on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{member}: {message}")]
pub struct StepError {
    /// The offending member, relative to the step (e.g. `fields.title.html`),
    /// or empty for the step as a whole.
    pub member: String,
    pub message: String,
}

fn step_error(member: impl Into<String>, message: impl Into<String>) -> StepError {
    StepError {
        member: member.into(),
        message: message.into(),
    }
}

impl Step {
    /// The wire name of the step, used in error messages.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Navigate { .. } => "navigate",
            Self::WaitFor { .. } => "wait_for",
            Self::Click { .. } => "click",
            Self::Follow { .. } => "follow",
            Self::Fill { .. } => "fill",
            Self::Select { .. } => "select",
            Self::Check { .. } => "check",
            Self::Uncheck { .. } => "uncheck",
            Self::Press { .. } => "press",
            Self::Submit { .. } => "submit",
            Self::Scroll { .. } => "scroll",
            Self::Hover { .. } => "hover",
            Self::Extract { .. } => "extract",
            Self::Screenshot { .. } => "screenshot",
            Self::CaptureNetwork { .. } => "capture_network",
            Self::Download { .. } => "download",
            Self::Evaluate { .. } => "evaluate",
            Self::Assert { .. } => "assert",
            Self::SaveHtml { .. } => "save_html",
        }
    }

    /// What an engine must be able to do to run this step.
    pub fn requires(&self) -> Capability {
        match self {
            Self::Navigate { .. }
            | Self::CaptureNetwork { .. }
            | Self::Download { url: Some(_), .. } => Capability::Fetch,
            // Without a browser, a download by selector follows the link.
            Self::Extract { .. }
            | Self::SaveHtml { .. }
            | Self::Download { .. }
            | Self::Follow { .. } => Capability::ReadPage,
            Self::Assert {
                no_console_errors, ..
            } => {
                if *no_console_errors {
                    Capability::Browser
                } else {
                    Capability::ReadPage
                }
            }
            Self::WaitFor { .. }
            | Self::Click { .. }
            | Self::Fill { .. }
            | Self::Select { .. }
            | Self::Check { .. }
            | Self::Uncheck { .. }
            | Self::Press { .. }
            | Self::Submit { .. }
            | Self::Scroll { .. }
            | Self::Hover { .. }
            | Self::Screenshot { .. }
            | Self::Evaluate { .. } => Capability::Browser,
        }
    }

    /// Why this step needs a browser, naming the member that does when it
    /// is not the whole step: `(member, reason)`.
    pub fn browser_need(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Assert {
                no_console_errors: true,
                ..
            } => Some((
                "no_console_errors",
                "console errors are only seen by a browser",
            )),
            step if step.requires() == Capability::Browser => Some(("", "it needs a live page")),
            _ => None,
        }
    }

    /// Whether the step works on a loaded page (so a `navigate` must come
    /// first). Only `navigate` itself and `capture_network` do not.
    pub fn touches_page(&self) -> bool {
        !matches!(self, Self::Navigate { .. } | Self::CaptureNetwork { .. })
    }

    /// The URL this step fetches by itself, if any (the SSRF checks at
    /// submission look at these).
    pub fn target_url(&self) -> Option<&TargetUrl> {
        match self {
            Self::Navigate { url, .. } => Some(url),
            Self::Download { url, .. } => url.as_ref(),
            _ => None,
        }
    }

    /// The name of the artifact this step (the `index`-th of its job)
    /// produces, if it produces one: its `name`, or one derived from the
    /// index.
    pub fn artifact_name(&self, index: usize) -> Option<ArtifactName> {
        let (name, suffix) = match self {
            Self::Screenshot { name, .. } => (name, "screenshot.png"),
            Self::CaptureNetwork { name, .. } => (name, "network.json"),
            Self::Download { name, .. } => (name, "download"),
            Self::SaveHtml { name } => (name, "page.html"),
            _ => return None,
        };
        Some(match name {
            Some(name) => name.clone(),
            None => ArtifactName::new(format!("step-{index}-{suffix}"))
                .expect("a derived artifact name is valid"),
        })
    }

    /// What a `wait_for` step waits for, or why its members do not say.
    /// `None` for other steps.
    pub fn wait_condition(&self) -> Option<Result<WaitCondition<'_>, StepError>> {
        let Self::WaitFor {
            selector,
            state,
            text,
            delay_ms,
            timeout_ms,
        } = self
        else {
            return None;
        };
        let condition = match (selector, text, delay_ms) {
            (Some(selector), None, None) => Ok(WaitCondition::Element {
                selector,
                state: state.unwrap_or_default(),
            }),
            (None, Some(text), None) => Ok(WaitCondition::Text(text)),
            (None, None, Some(delay)) => Ok(WaitCondition::Delay(*delay)),
            _ => Err(step_error(
                "",
                "a `wait_for` step needs exactly one of `selector`, `text`, `delay_ms`",
            )),
        }
        .and_then(|condition| match condition {
            WaitCondition::Element { .. } => Ok(condition),
            _ if state.is_some() => Err(step_error("state", "`state` only applies to `selector`")),
            WaitCondition::Delay(_) if timeout_ms.is_some() => Err(step_error(
                "timeout_ms",
                "a delay has no timeout; use `delay_ms` alone",
            )),
            _ => Ok(condition),
        });
        Some(condition)
    }

    /// Where a `download` step's file comes from, or why its members do
    /// not say. `None` for other steps.
    pub fn download_source(&self) -> Option<Result<DownloadSource<'_>, StepError>> {
        let Self::Download { url, selector, .. } = self else {
            return None;
        };
        Some(match (url, selector) {
            (Some(url), None) => Ok(DownloadSource::Url(url)),
            (None, Some(selector)) => Ok(DownloadSource::Element(selector)),
            _ => Err(step_error(
                "",
                "a `download` step needs exactly one of `url`, `selector`",
            )),
        })
    }

    /// Every free text this step carries (not URLs, selectors or other
    /// values parsed into their own types), with its bound.
    pub fn texts(&self) -> Vec<StepText<'_>> {
        fn entry(path: String, text: &str, max: usize) -> StepText<'_> {
            StepText { path, text, max }
        }
        let mut texts = Vec::new();
        match self {
            Self::Extract { fields } => {
                for (name, field) in fields {
                    texts.push(entry(format!("fields.{name}"), name, MAX_FIELD_NAME_BYTES));
                    if let Some(attribute) = &field.attribute {
                        texts.push(entry(
                            format!("fields.{name}.attribute"),
                            attribute,
                            MAX_FIELD_NAME_BYTES,
                        ));
                    }
                    for (item, spec) in field.items.iter().flat_map(|items| &items.fields) {
                        let path = format!("fields.{name}.items.fields.{item}");
                        if let Some(attribute) = &spec.attribute {
                            texts.push(entry(
                                format!("{path}.attribute"),
                                attribute,
                                MAX_FIELD_NAME_BYTES,
                            ));
                        }
                        texts.push(entry(path, item, MAX_FIELD_NAME_BYTES));
                    }
                }
            }
            Self::WaitFor {
                text: Some(text), ..
            } => {
                texts.push(entry("text".to_owned(), text, MAX_STEP_TEXT_BYTES));
            }
            Self::Fill { value, .. } | Self::Select { value, .. } => {
                texts.push(entry("value".to_owned(), value, MAX_STEP_TEXT_BYTES));
            }
            Self::Evaluate { expression, field } => {
                texts.push(entry(
                    "expression".to_owned(),
                    expression,
                    MAX_EXPRESSION_BYTES,
                ));
                texts.push(entry("field".to_owned(), field, MAX_FIELD_NAME_BYTES));
            }
            Self::Assert {
                text, text_absent, ..
            } => {
                if let Some(text) = text {
                    texts.push(entry("text".to_owned(), text, MAX_STEP_TEXT_BYTES));
                }
                if let Some(text) = text_absent {
                    texts.push(entry("text_absent".to_owned(), text, MAX_STEP_TEXT_BYTES));
                }
            }
            Self::Navigate { .. }
            | Self::WaitFor { text: None, .. }
            | Self::Click { .. }
            | Self::Follow { .. }
            | Self::Check { .. }
            | Self::Uncheck { .. }
            | Self::Press { .. }
            | Self::Submit { .. }
            | Self::Scroll { .. }
            | Self::Hover { .. }
            | Self::Screenshot { .. }
            | Self::CaptureNetwork { .. }
            | Self::Download { .. }
            | Self::SaveHtml { .. } => {}
        }
        texts
    }

    /// The checks this step can make on its own: its members make sense
    /// together and every number is within its bound. `max_fields` bounds
    /// an extract step's fields (and each `items`' fields).
    pub fn check(&self, max_fields: usize) -> Result<(), StepError> {
        for StepText { path, text, max } in self.texts() {
            if text.contains('\0') {
                return Err(step_error(
                    path.replace('\0', "\\0"),
                    "must not contain the NUL character",
                ));
            }
            if text.len() > max {
                return Err(step_error(path, format!("must be at most {max} bytes")));
            }
        }
        let within = |member: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(step_error(
                    member,
                    format!("must be between {} and {}", range.start(), range.end()),
                ))
            }
        };
        match self {
            Self::WaitFor {
                delay_ms,
                timeout_ms,
                ..
            } => {
                self.wait_condition().expect("a wait_for step")?;
                if let Some(delay) = delay_ms {
                    within("delay_ms", *delay, 1..=MAX_WAIT_MS)?;
                }
                if let Some(timeout) = timeout_ms {
                    within("timeout_ms", *timeout, 1..=MAX_WAIT_MS)?;
                }
                Ok(())
            }
            Self::Scroll { max_rounds } => within(
                "max_rounds",
                (*max_rounds).into(),
                1..=MAX_SCROLL_ROUNDS.into(),
            ),
            Self::Extract { fields } => check_fields(fields, max_fields),
            Self::Screenshot {
                selector,
                full_page,
                width,
                height,
                ..
            } => {
                if selector.is_some() && *full_page {
                    return Err(step_error(
                        "full_page",
                        "`full_page` and `selector` cannot be used together",
                    ));
                }
                let (w, h) = (&SCREENSHOT_WIDTHS, &SCREENSHOT_HEIGHTS);
                within(
                    "width",
                    (*width).into(),
                    (*w.start()).into()..=(*w.end()).into(),
                )?;
                within(
                    "height",
                    (*height).into(),
                    (*h.start()).into()..=(*h.end()).into(),
                )
            }
            Self::CaptureNetwork { max_body_bytes, .. } => within(
                "max_body_bytes",
                (*max_body_bytes).into(),
                0..=MAX_CAPTURE_BODY_BYTES.into(),
            ),
            Self::Download { max_bytes, .. } => {
                self.download_source().expect("a download step")?;
                within("max_bytes", *max_bytes, 1..=MAX_DOWNLOAD_BYTES)
            }
            Self::Evaluate { expression, field } => {
                if expression.trim().is_empty() {
                    return Err(step_error("expression", "must not be empty"));
                }
                if field.is_empty() {
                    return Err(step_error("field", "must not be empty"));
                }
                Ok(())
            }
            Self::Assert {
                status,
                text,
                text_absent,
                selector,
                selector_absent,
                max_load_ms,
                no_console_errors,
            } => {
                let none = status.is_none()
                    && text.is_none()
                    && text_absent.is_none()
                    && selector.is_none()
                    && selector_absent.is_none()
                    && max_load_ms.is_none()
                    && !no_console_errors;
                if none {
                    return Err(step_error(
                        "",
                        "an assert step needs at least one of `status`, `text`, `text_absent`, \
                         `selector`, `selector_absent`, `max_load_ms`, `no_console_errors`",
                    ));
                }
                if let Some(status) = status {
                    within("status", (*status).into(), 100..=599)?;
                }
                if let Some(load) = max_load_ms {
                    within("max_load_ms", *load, 1..=MAX_WAIT_MS)?;
                }
                Ok(())
            }
            Self::Navigate { .. }
            | Self::Click { .. }
            | Self::Follow { .. }
            | Self::Fill { .. }
            | Self::Select { .. }
            | Self::Check { .. }
            | Self::Uncheck { .. }
            | Self::Press { .. }
            | Self::Submit { .. }
            | Self::Hover { .. }
            | Self::SaveHtml { .. } => Ok(()),
        }
    }
}

fn check_fields(fields: &BTreeMap<String, FieldSpec>, max_fields: usize) -> Result<(), StepError> {
    let count = |member: String, len: usize, what: &str| {
        if (1..=max_fields).contains(&len) {
            Ok(())
        } else {
            Err(step_error(
                member,
                format!("{what} needs 1 to {max_fields} fields"),
            ))
        }
    };
    count("fields".to_owned(), fields.len(), "an extract step")?;
    for (name, field) in fields {
        if name.is_empty() {
            return Err(step_error("fields", "field names must not be empty"));
        }
        let source = field
            .source()
            .map_err(|err| step_error(join(&format!("fields.{name}"), &err.member), err.message))?;
        if let FieldSource::Items(items) = source {
            let path = format!("fields.{name}.items.fields");
            count(path.clone(), items.fields.len(), "`items`")?;
            for (item, spec) in &items.fields {
                check_item_field(&path, item, spec)?;
            }
        }
    }
    Ok(())
}

fn check_item_field(path: &str, name: &str, field: &ItemField) -> Result<(), StepError> {
    if name.is_empty() {
        return Err(step_error(path, "field names must not be empty"));
    }
    field
        .read()
        .map(|_| ())
        .map_err(|err| step_error(join(&format!("{path}.{name}"), &err.member), err.message))
}

fn join(path: &str, member: &str) -> String {
    if member.is_empty() {
        path.to_owned()
    } else {
        format!("{path}.{member}")
    }
}

/// A key to press, named as Chromium's `Input.dispatchKeyEvent` names it:
/// one printable character (`a`, `A`, `1`, ` `) or one of the named keys
/// in [`KeyName::NAMED`] (`Enter`, `Tab`, `ArrowDown`, ...). No modifier
/// combinations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyName(String);

/// A string that is not a key we can press.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key {0:?}: use one printable character or a named key such as `Enter`, `Tab`, `Escape`, `ArrowDown`"
)]
pub struct KeyNameError(String);

impl KeyName {
    /// The named keys accepted, spelled as the browser's `key` values.
    pub const NAMED: &'static [&'static str] = &[
        "Enter",
        "Tab",
        "Escape",
        "Backspace",
        "Delete",
        "Insert",
        "Home",
        "End",
        "PageUp",
        "PageDown",
        "ArrowUp",
        "ArrowDown",
        "ArrowLeft",
        "ArrowRight",
        "F1",
        "F2",
        "F3",
        "F4",
        "F5",
        "F6",
        "F7",
        "F8",
        "F9",
        "F10",
        "F11",
        "F12",
    ];

    pub fn new(key: impl Into<String>) -> Result<Self, KeyNameError> {
        let key = key.into();
        let mut chars = key.chars();
        let printable = matches!((chars.next(), chars.next()), (Some(c), None) if !c.is_control());
        if printable || Self::NAMED.contains(&key.as_str()) {
            Ok(Self(key))
        } else {
            let mut shown: String = key.chars().take(20).collect();
            if shown.len() < key.len() {
                shown.push_str("...");
            }
            Err(KeyNameError(shown))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one printable character (typed as text) rather than
    /// a named key.
    pub fn is_character(&self) -> bool {
        !Self::NAMED.contains(&self.0.as_str())
    }
}

impl TryFrom<String> for KeyName {
    type Error = KeyNameError;
    fn try_from(key: String) -> Result<Self, Self::Error> {
        Self::new(key)
    }
}

impl From<KeyName> for String {
    fn from(key: KeyName) -> Self {
        key.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for KeyName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(10))
            .description(Some(format!(
                "A key as the browser names it: one printable character, or one of {}.",
                Self::NAMED.join(", ")
            )))
            .examples(["Enter"])
            .into()
    }
}

impl ToSchema for KeyName {}

/// Which URLs a `capture_network` step records: with a `*` the pattern is a
/// glob over the whole URL (`*` matches any run of characters, e.g.
/// `https://api.example.com/v1/*`); without one, any URL containing it
/// matches. 1 to 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UrlPattern(String);

/// A string that is not a URL pattern we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlPatternError {
    #[error("a URL pattern must be 1 to {MAX_URL_PATTERN_BYTES} bytes")]
    Length,
    #[error("a URL pattern must not contain control characters")]
    Control,
}

impl UrlPattern {
    pub fn new(pattern: impl Into<String>) -> Result<Self, UrlPatternError> {
        let pattern = pattern.into();
        if pattern.is_empty() || pattern.len() > MAX_URL_PATTERN_BYTES {
            return Err(UrlPatternError::Length);
        }
        if pattern.chars().any(char::is_control) {
            return Err(UrlPatternError::Control);
        }
        Ok(Self(pattern))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `url` matches: a glob over the whole URL when the pattern
    /// has a `*`, a substring test otherwise.
    pub fn matches(&self, url: &str) -> bool {
        if self.0.contains('*') {
            glob_matches(self.0.as_bytes(), url.as_bytes())
        } else {
            url.contains(&self.0)
        }
    }
}

/// `*`-only glob matching in O(pattern × text) at worst, without recursion:
/// on a mismatch, the last `*` takes one more byte.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut retry: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                retry = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match retry {
                Some((star, from)) => {
                    p = star + 1;
                    t = from + 1;
                    retry = Some((star, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl TryFrom<String> for UrlPattern {
    type Error = UrlPatternError;
    fn try_from(pattern: String) -> Result<Self, Self::Error> {
        Self::new(pattern)
    }
}

impl From<UrlPattern> for String {
    fn from(pattern: UrlPattern) -> Self {
        pattern.0
    }
}

impl fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for UrlPattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_URL_PATTERN_BYTES))
            .description(Some(
                "URLs to record: with a `*` a glob over the whole URL (`*` matches any run of \
                 characters), without one a substring of the URL.",
            ))
            .examples(["https://api.example.com/v1/*"])
            .into()
    }
}

impl ToSchema for UrlPattern {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_patterns_glob_or_contain() {
        let check = |pattern: &str, url: &str, expected: bool| {
            let pattern = UrlPattern::new(pattern).unwrap();
            assert_eq!(pattern.matches(url), expected, "{pattern} ~ {url}");
        };
        check("/api/", "https://x.test/api/jobs", true);
        check("/api/", "https://x.test/apis", false);
        check("https://x.test/api/*", "https://x.test/api/jobs?p=2", true);
        check("https://x.test/api/*", "https://y.test/api/jobs", false);
        check("*/jobs", "https://x.test/api/jobs", true);
        check("*/jobs", "https://x.test/api/jobs/1", false);
        check("*.json", "https://x.test/a.json", true);
        check("*a*b*c*", "xxaxxbxxcxx", true);
        check("*a*b*c*", "xxaxxcxxbxx", false);
        check("*", "", true);
        check("a**b", "ab", true);
        // Worst case stays quick: many stars against a long near-miss.
        let long = "a".repeat(100_000);
        check(&"*a".repeat(100), &long, true);
        check(&format!("{}b", "*a".repeat(100)), &long, false);
        assert!(UrlPattern::new("").is_err());
        assert!(UrlPattern::new("a\nb").is_err());
        assert!(UrlPattern::new("a".repeat(MAX_URL_PATTERN_BYTES + 1)).is_err());
    }

    #[test]
    fn keys_are_characters_or_named() {
        let check = |key: &str, ok: bool| assert_eq!(KeyName::new(key).is_ok(), ok, "{key:?}");
        check("Enter", true);
        check("ArrowDown", true);
        check("F12", true);
        check("a", true);
        check(" ", true);
        check("é", true);
        check("", false);
        check("enter", false);
        check("Ctrl+A", false);
        check("\n", false);
        check("ab", false);
        assert!(KeyName::new("a").unwrap().is_character());
        assert!(!KeyName::new("Tab").unwrap().is_character());
        let err = serde_json::from_str::<KeyName>(r#""Return""#).unwrap_err();
        assert!(
            err.to_string().starts_with("unknown key \"Return\""),
            "{err}"
        );
    }

    #[test]
    fn artifact_names_default_to_the_step_index() {
        let check = |json: &str, index: usize, expected: Option<&str>| {
            let step: Step = serde_json::from_str(json).unwrap();
            let got = step.artifact_name(index);
            assert_eq!(got.as_ref().map(ArtifactName::as_str), expected, "{json}");
        };
        check(
            r#"{"action":"screenshot"}"#,
            3,
            Some("step-3-screenshot.png"),
        );
        check(
            r#"{"action":"screenshot","name":"home.png"}"#,
            3,
            Some("home.png"),
        );
        check(
            r#"{"action":"capture_network","url_pattern":"/api/"}"#,
            0,
            Some("step-0-network.json"),
        );
        check(
            r#"{"action":"download","url":"https://x.test/f.pdf"}"#,
            7,
            Some("step-7-download"),
        );
        check(r#"{"action":"save_html"}"#, 2, Some("step-2-page.html"));
        check(r#"{"action":"click","selector":"a"}"#, 1, None);
    }
}
