//! A standalone JSON Schema (draft 2020-12) from a utoipa `ToSchema` type:
//! the type's schema at the root and every type it refers to under
//! `$defs`, with the references rewritten to point there.
//!
//! utoipa writes schemas for an OpenAPI document, where shared types live
//! under `#/components/schemas/`; a workflow's input schema is published
//! on its own, so it must carry its definitions with it.

use serde_json::{Map, Value};
use utoipa::ToSchema;

const COMPONENTS: &str = "#/components/schemas/";
const DEFS: &str = "#/$defs/";

/// The JSON Schema of `T`, self-contained.
pub fn json_schema<T: ToSchema>() -> Value {
    let mut referenced = Vec::new();
    T::schemas(&mut referenced);
    let mut defs = Map::new();
    for (name, schema) in referenced {
        defs.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    let mut root = match serde_json::to_value(T::schema()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut schema = Map::new();
    schema.insert(
        "$schema".to_owned(),
        Value::from("https://json-schema.org/draft/2020-12/schema"),
    );
    schema.insert("title".to_owned(), Value::from(T::name().into_owned()));
    schema.append(&mut root);
    if !defs.is_empty() {
        schema.insert("$defs".to_owned(), Value::Object(defs));
    }
    let mut schema = Value::Object(schema);
    rewrite_refs(&mut schema);
    schema
}

/// Points every `$ref` at `$defs` instead of the OpenAPI components.
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix(COMPONENTS) {
                            *target = format!("{DEFS}{name}");
                        }
                    }
                    _ => rewrite_refs(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}
