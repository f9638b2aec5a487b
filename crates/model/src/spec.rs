//! What a client asks for: a new job and its typed steps, validated once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ArtifactName, Capability, Priority, QueueName, RetryPolicy, Step};

/// Which execution engine a job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Plain HTTP: fetch, parse, extract, assert, download. Fast; runs no
    /// scripts, so steps that need a live page are refused at submission.
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

    /// Whether this engine can run steps that need `capability`. `auto`
    /// can run anything: it moves to the browser when it must.
    pub fn supports(self, capability: Capability) -> bool {
        match (self, capability) {
            (Self::Http, Capability::Fetch | Capability::ReadPage) => true,
            (Self::Http, Capability::Browser) => false,
            (Self::Browser | Self::Auto, _) => true,
        }
    }

    /// The concrete engine this choice runs on, when the choice alone
    /// decides it (`None` for `auto`, which decides per job).
    pub fn runs_on(self) -> Option<RunEngine> {
        match self {
            Self::Http => Some(RunEngine::Http),
            Self::Browser => Some(RunEngine::Browser),
            Self::Auto => None,
        }
    }
}

/// The concrete engine an attempt runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunEngine {
    /// The plain-HTTP engine. (Results written before the engine was
    /// recorded read as `http`: it was the only one.)
    #[default]
    Http,
    /// Headless Chromium.
    Browser,
}

impl RunEngine {
    pub const ALL: [RunEngine; 2] = [Self::Http, Self::Browser];

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
        f.pad(self.as_str())
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

/// Artifact names the engines use for what every run may keep (the final
/// page, the console log, the screenshot of a failure); no step may take
/// them.
pub const RESERVED_ARTIFACT_NAMES: &[&str] = &["page.html", "console.json", "failure.png"];

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
    /// Whether `evaluate` steps (JavaScript from the job) are accepted.
    /// Off unless the server is started with `--allow-evaluate`.
    pub allow_evaluate: bool,
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
            allow_evaluate: false,
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
        self.validate_steps(limits)
    }

    /// The step rules: each step on its own, then the order of steps, what
    /// the engine can run, and the artifact names.
    fn validate_steps(&self, limits: &Limits) -> Result<(), ValidationError> {
        let job_timeout_ms = u64::from(self.timeout_seconds) * 1_000;
        let mut artifacts: BTreeMap<ArtifactName, usize> = BTreeMap::new();
        let mut seen_navigate = false;
        for (index, step) in self.steps.iter().enumerate() {
            let at = |member: &str| {
                if member.is_empty() {
                    format!("steps[{index}]")
                } else {
                    format!("steps[{index}].{member}")
                }
            };
            step.check(limits.max_fields)
                .map_err(|err| invalid(at(&err.member), err.message))?;
            if step.touches_page() && !seen_navigate {
                return Err(invalid(
                    at(""),
                    format!(
                        "`{}` needs a loaded page: the first step that works on a page must be \
                         `navigate` (only `capture_network` may come before it)",
                        step.action()
                    ),
                ));
            }
            seen_navigate |= matches!(step, Step::Navigate { .. });
            if let Some((member, reason)) = step.browser_need() {
                if !self.engine.supports(Capability::Browser) {
                    return Err(invalid(
                        at(member),
                        format!(
                            "the `{}` step needs a browser ({reason}); the `{}` engine cannot \
                             run it: use `\"engine\": \"browser\"` (or `auto`)",
                            step.action(),
                            self.engine.as_str()
                        ),
                    ));
                }
            }
            if let Step::Evaluate { .. } = step {
                if !limits.allow_evaluate {
                    return Err(invalid(
                        at(""),
                        "`evaluate` steps are disabled on this server (it runs JavaScript from \
                         the job; an operator can enable it with --allow-evaluate)",
                    ));
                }
            }
            if let Step::WaitFor {
                delay_ms,
                timeout_ms,
                ..
            } = step
            {
                for (member, value) in [("delay_ms", delay_ms), ("timeout_ms", timeout_ms)] {
                    if value.is_some_and(|ms| ms > job_timeout_ms) {
                        return Err(invalid(
                            at(member),
                            format!("must be at most the job's timeout ({job_timeout_ms} ms)"),
                        ));
                    }
                }
            }
            if let Some(name) = step.artifact_name(index) {
                if RESERVED_ARTIFACT_NAMES.contains(&name.as_str()) {
                    return Err(invalid(
                        at("name"),
                        format!("`{name}` is reserved for an artifact every run may keep"),
                    ));
                }
                if let Some(first) = artifacts.insert(name.clone(), index) {
                    return Err(invalid(
                        at("name"),
                        format!("steps[{first}] already produces the artifact `{name}`"),
                    ));
                }
            }
        }
        if !seen_navigate {
            return Err(invalid("steps", "a job needs a `navigate` step"));
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
            Err("steps[0]: `click` needs a loaded page: the first step that works on a page must be `navigate`"),
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
            Err("steps[1]: the `click` step needs a browser (it needs a live page); the `http` engine cannot run it: use `\"engine\": \"browser\"` (or `auto`)"),
        );
    }

    /// A job of `navigate` then `step`, on `engine`, under `limits`.
    fn check_step_with(engine: &str, limits: &Limits, step: &str, expected: Result<(), &str>) {
        let json = format!(
            r#"{{"engine":"{engine}","timeout_seconds":60,"steps":[{{"action":"navigate","url":"https://example.com/"}},{step}]}}"#
        );
        let outcome = parse(&json).and_then(|job| job.validate(limits).map_err(|e| e.to_string()));
        match (outcome, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => {
                assert!(got.contains(want), "{step}: got {got:?}, want {want:?}")
            }
            (got, want) => panic!("{step}: got {got:?}, want {want:?}"),
        }
    }

    fn check_step(step: &str, expected: Result<(), &str>) {
        check_step_with("browser", &Limits::default(), step, expected);
    }

    #[test]
    fn every_step_and_its_bounds() {
        // navigate
        check_step(
            r#"{"action":"navigate","url":"https://x.test/","wait_until":"networkidle"}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"navigate","url":"https://x.test/","wait_until":"domcontentloaded"}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"navigate","url":"https://x.test/","wait_until":"idle"}"#,
            Err("unknown variant `idle`"),
        );
        // wait_for
        check_step(r##"{"action":"wait_for","selector":"#x"}"##, Ok(()));
        check_step(
            r##"{"action":"wait_for","selector":"#x","state":"hidden","timeout_ms":5000}"##,
            Ok(()),
        );
        check_step(
            r#"{"action":"wait_for","text":"Loaded","timeout_ms":1}"#,
            Ok(()),
        );
        check_step(r#"{"action":"wait_for","delay_ms":500}"#, Ok(()));
        check_step(
            r#"{"action":"wait_for"}"#,
            Err("steps[1]: a `wait_for` step needs exactly one of `selector`, `text`, `delay_ms`"),
        );
        check_step(
            r#"{"action":"wait_for","selector":"a","text":"b"}"#,
            Err("exactly one of"),
        );
        check_step(
            r#"{"action":"wait_for","text":"b","state":"visible"}"#,
            Err("steps[1].state: `state` only applies to `selector`"),
        );
        check_step(
            r#"{"action":"wait_for","delay_ms":5,"timeout_ms":5}"#,
            Err("steps[1].timeout_ms: a delay has no timeout"),
        );
        check_step(
            r#"{"action":"wait_for","delay_ms":0}"#,
            Err("steps[1].delay_ms: must be between 1 and 3600000"),
        );
        check_step(
            r#"{"action":"wait_for","selector":"a","timeout_ms":0}"#,
            Err("steps[1].timeout_ms: must be between 1"),
        );
        check_step(
            r#"{"action":"wait_for","delay_ms":60001}"#,
            Err("steps[1].delay_ms: must be at most the job's timeout (60000 ms)"),
        );
        check_step(
            r#"{"action":"wait_for","selector":"a","timeout_ms":60001}"#,
            Err("steps[1].timeout_ms: must be at most the job's timeout"),
        );
        check_step(
            r#"{"action":"wait_for","selector":"a","state":"gone"}"#,
            Err("unknown variant `gone`"),
        );
        check_step(
            &format!(r#"{{"action":"wait_for","text":"{}"}}"#, "a".repeat(4097)),
            Err("steps[1].text: must be at most 4096 bytes"),
        );
        // input
        check_step(r#"{"action":"click","selector":"a"}"#, Ok(()));
        check_step(r#"{"action":"click"}"#, Err("missing field `selector`"));
        check_step(
            r#"{"action":"fill","selector":"input","value":"x"}"#,
            Ok(()),
        );
        check_step(
            &format!(
                r#"{{"action":"fill","selector":"input","value":"{}"}}"#,
                "a".repeat(4097)
            ),
            Err("steps[1].value: must be at most 4096 bytes"),
        );
        check_step(
            r#"{"action":"select","selector":"select","value":"2"}"#,
            Ok(()),
        );
        check_step(r#"{"action":"check","selector":"input"}"#, Ok(()));
        check_step(r#"{"action":"uncheck","selector":"input"}"#, Ok(()));
        check_step(r#"{"action":"press","key":"Enter"}"#, Ok(()));
        check_step(r#"{"action":"press","key":"a","selector":"input"}"#, Ok(()));
        check_step(
            r#"{"action":"press","key":"Return"}"#,
            Err("unknown key \"Return\""),
        );
        check_step(r#"{"action":"submit"}"#, Ok(()));
        check_step(r#"{"action":"submit","selector":"form"}"#, Ok(()));
        check_step(r#"{"action":"hover","selector":"a"}"#, Ok(()));
        check_step(r#"{"action":"scroll"}"#, Ok(()));
        check_step(r#"{"action":"scroll","max_rounds":200}"#, Ok(()));
        check_step(
            r#"{"action":"scroll","max_rounds":201}"#,
            Err("steps[1].max_rounds: must be between 1 and 200"),
        );
        check_step(
            r#"{"action":"scroll","max_rounds":0}"#,
            Err("steps[1].max_rounds"),
        );
        // extract
        check_step(
            r#"{"action":"extract","fields":{"t":{"selector":"h1","html":true}}}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"extract","fields":{"jobs":{"items":{"selector":"li","fields":{"title":{"selector":"a"},"id":{"attribute":"data-id"}}}}}}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"extract","fields":{"n":{"json_pointer":"/total"},"names":{"jsonpath":"$.jobs[*].name","all":true}}}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"extract","fields":{}}"#,
            Err("steps[1].fields: an extract step needs 1 to 100 fields"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{}}}"#,
            Err("steps[1].fields.t: a field needs one source"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{"selector":"a","attribute":"href","html":true}}}"#,
            Err("steps[1].fields.t.html: `html` and `attribute` cannot be used together"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{"selector":"a","json_pointer":"/a"}}}"#,
            Err("steps[1].fields.t: a field has exactly one source"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{"json_pointer":"/a","all":true}}}"#,
            Err("steps[1].fields.t.all"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{"items":{"selector":"li","fields":{}}}}}"#,
            Err("steps[1].fields.t.items.fields: `items` needs 1 to 100 fields"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{"items":{"selector":"li","fields":{"x":{"attribute":"a","html":true}}}}}}"#,
            Err("steps[1].fields.t.items.fields.x.html: `html` and `attribute`"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{"items":{"selector":"li","fields":{"":{"selector":"a"}}}}}}"#,
            Err("steps[1].fields.t.items.fields: field names must not be empty"),
        );
        check_step(
            &format!(
                r#"{{"action":"extract","fields":{{"t":{{"items":{{"selector":"li","fields":{{"{}":{{"selector":"a"}}}}}}}}}}}}"#,
                "n".repeat(129)
            ),
            Err("steps[1].fields.t.items.fields.nnn"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{"jsonpath":"$.a["}}}"#,
            Err("invalid JSONPath query"),
        );
        check_step(
            r#"{"action":"extract","fields":{"t":{"json_pointer":"a"}}}"#,
            Err("invalid JSON Pointer"),
        );
        check_step(
            &format!(
                r#"{{"action":"extract","fields":{{"t":{{"selector":"a","attribute":"{}"}}}}}}"#,
                "a".repeat(129)
            ),
            Err("steps[1].fields.t.attribute: must be at most 128 bytes"),
        );
        // screenshot
        check_step(r#"{"action":"screenshot"}"#, Ok(()));
        check_step(
            r#"{"action":"screenshot","full_page":true,"width":3840,"height":4000,"name":"full.png"}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"screenshot","selector":"main","width":320,"height":200}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"screenshot","width":319}"#,
            Err("steps[1].width: must be between 320 and 3840"),
        );
        check_step(
            r#"{"action":"screenshot","width":3841}"#,
            Err("steps[1].width"),
        );
        check_step(
            r#"{"action":"screenshot","height":199}"#,
            Err("steps[1].height: must be between 200 and 4000"),
        );
        check_step(
            r#"{"action":"screenshot","height":4001}"#,
            Err("steps[1].height"),
        );
        check_step(
            r#"{"action":"screenshot","selector":"a","full_page":true}"#,
            Err("steps[1].full_page: `full_page` and `selector` cannot be used together"),
        );
        check_step(
            r#"{"action":"screenshot","name":"a/x.png"}"#,
            Err("path separators"),
        );
        check_step(
            r#"{"action":"screenshot","name":"page.html"}"#,
            Err("steps[1].name: `page.html` is reserved"),
        );
        // capture_network
        check_step(
            r#"{"action":"capture_network","url_pattern":"/api/*","max_body_bytes":0}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"capture_network","url_pattern":"/api/","max_body_bytes":4194304}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"capture_network","url_pattern":"/api/","max_body_bytes":4194305}"#,
            Err("steps[1].max_body_bytes: must be between 0 and 4194304"),
        );
        check_step(
            r#"{"action":"capture_network","url_pattern":""}"#,
            Err("a URL pattern must be 1 to 1024 bytes"),
        );
        // download
        check_step(
            r#"{"action":"download","url":"https://x.test/f.pdf"}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"download","selector":"a.pdf","max_bytes":524288000,"name":"report.pdf"}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"download"}"#,
            Err("steps[1]: a `download` step needs exactly one of `url`, `selector`"),
        );
        check_step(
            r#"{"action":"download","url":"https://x.test/f","selector":"a"}"#,
            Err("exactly one of `url`, `selector`"),
        );
        check_step(
            r#"{"action":"download","url":"https://x.test/f","max_bytes":0}"#,
            Err("steps[1].max_bytes: must be between 1 and 524288000"),
        );
        check_step(
            r#"{"action":"download","url":"https://x.test/f","max_bytes":524288001}"#,
            Err("steps[1].max_bytes"),
        );
        check_step(
            r#"{"action":"download","url":"file:///etc/passwd"}"#,
            Err("http or https"),
        );
        // assert
        check_step(r#"{"action":"assert","text_absent":"Error"}"#, Ok(()));
        check_step(
            r#"{"action":"assert","selector_absent":".error","max_load_ms":2000,"no_console_errors":true}"#,
            Ok(()),
        );
        check_step(
            r#"{"action":"assert","no_console_errors":false}"#,
            Err("steps[1]: an assert step needs at least one of"),
        );
        check_step(
            r#"{"action":"assert","max_load_ms":0}"#,
            Err("steps[1].max_load_ms: must be between 1 and 3600000"),
        );
        check_step(
            r#"{"action":"assert","status":99}"#,
            Err("steps[1].status: must be between 100 and 599"),
        );
        check_step(
            &format!(
                r#"{{"action":"assert","text_absent":"{}"}}"#,
                "a".repeat(4097)
            ),
            Err("steps[1].text_absent: must be at most 4096 bytes"),
        );
        check_step(
            r#"{"action":"assert","selector_absent":"a[["}"#,
            Err("invalid CSS selector"),
        );
        // save_html
        check_step(r#"{"action":"save_html"}"#, Ok(()));
        check_step(r#"{"action":"save_html","name":"home.html"}"#, Ok(()));
        check_step(
            r#"{"action":"save_html","name":"console.json"}"#,
            Err("steps[1].name: `console.json` is reserved"),
        );
    }

    #[test]
    fn evaluate_needs_the_server_to_allow_it() {
        let step = r#"{"action":"evaluate","expression":"document.title","field":"title"}"#;
        check_step(
            step,
            Err("steps[1]: `evaluate` steps are disabled on this server"),
        );
        let allowed = Limits {
            allow_evaluate: true,
            ..Limits::default()
        };
        check_step_with("browser", &allowed, step, Ok(()));
        check_step_with("auto", &allowed, step, Ok(()));
        check_step_with(
            "http",
            &allowed,
            step,
            Err("steps[1]: the `evaluate` step needs a browser"),
        );
        check_step_with(
            "browser",
            &allowed,
            r#"{"action":"evaluate","expression":" ","field":"t"}"#,
            Err("steps[1].expression: must not be empty"),
        );
        check_step_with(
            "browser",
            &allowed,
            r#"{"action":"evaluate","expression":"1","field":""}"#,
            Err("steps[1].field: must not be empty"),
        );
        check_step_with(
            "browser",
            &allowed,
            &format!(
                r#"{{"action":"evaluate","expression":"{}","field":"t"}}"#,
                "1".repeat(16 * 1024 + 1)
            ),
            Err("steps[1].expression: must be at most 16384 bytes"),
        );
    }

    #[test]
    fn the_http_engine_takes_what_it_can_run() {
        let http = |step: &str, expected: Result<(), &str>| {
            check_step_with("http", &Limits::default(), step, expected);
        };
        for step in [
            r#"{"action":"extract","fields":{"t":{"selector":"h1","html":true}}}"#,
            r#"{"action":"extract","fields":{"n":{"jsonpath":"$.a"}}}"#,
            r#"{"action":"assert","status":200,"text_absent":"x","selector_absent":"p","max_load_ms":10}"#,
            r#"{"action":"download","url":"https://x.test/f"}"#,
            r#"{"action":"download","selector":"a"}"#,
            r#"{"action":"capture_network","url_pattern":"/"}"#,
            r#"{"action":"save_html"}"#,
        ] {
            http(step, Ok(()));
        }
        for (step, action) in [
            (r#"{"action":"wait_for","delay_ms":1}"#, "wait_for"),
            (r#"{"action":"check","selector":"a"}"#, "check"),
            (r#"{"action":"uncheck","selector":"a"}"#, "uncheck"),
            (r#"{"action":"press","key":"Enter"}"#, "press"),
            (r#"{"action":"submit"}"#, "submit"),
            (r#"{"action":"scroll"}"#, "scroll"),
            (r#"{"action":"hover","selector":"a"}"#, "hover"),
            (
                r#"{"action":"select","selector":"a","value":"1"}"#,
                "select",
            ),
            (r#"{"action":"screenshot"}"#, "screenshot"),
        ] {
            http(
                step,
                Err(&format!("steps[1]: the `{action}` step needs a browser")),
            );
        }
        http(
            r#"{"action":"assert","status":200,"no_console_errors":true}"#,
            Err("steps[1].no_console_errors: the `assert` step needs a browser (console errors are only seen by a browser)"),
        );
        check_step_with(
            "auto",
            &Limits::default(),
            r#"{"action":"click","selector":"a"}"#,
            Ok(()),
        );
    }

    #[test]
    fn the_first_step_on_a_page_is_navigate() {
        let check_steps = |steps: &str, expected: Result<(), &str>| {
            check(
                &format!(r#"{{"engine":"browser","steps":{steps}}}"#),
                expected,
            );
        };
        check_steps(
            r#"[{"action":"capture_network","url_pattern":"/api/"},{"action":"navigate","url":"https://x.test/"}]"#,
            Ok(()),
        );
        check_steps(
            r#"[{"action":"capture_network","url_pattern":"/api/"}]"#,
            Err("steps: a job needs a `navigate` step"),
        );
        check_steps(
            r#"[{"action":"capture_network","url_pattern":"/"},{"action":"download","url":"https://x.test/f"}]"#,
            Err("steps[1]: `download` needs a loaded page"),
        );
        check_steps(
            r#"[{"action":"screenshot"},{"action":"navigate","url":"https://x.test/"}]"#,
            Err("steps[0]: `screenshot` needs a loaded page"),
        );
    }

    #[test]
    fn artifact_names_are_unique_within_a_job() {
        let nav = r#"{"action":"navigate","url":"https://example.com/"}"#;
        check(
            &format!(
                r#"{{"engine":"browser","steps":[{nav},{{"action":"screenshot"}},{{"action":"screenshot"}}]}}"#
            ),
            Ok(()),
        );
        check(
            &format!(
                r#"{{"engine":"browser","steps":[{nav},{{"action":"screenshot","name":"a.png"}},{{"action":"download","url":"https://x.test/","name":"a.png"}}]}}"#
            ),
            Err("steps[2].name: steps[1] already produces the artifact `a.png`"),
        );
        check(
            &format!(
                r#"{{"engine":"browser","steps":[{nav},{{"action":"screenshot"}},{{"action":"save_html","name":"step-1-screenshot.png"}}]}}"#
            ),
            Err("steps[2].name: steps[1] already produces the artifact `step-1-screenshot.png`"),
        );
    }

    #[test]
    fn engines_read_and_write_their_wire_names() {
        for engine in [Engine::Http, Engine::Browser, Engine::Auto] {
            assert_eq!(Engine::parse(engine.as_str()), Some(engine));
            let json = serde_json::to_string(&engine).unwrap();
            assert_eq!(json, format!("\"{}\"", engine.as_str()));
        }
        for engine in RunEngine::ALL {
            assert_eq!(RunEngine::parse(engine.as_str()), Some(engine));
            let json = serde_json::to_string(&engine).unwrap();
            assert_eq!(json, format!("\"{}\"", engine.as_str()));
        }
        assert_eq!(Engine::parse("chromium"), None);
        assert_eq!(Engine::Http.runs_on(), Some(RunEngine::Http));
        assert_eq!(Engine::Browser.runs_on(), Some(RunEngine::Browser));
        assert_eq!(Engine::Auto.runs_on(), None);
        assert!(!Engine::Http.supports(Capability::Browser));
        assert!(Engine::Auto.supports(Capability::Browser));
    }

    #[test]
    fn every_step_says_what_it_needs() {
        let check = |step: &str, expected: Capability| {
            let step: Step = serde_json::from_str(step).unwrap();
            assert_eq!(step.requires(), expected, "{step:?}");
        };
        check(
            r#"{"action":"navigate","url":"https://x.test/"}"#,
            Capability::Fetch,
        );
        check(
            r#"{"action":"capture_network","url_pattern":"x"}"#,
            Capability::Fetch,
        );
        check(
            r#"{"action":"download","url":"https://x.test/"}"#,
            Capability::Fetch,
        );
        check(
            r#"{"action":"download","selector":"a"}"#,
            Capability::ReadPage,
        );
        check(
            r#"{"action":"extract","fields":{"a":{"selector":"a"}}}"#,
            Capability::ReadPage,
        );
        check(r#"{"action":"assert","status":200}"#, Capability::ReadPage);
        check(r#"{"action":"save_html"}"#, Capability::ReadPage);
        check(
            r#"{"action":"assert","no_console_errors":true}"#,
            Capability::Browser,
        );
        check(
            r#"{"action":"evaluate","expression":"1","field":"x"}"#,
            Capability::Browser,
        );
        check(r#"{"action":"wait_for","delay_ms":1}"#, Capability::Browser);
    }

    #[test]
    fn todays_jobs_still_parse_the_same() {
        let old = r#"{"steps":[{"action":"navigate","url":"https://x.test/","accept_error_status":true},
            {"action":"extract","fields":{"t":{"selector":"h1"},"l":{"selector":"a","attribute":"href","all":true}}},
            {"action":"assert","status":200,"text":"x","selector":"h1"}]}"#;
        let job = parse(old).unwrap();
        job.validate(&Limits::default()).unwrap();
        let written = serde_json::to_string(&job.steps).unwrap();
        assert_eq!(
            written,
            r#"[{"action":"navigate","url":"https://x.test/","accept_error_status":true},{"action":"extract","fields":{"l":{"selector":"a","attribute":"href","all":true},"t":{"selector":"h1"}}},{"action":"assert","status":200,"text":"x","selector":"h1"}]"#
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
