//! From a captured body to the text that is compared: read as HTML (parts
//! chosen by selector, elements removed by selector), as canonical JSON or
//! as plain text; then ignore patterns removed from each line, blank lines
//! dropped, and the lines sorted if asked.
//!
//! HTML and text lines have their white space collapsed, so a change of
//! spacing is no change. Canonical JSON keeps its indentation (it is ours,
//! and it shows nesting in a diff): keys sorted, pretty-printed, one value
//! per line.

use serde_json::{Map, Value};

use super::input::{BodyFormat, PageChangeInput};
use crate::html::{Page, PageTooComplex};
use crate::text;

/// A body read in the format it is compared as.
#[derive(Debug)]
pub(crate) enum Body {
    Html(Page),
    Json(Value),
    Text,
}

impl Body {
    pub(crate) fn format(&self) -> BodyFormat {
        match self {
            Self::Html(_) => BodyFormat::Html,
            Self::Json(_) => BodyFormat::Json,
            Self::Text => BodyFormat::Text,
        }
    }
}

/// Reads `body` as `requested`, or, for `auto`, as its content type says
/// (then as its first character suggests). A body that is not the JSON it
/// claims to be is read as text.
pub(crate) fn read_body(
    requested: BodyFormat,
    content_type: Option<&str>,
    body: &str,
) -> Result<Body, PageTooComplex> {
    let format = match requested {
        BodyFormat::Auto => detect(content_type, body),
        other => other,
    };
    Ok(match format {
        BodyFormat::Json => match serde_json::from_str(body) {
            Ok(value) => Body::Json(value),
            Err(_) => Body::Text,
        },
        BodyFormat::Text => Body::Text,
        BodyFormat::Html | BodyFormat::Auto => Body::Html(Page::parse(body)?),
    })
}

fn detect(content_type: Option<&str>, body: &str) -> BodyFormat {
    if let Some(content_type) = content_type {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media == "application/json" || media.ends_with("+json") {
            return BodyFormat::Json;
        }
        if media.contains("html") {
            return BodyFormat::Html;
        }
        if media.starts_with("text/") {
            return BodyFormat::Text;
        }
    }
    match body.trim_start().chars().next() {
        Some('{' | '[') => BodyFormat::Json,
        _ => BodyFormat::Html,
    }
}

/// The text compared for `body` under `input`'s rules, one line per `\n`
/// (each line ends with one), and the selectors that matched nothing.
pub(crate) fn normalize(
    input: &PageChangeInput,
    body: &mut Body,
    raw: &str,
) -> (String, Vec<String>) {
    let mut unmatched = Vec::new();
    let lines = match body {
        Body::Html(page) => {
            page.remove(&input.remove);
            let text = if input.selectors.is_empty() {
                page.text()
            } else {
                let mut parts = Vec::new();
                for selector in &input.selectors {
                    let texts = page.texts(selector);
                    if texts.is_empty() {
                        unmatched.push(selector.as_str().to_owned());
                    }
                    parts.extend(texts);
                }
                parts.join("\n")
            };
            clean(text::lines(&text), input, true)
        }
        Body::Json(value) => {
            let pretty = serde_json::to_string_pretty(&canonical(value)).unwrap_or_default();
            let lines = pretty.lines().map(|l| l.trim_end().to_owned()).collect();
            clean(lines, input, false)
        }
        Body::Text => clean(text::lines(raw), input, true),
    };
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    (out, unmatched)
}

/// Removes ignored matches, drops lines left blank, sorts if asked.
fn clean(mut lines: Vec<String>, input: &PageChangeInput, collapse: bool) -> Vec<String> {
    if !input.ignore.is_empty() {
        lines = lines
            .into_iter()
            .filter_map(|line| {
                let mut line = line;
                for pattern in &input.ignore {
                    if let std::borrow::Cow::Owned(replaced) =
                        pattern.regex().replace_all(&line, "")
                    {
                        line = replaced;
                    }
                }
                let line = if collapse {
                    text::collapse(&line)
                } else {
                    line.trim_end().to_owned()
                };
                (!line.trim().is_empty()).then_some(line)
            })
            .collect();
    }
    if input.sort_lines {
        lines.sort();
    }
    lines
}

/// `value` with every object's keys in sorted order, whatever the map type
/// of `serde_json` (ordered by insertion when its `preserve_order` feature
/// is on somewhere in the build).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = Map::new();
            for key in keys {
                sorted.insert(key.clone(), canonical(&map[key]));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}
