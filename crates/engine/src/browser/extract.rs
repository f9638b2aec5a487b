//! `extract` in the browser: every field of a step in one `evaluate` round
//! trip (`extract.js`), nested `items` included; JSON sources (`json_pointer`,
//! `jsonpath`) read the page's body as JSON, sent back by the same call.

use std::collections::BTreeMap;

use accord_model::{ExtractedValue, FieldSource, FieldSpec, ItemField, ReadAs};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::BrowserFailure;
use super::page::{Interrupts, PageSession};

const EXTRACT_JS: &str = include_str!("extract.js");

/// The step's fields as `extract.js` takes them, and which of them read the
/// body as JSON (done here, after the call).
#[derive(Debug)]
struct Plan<'a> {
    css: Vec<(String, Value)>,
    json: Vec<(&'a str, FieldSource<'a>)>,
}

fn plan(fields: &BTreeMap<String, FieldSpec>) -> Result<Plan<'_>, BrowserFailure> {
    let mut plan = Plan {
        css: Vec::new(),
        json: Vec::new(),
    };
    for (name, field) in fields {
        // Submission checked every field; a field that does not make sense
        // here means the job was not validated.
        let source = field
            .source()
            .map_err(|err| BrowserFailure::Refused(format!("field `{name}`: {err}")))?;
        match source {
            FieldSource::Css {
                selector,
                read,
                all,
            } => plan.css.push((
                name.clone(),
                json!({ "selector": selector.as_str(), "read": read_spec(read), "all": all }),
            )),
            FieldSource::Items(items) => {
                let fields = items
                    .fields
                    .iter()
                    .map(|(name, field)| item_spec(field).map(|spec| json!([name, spec])))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| BrowserFailure::Refused(format!("field `{name}`: {err}")))?;
                plan.css.push((
                    name.clone(),
                    json!({ "items": { "selector": items.selector.as_str(), "fields": fields } }),
                ));
            }
            json_source @ (FieldSource::JsonPointer(_) | FieldSource::JsonPath { .. }) => {
                plan.json.push((name, json_source));
            }
        }
    }
    Ok(plan)
}

fn read_spec(read: ReadAs<'_>) -> Value {
    match read {
        ReadAs::Text => json!("text"),
        ReadAs::Html => json!("html"),
        ReadAs::Attribute(name) => json!(["attribute", name]),
    }
}

fn item_spec(field: &ItemField) -> Result<Value, accord_model::FieldError> {
    let mut spec = json!({ "read": read_spec(field.read()?), "all": field.all });
    if let Some(selector) = &field.selector {
        spec["selector"] = json!(selector.as_str());
    }
    Ok(spec)
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    values: BTreeMap<String, Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

/// Runs an `extract` step; `budget` is how many bytes of text the job may
/// still extract.
pub(super) async fn extract(
    session: &PageSession,
    fields: &BTreeMap<String, FieldSpec>,
    budget: usize,
    interrupts: &Interrupts,
) -> Result<BTreeMap<String, ExtractedValue>, BrowserFailure> {
    let plan = plan(fields)?;
    let spec = json!({
        "maxBytes": budget,
        "fields": plan.css.iter().map(|(name, spec)| json!([name, spec])).collect::<Vec<_>>(),
        "wantBody": !plan.json.is_empty(),
    });
    let script = format!("({EXTRACT_JS})({spec})");
    let answer: Answer = serde_json::from_value(
        session
            .evaluate_raw(&script, "extract the fields", interrupts)
            .await?,
    )
    .map_err(|err| {
        tracing::debug!(error = %err, "unexpected answer from extract.js");
        BrowserFailure::Protocol {
            action: "extract the fields",
        }
    })?;
    match answer.error.as_deref() {
        Some("selector") => {
            let name = answer.field.unwrap_or_default();
            return Err(BrowserFailure::BadSelector {
                selector: format!("(a selector of field `{name}`)"),
            });
        }
        Some("limit") => {
            return Err(BrowserFailure::TooLarge {
                what: "the extracted text".to_owned(),
                limit: budget as u64,
            })
        }
        Some(other) => {
            tracing::debug!(error = other, "extract.js reported an unknown error");
            return Err(BrowserFailure::Protocol {
                action: "extract the fields",
            });
        }
        None => {}
    }
    let mut extracted: BTreeMap<String, ExtractedValue> = answer
        .values
        .into_iter()
        .map(|(name, value)| (name, ExtractedValue::from_json(value)))
        .collect();
    if !plan.json.is_empty() {
        let body = answer.body.unwrap_or_default();
        let document: Value = serde_json::from_str(&body).map_err(|err| {
            BrowserFailure::Refused(format!(
                "the page is not JSON ({err}), so JSON fields cannot be read"
            ))
        })?;
        for (name, source) in plan.json {
            extracted.insert(name.to_owned(), json_field(&document, source));
        }
    }
    Ok(extracted)
}

/// A JSON source over a parsed body: what the pointer names (or `null`),
/// the first match of the query, or all of them.
fn json_field(document: &Value, source: FieldSource<'_>) -> ExtractedValue {
    match source {
        FieldSource::JsonPointer(pointer) => ExtractedValue::from_json(
            document
                .pointer(pointer.as_str())
                .cloned()
                .unwrap_or(Value::Null),
        ),
        FieldSource::JsonPath { query, all } => {
            let nodes = query.compiled().query(document);
            if all {
                ExtractedValue::from_json(Value::Array(nodes.all().into_iter().cloned().collect()))
            } else {
                ExtractedValue::from_json(nodes.first().cloned().unwrap_or(Value::Null))
            }
        }
        FieldSource::Css { .. } | FieldSource::Items(_) => ExtractedValue::One(None),
    }
}

/// The size of extracted text, as the job's extraction budget counts it.
pub(super) fn value_bytes(value: &ExtractedValue) -> usize {
    match value {
        ExtractedValue::One(one) => one.as_ref().map_or(0, String::len),
        ExtractedValue::List(list) => list.iter().map(String::len).sum(),
        ExtractedValue::Records(records) => records
            .iter()
            .flat_map(|record| record.values())
            .map(value_bytes)
            .sum(),
        ExtractedValue::Json(value) => value.to_string().len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> BTreeMap<String, FieldSpec> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn fields_become_one_script_spec() {
        let check = |json: &str, css: Value, json_fields: &[&str]| {
            let fields = fields(json);
            let plan = plan(&fields).unwrap();
            let got: Value = plan
                .css
                .into_iter()
                .collect::<serde_json::Map<_, _>>()
                .into();
            assert_eq!(got, css, "{json}");
            let names: Vec<&str> = plan.json.iter().map(|(name, _)| *name).collect();
            assert_eq!(names, json_fields, "{json}");
        };
        check(
            r#"{"t":{"selector":"h1"},"links":{"selector":"a","attribute":"href","all":true},"body":{"selector":"main","html":true}}"#,
            json!({
                "t": {"selector": "h1", "read": "text", "all": false},
                "links": {"selector": "a", "read": ["attribute", "href"], "all": true},
                "body": {"selector": "main", "read": "html", "all": false},
            }),
            &[],
        );
        check(
            r#"{"jobs":{"items":{"selector":"li","fields":{"title":{"selector":"a"},"id":{"attribute":"data-id"}}}},"n":{"json_pointer":"/n"}}"#,
            json!({
                "jobs": {"items": {"selector": "li", "fields": [
                    ["id", {"read": ["attribute", "data-id"], "all": false}],
                    ["title", {"selector": "a", "read": "text", "all": false}],
                ]}},
            }),
            &["n"],
        );
    }

    #[test]
    fn json_sources_read_the_body() {
        let document = json!({"total": 2, "jobs": [{"name": "a"}, {"name": "b"}]});
        let check = |json: &str, expected: ExtractedValue| {
            let fields = fields(json);
            let (_, field) = fields.iter().next().unwrap();
            assert_eq!(
                json_field(&document, field.source().unwrap()),
                expected,
                "{json}"
            );
        };
        check(
            r#"{"n":{"json_pointer":"/total"}}"#,
            ExtractedValue::Json(json!(2)),
        );
        check(
            r#"{"n":{"json_pointer":"/missing"}}"#,
            ExtractedValue::One(None),
        );
        check(
            r#"{"n":{"jsonpath":"$.jobs[*].name","all":true}}"#,
            ExtractedValue::List(vec!["a".into(), "b".into()]),
        );
        check(
            r#"{"n":{"jsonpath":"$.jobs[*].name"}}"#,
            ExtractedValue::One(Some("a".into())),
        );
    }
}
