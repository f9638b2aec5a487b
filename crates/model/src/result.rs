//! What running a job produced: a result on success, an error on failure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ArtifactRef, RunEngine};

/// One extracted value: plain JSON, read as the first of these that fits
/// (so a value read back is the value written):
///
/// - a string, or `null` when nothing matched;
/// - an array of strings, including the empty array (a field with `all`,
///   or `items` that matched nothing);
/// - a non-empty array of objects (`items` records, or records from a JSON
///   source), each member itself an extracted value;
/// - any other JSON (numbers, booleans, objects, mixed arrays), from a JSON
///   source or `evaluate`.
//
// The variants are those four views, in that order. Build values with
// `ExtractedValue::records` and `ExtractedValue::from_json`, which keep the
// canonical form the order implies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, from = "serde_json::Value")]
pub enum ExtractedValue {
    One(Option<String>),
    List(Vec<String>),
    Records(Vec<BTreeMap<String, ExtractedValue>>),
    Json(serde_json::Value),
}

// Written by hand: the four views overlap (any JSON is "other JSON"), so
// the document says `anyOf` where a derived schema would say `oneOf`.
impl utoipa::PartialSchema for ExtractedValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType, Type,
        };
        use utoipa::openapi::Ref;
        let text = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some("Text, or `null` when nothing matched."));
        let list = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("Every match of a field with `all`."));
        let records = ArrayBuilder::new()
            .min_items(Some(1))
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(Ref::from_schema_name("ExtractedValue"))),
            )
            .description(Some("Records, from `items` or a JSON source."));
        let other = ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some("Any other JSON, from a JSON source or `evaluate`."));
        AnyOfBuilder::new()
            .item(text)
            .item(list)
            .item(records)
            .item(other)
            .description(Some(
                "One extracted value: plain JSON, read as the first of these views that \
                 fits, so a value read back is the value written. No records is the empty \
                 array.",
            ))
            .into()
    }
}

impl ToSchema for ExtractedValue {}

impl ExtractedValue {
    /// A list of records; no records is the empty [`List`](Self::List)
    /// (the wire cannot tell an empty list of records from an empty list).
    pub fn records(records: Vec<BTreeMap<String, ExtractedValue>>) -> Self {
        if records.is_empty() {
            Self::List(Vec::new())
        } else {
            Self::Records(records)
        }
    }

    /// The canonical view of a JSON value.
    pub fn from_json(value: serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::One(None),
            Value::String(text) => Self::One(Some(text)),
            Value::Array(items) if items.iter().all(Value::is_string) => Self::List(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(text) => text,
                        _ => unreachable!("every item is a string"),
                    })
                    .collect(),
            ),
            Value::Array(items) if items.iter().all(Value::is_object) => Self::Records(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::Object(members) => members
                            .into_iter()
                            .map(|(name, value)| (name, Self::from_json(value)))
                            .collect(),
                        _ => unreachable!("every item is an object"),
                    })
                    .collect(),
            ),
            other => Self::Json(other),
        }
    }
}

impl From<serde_json::Value> for ExtractedValue {
    fn from(value: serde_json::Value) -> Self {
        Self::from_json(value)
    }
}

/// Where the time of a run went, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
// Not utoipa's `int64` for a u64 (nor `int32` for a u32, below): the
// document would refuse values the API accepts.
pub struct Timings {
    #[schema(format = "uint64")]
    pub total_ms: u64,
    /// Network time of all `navigate` and `download` steps (request to
    /// last body byte).
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
    /// The engine that ran this attempt.
    #[serde(default)]
    pub engine: RunEngine,
    /// Why this engine ran it, when the job asked for `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_reason: Option<String>,
    /// Every artifact the run kept (screenshots, downloads, network
    /// captures, HTML), with its size and SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactRef>,
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
    /// A stable code for failures a script may want to tell apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<JobErrorCode>,
}

/// Stable codes of failures that scripts and dashboards tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobErrorCode {
    /// The SSRF guard refused a target (the host is not public or does not
    /// resolve; the message reads the same either way).
    TargetBlocked,
    /// The site's robots.txt disallows the page for Accord's user agent,
    /// or could not be fetched (then nothing is fetched until it can).
    RobotsDisallowed,
    /// A domain policy of the job's workspace refuses a host it reached
    /// (a redirect included), or the engine or a step on it.
    PolicyDenied,
    /// The host's circuit breaker is open after repeated failures and its
    /// domain policy says `"on_open_breaker": "fail"`: the message names the
    /// host and when it will be probed again.
    DomainUnavailable,
}

impl JobErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TargetBlocked => "target_blocked",
            Self::RobotsDisallowed => "robots_disallowed",
            Self::PolicyDenied => "policy_denied",
            Self::DomainUnavailable => "domain_unavailable",
        }
    }
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
            code: None,
        }
    }

    pub fn at_step(mut self, step: usize) -> Self {
        self.step = Some(step as u32);
        self
    }

    pub fn with_code(mut self, code: JobErrorCode) -> Self {
        self.code = Some(code);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a value and reads it back: the same value, and the JSON shape
    /// the variant promises.
    fn check(value: ExtractedValue, json: &str) {
        let written = serde_json::to_string(&value).unwrap();
        assert_eq!(written, json);
        let read: ExtractedValue = serde_json::from_str(&written).unwrap();
        assert_eq!(read, value, "{json}");
    }

    #[test]
    fn extracted_values_round_trip() {
        let one = |s: &str| ExtractedValue::One(Some(s.to_owned()));
        let list =
            |items: &[&str]| ExtractedValue::List(items.iter().map(|s| (*s).to_owned()).collect());
        check(one("a"), r#""a""#);
        check(ExtractedValue::One(None), "null");
        check(list(&["a", "b"]), r#"["a","b"]"#);
        check(list(&[]), "[]");
        check(ExtractedValue::records(Vec::new()), "[]");
        let record = BTreeMap::from([
            ("title".to_owned(), one("Engineer")),
            ("tags".to_owned(), list(&["rust"])),
            (
                "salary".to_owned(),
                ExtractedValue::Json(serde_json::json!(100)),
            ),
            ("missing".to_owned(), ExtractedValue::One(None)),
        ]);
        check(
            ExtractedValue::records(vec![record.clone(), BTreeMap::new()]),
            r#"[{"missing":null,"salary":100,"tags":["rust"],"title":"Engineer"},{}]"#,
        );
        check(ExtractedValue::Json(serde_json::json!(1.5)), "1.5");
        check(ExtractedValue::Json(serde_json::json!(true)), "true");
        check(
            ExtractedValue::Json(serde_json::json!({"a": "x"})),
            r#"{"a":"x"}"#,
        );
        check(
            ExtractedValue::Json(serde_json::json!(["a", 1])),
            r#"["a",1]"#,
        );
        // JSON from a page or a script takes the canonical view.
        assert_eq!(ExtractedValue::from_json(serde_json::json!("a")), one("a"));
        assert_eq!(ExtractedValue::from_json(serde_json::json!([])), list(&[]));
        assert_eq!(
            ExtractedValue::from_json(serde_json::json!([{"title": "Engineer"}])),
            ExtractedValue::Records(vec![BTreeMap::from([(
                "title".to_owned(),
                one("Engineer")
            )])])
        );
    }

    #[test]
    fn results_written_before_engines_were_recorded_still_read() {
        let old = r#"{"extracted":{"h1":"x"},"status":200,"final_url":"http://x.test/",
            "timings":{"total_ms":1,"fetch_ms":1,"process_ms":0,"steps_ms":[1]}}"#;
        let result: JobResult = serde_json::from_str(old).unwrap();
        assert_eq!(result.engine, RunEngine::Http);
        assert_eq!(result.engine_reason, None);
        assert!(result.artifacts.is_empty());
    }
}
