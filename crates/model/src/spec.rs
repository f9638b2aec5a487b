//! What a client asks for: a new job and its typed steps, validated once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CssSelector, Priority, QueueName, RetryPolicy, TargetUrl};

/// Which execution engine runs the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Plain HTTP: fetch, parse, extract, assert. Fast; cannot run scripts.
    #[default]
    Http,
    /// Headless Chromium: every step.
    Browser,
    /// HTTP first, moved to the browser when the page needs one (a step
    /// needs a browser, or the page renders on the client).
    Auto,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Browser => "browser",
            Self::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Self::Http),
            "browser" => Some(Self::Browser),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }
}

/// The concrete engine an attempt runs on: what a worker declares it can
/// run, and what a result says ran. (`Engine::Auto` is decided per job: it
/// starts on `Http` and moves to `Browser` when the page needs one.)
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunEngine {
    #[default]
    Http,
    Browser,
}

impl RunEngine {
    pub const ALL: [Self; 2] = [Self::Http, Self::Browser];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Browser => "browser",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Self::Http),
            "browser" => Some(Self::Browser),
            _ => None,
        }
    }
}

impl std::fmt::Display for RunEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to pull one field out of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// A CSS selector.
    pub selector: CssSelector,
    /// Read this attribute instead of the element's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// Return every match as a list instead of the first one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// One typed step of a job. Steps run in order on one page context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Load a page (GET, redirects followed).
    Navigate {
        url: TargetUrl,
        /// Keep a 429 or 5xx response instead of failing the attempt as retryable.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        accept_error_status: bool,
    },
    /// Extract named fields from the current page.
    Extract { fields: BTreeMap<String, FieldSpec> },
    /// Check the current page; a failed check fails the job permanently.
    Assert {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Text that must appear in the page's visible text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// A CSS selector that must match at least one element.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
    },
    /// Wait until a selector appears (browser engine).
    WaitFor {
        selector: CssSelector,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Click an element (browser engine).
    Click { selector: CssSelector },
    /// Type into a form field (browser engine).
    Fill {
        selector: CssSelector,
        value: String,
    },
    /// Choose an option of a select element (browser engine).
    Select {
        selector: CssSelector,
        value: String,
    },
    /// Submit a form (browser engine).
    Submit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
    },
    /// Capture the page or one element as an image (browser engine).
    Screenshot {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selector: Option<CssSelector>,
    },
}

impl Step {
    /// The wire name of the step, used in error messages.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Navigate { .. } => "navigate",
            Self::Extract { .. } => "extract",
            Self::Assert { .. } => "assert",
            Self::WaitFor { .. } => "wait_for",
            Self::Click { .. } => "click",
            Self::Fill { .. } => "fill",
            Self::Select { .. } => "select",
            Self::Submit { .. } => "submit",
            Self::Screenshot { .. } => "screenshot",
        }
    }

    /// Refuses text this step carries that no store can keep (NUL) or that
    /// is past its bound.
    fn check_text(&self, index: usize) -> Result<(), ValidationError> {
        let check = |path: String, value: &str, max: usize| {
            if value.contains('\0') {
                Err(invalid(
                    format!("steps[{index}].{path}"),
                    "must not contain the NUL character",
                ))
            } else if value.len() > max {
                Err(invalid(
                    format!("steps[{index}].{path}"),
                    format!("must be at most {max} bytes"),
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Self::Extract { fields } => {
                for (name, field) in fields {
                    if name.is_empty() {
                        return Err(invalid(
                            format!("steps[{index}].fields"),
                            "field names must not be empty",
                        ));
                    }
                    check(format!("fields.{name}"), name, MAX_FIELD_NAME_BYTES)?;
                    if let Some(attribute) = &field.attribute {
                        check(
                            format!("fields.{name}.attribute"),
                            attribute,
                            MAX_FIELD_NAME_BYTES,
                        )?;
                    }
                }
                Ok(())
            }
            Self::Assert {
                text: Some(text), ..
            } => check("text".to_owned(), text, MAX_STEP_TEXT_BYTES),
            Self::Fill { value, .. } | Self::Select { value, .. } => {
                check("value".to_owned(), value, MAX_STEP_TEXT_BYTES)
            }
            _ => Ok(()),
        }
    }

    /// What an engine must be able to do to run this step.
    pub fn requires(&self) -> Capability {
        match self {
            Self::Navigate { .. } => Capability::Fetch,
            Self::Extract { .. } | Self::Assert { .. } => Capability::ReadPage,
            Self::WaitFor { .. }
            | Self::Click { .. }
            | Self::Fill { .. }
            | Self::Select { .. }
            | Self::Submit { .. }
            | Self::Screenshot { .. } => Capability::Browser,
        }
    }
}

/// What a step needs from the engine that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Load a page over the network.
    Fetch,
    /// Read the loaded page's markup.
    ReadPage,
    /// A live page: scripts, layout, input events, rendering.
    Browser,
}

impl Engine {
    /// Whether this engine can run steps that need `capability`.
    pub fn supports(self, capability: Capability) -> bool {
        match (self, capability) {
            (Self::Http, Capability::Fetch | Capability::ReadPage) => true,
            (Self::Http, Capability::Browser) => false,
            (Self::Browser | Self::Auto, _) => true,
        }
    }
}

/// The part of a job a worker needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub engine: Engine,
    pub steps: Vec<Step>,
    pub timeout_seconds: u32,
}

/// `POST /api/v1/jobs`: a job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    #[serde(default)]
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub queue: QueueName,
    #[serde(default)]
    pub priority: Priority,
    /// Run no earlier than this; omitted means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(default = "default_max_attempts")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: u32,
    #[serde(default = "default_timeout_seconds")]
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_seconds: u32,
    #[serde(default)]
    pub engine: Engine,
    #[schema(min_items = 1, max_items = 100)]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// Longest extract field name or attribute name, in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 128;
/// Longest text a step carries (assert text, a value to type), in bytes.
pub const MAX_STEP_TEXT_BYTES: usize = 4_096;

/// `run_at` must fall in this window (years, inclusive start, exclusive end):
/// outside it a timestamp is a mistake, and year 0 would run at once.
const RUN_AT_YEARS: std::ops::Range<i32> = 2000..2100;

fn default_max_attempts() -> u32 {
    3
}

fn default_timeout_seconds() -> u32 {
    120
}

/// Bounds on what a job may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_steps: usize,
    pub max_attempts: u32,
    pub max_timeout_seconds: u32,
    pub max_labels: usize,
    pub max_label_len: usize,
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_steps: 100,
            max_attempts: 100,
            max_timeout_seconds: 3_600,
            max_labels: 32,
            max_label_len: 256,
            max_fields: 100,
        }
    }
}

/// A request that parsed but does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Dotted path of the offending field, e.g. `steps[1].fields.title.selector`.
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

impl NewJob {
    /// Checks everything serde cannot: ranges, sizes, text no store can keep,
    /// and steps the chosen engine cannot run. (CSS selectors were checked
    /// when they were parsed.)
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        if self.steps.is_empty() {
            return Err(invalid("steps", "a job needs at least one step"));
        }
        if self.steps.len() > limits.max_steps {
            return Err(invalid(
                "steps",
                format!("at most {} steps are allowed", limits.max_steps),
            ));
        }
        if !(1..=limits.max_attempts).contains(&self.max_attempts) {
            return Err(invalid(
                "max_attempts",
                format!("must be between 1 and {}", limits.max_attempts),
            ));
        }
        if !(1..=limits.max_timeout_seconds).contains(&self.timeout_seconds) {
            return Err(invalid(
                "timeout_seconds",
                format!("must be between 1 and {}", limits.max_timeout_seconds),
            ));
        }
        if self.labels.len() > limits.max_labels {
            return Err(invalid(
                "labels",
                format!("at most {} labels are allowed", limits.max_labels),
            ));
        }
        if let Some(run_at) = self.run_at {
            if !RUN_AT_YEARS.contains(&chrono::Datelike::year(&run_at)) {
                return Err(invalid(
                    "run_at",
                    format!(
                        "must be in the years {} to {}",
                        RUN_AT_YEARS.start,
                        RUN_AT_YEARS.end - 1
                    ),
                ));
            }
        }
        for (key, value) in &self.labels {
            if key.contains('\0') || value.contains('\0') {
                return Err(invalid(
                    format!("labels.{}", key.replace('\0', "\\0")),
                    "labels must not contain the NUL character",
                ));
            }
            if key.is_empty()
                || key.len() > limits.max_label_len
                || value.len() > limits.max_label_len
            {
                return Err(invalid(
                    format!("labels.{key}"),
                    format!(
                        "keys must be 1 to {0} bytes and values at most {0} bytes",
                        limits.max_label_len
                    ),
                ));
            }
        }
        self.retry
            .validate()
            .map_err(|message| invalid("retry", message))?;
        if !matches!(self.steps.first(), Some(Step::Navigate { .. })) {
            return Err(invalid("steps[0]", "the first step must be `navigate`"));
        }
        for (index, step) in self.steps.iter().enumerate() {
            if let Step::Extract { fields } = step {
                if fields.is_empty() || fields.len() > limits.max_fields {
                    return Err(invalid(
                        format!("steps[{index}].fields"),
                        format!("an extract step needs 1 to {} fields", limits.max_fields),
                    ));
                }
            }
            if let Step::Assert {
                status: None,
                text: None,
                selector: None,
            } = step
            {
                return Err(invalid(
                    format!("steps[{index}]"),
                    "an assert step needs at least one of `status`, `text`, `selector`",
                ));
            }
            if !self.engine.supports(step.requires()) {
                return Err(invalid(
                    format!("steps[{index}]"),
                    format!(
                        "the `{}` step needs a browser; the `{}` engine cannot run it",
                        step.action(),
                        self.engine.as_str()
                    ),
                ));
            }
            step.check_text(index)?;
        }
        Ok(())
    }

    /// The part of this job a worker runs.
    pub fn spec(&self) -> JobSpec {
        JobSpec {
            engine: self.engine,
            steps: self.steps.clone(),
            timeout_seconds: self.timeout_seconds,
        }
    }

    /// A stable fingerprint of the request, for idempotency: two requests that
    /// parse to the same job have the same hash, whatever their formatting.
    pub fn request_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::to_vec(self).expect("a NewJob always serializes");
        hex::encode(Sha256::digest(canonical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NewJob, String> {
        serde_json::from_str::<NewJob>(json).map_err(|e| e.to_string())
    }

    fn check(json: &str, expected: Result<(), &str>) {
        let outcome =
            parse(json).and_then(|job| job.validate(&Limits::default()).map_err(|e| e.to_string()));
        match (outcome, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => {
                assert!(got.contains(want), "{json}: got {got:?}, want {want:?}")
            }
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn accepts_the_documented_example() {
        check(
            r#"{"engine":"http","priority":"high","steps":[{"action":"navigate","url":"http://example.com/"},{"action":"extract","fields":{"title":{"selector":"h1"},"links":{"selector":"a","attribute":"href","all":true}}},{"action":"assert","status":200}]}"#,
            Ok(()),
        );
    }

    #[test]
    fn rejects_bad_requests() {
        let nav = r#"{"action":"navigate","url":"https://example.com/"}"#;
        check(r#"{"steps":[]}"#, Err("at least one step"));
        check(
            &format!(r#"{{"steps":[{nav}],"bogus":1}}"#),
            Err("unknown field `bogus`"),
        );
        check(
            &format!(r#"{{"steps":[{nav}],"priority":"urgent"}}"#),
            Err("unknown variant `urgent`"),
        );
        check(
            r#"{"steps":[{"action":"teleport"}]}"#,
            Err("unknown variant `teleport`"),
        );
        check(
            r#"{"steps":[{"action":"navigate","url":"ftp://example.com/"}]}"#,
            Err("http or https"),
        );
        check(
            &format!(
                r#"{{"steps":[{nav},{{"action":"extract","fields":{{"x":{{"selector":"h1[["}}}}}}]}}"#
            ),
            Err("invalid CSS selector"),
        );
        check(
            &format!(r#"{{"steps":[{nav},{{"action":"assert"}}]}}"#),
            Err("at least one of"),
        );
        check(
            &format!(r#"{{"steps":[{nav}],"max_attempts":0}}"#),
            Err("max_attempts"),
        );
        check(
            &format!(r#"{{"steps":[{nav}],"timeout_seconds":100000}}"#),
            Err("timeout_seconds"),
        );
        check(
            r#"{"steps":[{"action":"click","selector":"a"}]}"#,
            Err("first step must be `navigate`"),
        );
        check(
            &format!(
                r#"{{"steps":[{nav},{{"action":"navigate","url":"https://x.test/","extra":1}}]}}"#
            ),
            Err("unknown field `extra`"),
        );
    }

    #[test]
    fn refuses_text_no_store_can_keep() {
        let nav = r#"{"action":"navigate","url":"https://example.com/"}"#;
        check(
            &format!(r#"{{"steps":[{nav}],"labels":{{"a\u0000":"b"}}}}"#),
            Err("labels.a\\0: labels must not contain the NUL character"),
        );
        check(
            &format!(r#"{{"steps":[{nav}],"labels":{{"a":"b\u0000"}}}}"#),
            Err("NUL"),
        );
        check(
            &format!(
                r#"{{"steps":[{nav},{{"action":"extract","fields":{{"x\u0000":{{"selector":"h1"}}}}}}]}}"#
            ),
            Err("steps[1].fields.x"),
        );
        check(
            &format!(r#"{{"steps":[{nav},{{"action":"assert","text":"a\u0000"}}]}}"#),
            Err("steps[1].text: must not contain the NUL character"),
        );
        check(
            &format!(
                r#"{{"steps":[{nav},{{"action":"extract","fields":{{"x":{{"selector":"h1\u0000"}}}}}}]}}"#
            ),
            Err(r#"invalid CSS selector "h1\0": it contains a NUL character"#),
        );
        check(
            &format!(
                r#"{{"steps":[{nav},{{"action":"assert","text":"{}"}}]}}"#,
                "a".repeat(5000)
            ),
            Err("at most 4096 bytes"),
        );
    }

    #[test]
    fn run_at_outside_a_sane_window_is_refused() {
        let nav = r#"{"action":"navigate","url":"https://example.com/"}"#;
        check(
            &format!(r#"{{"steps":[{nav}],"run_at":"2030-01-01T00:00:00Z"}}"#),
            Ok(()),
        );
        check(
            &format!(r#"{{"steps":[{nav}],"run_at":"0000-01-01T00:00:00Z"}}"#),
            Err("run_at: must be in the years 2000 to 2099"),
        );
        check(
            &format!(r#"{{"steps":[{nav}],"run_at":"+10000-01-01T00:00:00Z"}}"#),
            Err("run_at"),
        );
    }

    #[test]
    fn steps_the_engine_cannot_run_are_refused_at_submission() {
        let nav = r#"{"action":"navigate","url":"https://example.com/"}"#;
        for step in [
            r#"{"action":"click","selector":"a"}"#,
            r#"{"action":"wait_for","selector":"a"}"#,
            r#"{"action":"fill","selector":"input","value":"x"}"#,
            r#"{"action":"screenshot"}"#,
        ] {
            check(
                &format!(r#"{{"engine":"http","steps":[{nav},{step}]}}"#),
                Err("steps[1]: the `"),
            );
        }
        check(
            &format!(r#"{{"steps":[{nav},{{"action":"click","selector":"a"}}]}}"#),
            Err("steps[1]: the `click` step needs a browser; the `http` engine cannot run it"),
        );
    }

    #[test]
    fn request_hash_ignores_formatting() {
        let a = parse(r#"{"steps":[{"action":"navigate","url":"https://example.com/"}]}"#).unwrap();
        let b = parse("{ \"steps\" : [ {\"url\":\"https://example.com/\", \"action\":\"navigate\"} ], \"priority\":\"normal\" }").unwrap();
        let c = parse(r#"{"steps":[{"action":"navigate","url":"https://example.org/"}]}"#).unwrap();
        assert_eq!(a.request_hash(), b.request_hash());
        assert_ne!(a.request_hash(), c.request_hash());
    }
}
