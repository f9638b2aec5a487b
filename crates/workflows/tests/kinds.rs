//! The public face the API uses: workflow names, input parsing with
//! errors that name the field, and each input's JSON Schema.

use accord_workflows::{WorkflowInfo, WorkflowInput, WorkflowKind};
use serde_json::{json, Value};

#[test]
fn names_round_trip() {
    for (kind, name) in [
        (WorkflowKind::PageChange, "page_change"),
        (WorkflowKind::ExtractItems, "extract_items"),
        (WorkflowKind::SmokeCheck, "smoke_check"),
    ] {
        assert_eq!(kind.as_str(), name);
        assert_eq!(WorkflowKind::parse(name), Some(kind));
        assert_eq!(name.parse::<WorkflowKind>(), Ok(kind));
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
        assert!(!kind.description().is_empty());
    }
    assert_eq!(WorkflowKind::parse("PageChange"), None);
    assert_eq!(
        "price_watch".parse::<WorkflowKind>().unwrap_err().to_string(),
        "find workflow \"price_watch\": the workflows are page_change, extract_items and smoke_check"
    );
}

/// Parses `json` as `kind`'s input: `Ok` or the error's (field, message
/// fragment).
fn check(kind: WorkflowKind, json: Value, expected: Result<(), (&str, &str)>) {
    match (WorkflowInput::parse(kind, &json), expected) {
        (Ok(input), Ok(())) => {
            assert_eq!(input.kind(), kind);
            // What is stored reads back the same.
            assert_eq!(WorkflowInput::parse(kind, &input.to_json()), Ok(input));
        }
        (Err(err), Err((field, message))) => {
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(err.message.contains(message), "{json}: {err}");
        }
        (got, want) => panic!("{kind} {json}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn inputs_parse_and_errors_name_the_field() {
    use WorkflowKind::{ExtractItems, PageChange, SmokeCheck};
    check(PageChange, json!({}), Ok(()));
    check(
        PageChange,
        json!({"ignore": [r"\d+ views"], "values": [{"name": "price", "selector": ".price", "condition": {"below": 9.5}}]}),
        Ok(()),
    );
    check(
        PageChange,
        json!({"ignore": ["(?P<x"]}),
        Err(("ignore[0]", "invalid regex")),
    );
    check(
        PageChange,
        json!({"values": [{"name": "p", "selector": "p", "condition": {"under": 3}}]}),
        Err(("values[0].condition", "unknown variant `under`")),
    );
    check(
        PageChange,
        json!({"visual": {"threshold": -0.1}}),
        Err(("visual.threshold", "between 0 and 1")),
    );
    check(
        ExtractItems,
        json!({"item_selector": "li", "fields": {"title": {}}, "key": {"field": "title"}}),
        Ok(()),
    );
    check(
        ExtractItems,
        json!({"fields": {"title": {}}, "key": {"field": "title"}}),
        Err(("input", "missing field `item_selector`")),
    );
    check(
        ExtractItems,
        json!({"item_selector": "li", "fields": {"title": {"selector": "h3", "attr": "x"}}, "key": {"field": "title"}}),
        Err(("fields.title.attr", "unknown field `attr`")),
    );
    check(SmokeCheck, json!({}), Ok(()));
    check(
        SmokeCheck,
        json!({"required_texts": ["Add to cart"], "max_load_ms": 1500}),
        Ok(()),
    );
    check(
        SmokeCheck,
        json!({"max_load_ms": -1}),
        Err(("max_load_ms", "invalid value")),
    );
    check(SmokeCheck, json!(null), Err(("input", "invalid type")));
}

/// Every `$ref` in `schema` points into its own `$defs`.
fn check_refs(schema: &Value, defs: &serde_json::Map<String, Value>) {
    match schema {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    let target = child.as_str().unwrap();
                    let name = target
                        .strip_prefix("#/$defs/")
                        .unwrap_or_else(|| panic!("{target}"));
                    assert!(defs.contains_key(name), "{target} is not defined");
                } else {
                    check_refs(child, defs);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| check_refs(i, defs)),
        _ => {}
    }
}

#[test]
fn input_schemas_are_self_contained() {
    for kind in WorkflowKind::ALL {
        let schema = kind.input_schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["type"], "object", "{kind}");
        let empty = serde_json::Map::new();
        let defs = schema["$defs"].as_object().unwrap_or(&empty);
        check_refs(&schema, defs);
    }
}

#[test]
fn page_change_schema() {
    insta::assert_json_snapshot!(WorkflowKind::PageChange.input_schema());
}

#[test]
fn extract_items_schema() {
    insta::assert_json_snapshot!(WorkflowKind::ExtractItems.input_schema());
}

#[test]
fn smoke_check_schema() {
    insta::assert_json_snapshot!(WorkflowKind::SmokeCheck.input_schema());
}

/// The stored types publish schemas too (the API lists runs and
/// snapshots); every reference in them resolves.
#[test]
fn outcome_and_snapshot_schemas_are_self_contained() {
    for schema in [
        accord_workflows::json_schema::<accord_workflows::RunOutcome>(),
        accord_workflows::json_schema::<accord_workflows::Snapshot>(),
    ] {
        let defs = schema["$defs"].as_object().expect("$defs");
        check_refs(&schema, defs);
        assert!(
            defs.contains_key("Summary") || defs.contains_key("PageSnapshot"),
            "{schema}"
        );
    }
}
