//! What an `extract` step reads: one [`FieldSpec`] per named field, each
//! with exactly one source (a CSS selector, nested `items`, a JSON Pointer or
//! a JSONPath query), and the JSON query types, checked and parsed when they
//! enter the system.
//!
//! The wire shape is flat (every source is an optional member) so that a
//! submission's errors can name the exact member; [`FieldSpec::source`] is
//! the one place that turns it into the typed [`FieldSource`] the engines
//! run, and the one place that says what combination is valid, so
//! validation and engines cannot disagree.
//!
//! Deliberately does not read pages or JSON bodies (the engines do).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::CssSelector;

/// Longest JSON Pointer or JSONPath query, in bytes.
pub const MAX_JSON_QUERY_BYTES: usize = 1_024;
/// Deepest nesting of brackets and parentheses a JSONPath query may have.
pub const MAX_JSON_QUERY_NESTING: usize = 16;

/// How to pull one field out of the current page.
///
/// Exactly one source: `selector` (CSS, optionally with `attribute` or
/// `html`, and `all`), `items` (a list of records), `json_pointer` or
/// `jsonpath` (over a JSON response body, optionally with `all`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// A CSS selector; the field reads the first matching element (or every
    /// one, with `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<CssSelector>,
    /// With `selector`: read this attribute instead of the element's text
    /// (at most 128 bytes). Elements without it are left out of lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub attribute: Option<String>,
    /// With `selector`: read the element's inner HTML instead of its text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub html: bool,
    /// With `selector` or `jsonpath`: return every match as a list instead
    /// of the first one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// A list of records: one per element matching `items.selector`, each
    /// with the `items.fields` read inside that element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemsSpec>,
    /// An RFC 6901 JSON Pointer into the response body, parsed as JSON
    /// (e.g. `/data/0/title`); the value found, or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<JsonPointer>,
    /// An RFC 9535 JSONPath query over the response body, parsed as JSON
    /// (e.g. `$.jobs[*].title`); the first match, or all of them with `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonpath: Option<JsonPathQuery>,
}

/// Records read from a list of elements (job postings, products, rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsSpec {
    /// Each element matching this selector is one record.
    pub selector: CssSelector,
    /// The fields of each record, read inside its element.
    pub fields: BTreeMap<String, ItemField>,
}

/// One field of a record: CSS only, relative to the record's element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemField {
    /// A CSS selector matched inside the record's element; without it the
    /// field reads the record's element itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<CssSelector>,
    /// Read this attribute instead of the text (at most 128 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub attribute: Option<String>,
    /// Read the inner HTML instead of the text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub html: bool,
    /// Every match as a list instead of the first one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// What to read from a matched element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAs<'a> {
    /// Its text, as a user reads it (whitespace collapsed).
    Text,
    /// Its inner HTML.
    Html,
    /// The value of this attribute.
    Attribute(&'a str),
}

/// Where a field's value comes from: the typed view of a [`FieldSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldSource<'a> {
    Css {
        selector: &'a CssSelector,
        read: ReadAs<'a>,
        all: bool,
    },
    Items(&'a ItemsSpec),
    JsonPointer(&'a JsonPointer),
    JsonPath {
        query: &'a JsonPathQuery,
        all: bool,
    },
}

/// A field whose members do not make sense together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{member}: {message}")]
pub struct FieldError {
    /// The offending member, relative to the field (e.g. `attribute`), or
    /// empty for the field as a whole.
    pub member: String,
    pub message: String,
}

fn field_error(member: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        member: member.into(),
        message: message.into(),
    }
}

impl FieldSpec {
    /// A CSS field reading the text of the first match.
    pub fn text(selector: CssSelector) -> Self {
        Self {
            selector: Some(selector),
            ..Self::default()
        }
    }

    /// The field's one source, or why its members do not make one.
    pub fn source(&self) -> Result<FieldSource<'_>, FieldError> {
        let given: Vec<&str> = [
            ("selector", self.selector.is_some()),
            ("items", self.items.is_some()),
            ("json_pointer", self.json_pointer.is_some()),
            ("jsonpath", self.jsonpath.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        let css_only = |member: &str| {
            field_error(
                member,
                format!("`{member}` only applies to a `selector` field"),
            )
        };
        match given.as_slice() {
            [] => Err(field_error(
                "",
                "a field needs one source: `selector`, `items`, `json_pointer` or `jsonpath`",
            )),
            ["selector"] => {
                let selector = self.selector.as_ref().expect("checked above");
                Ok(FieldSource::Css {
                    selector,
                    read: read_as(self.attribute.as_deref(), self.html)?,
                    all: self.all,
                })
            }
            [one] => {
                if self.attribute.is_some() {
                    return Err(css_only("attribute"));
                }
                if self.html {
                    return Err(css_only("html"));
                }
                match *one {
                    "items" => {
                        if self.all {
                            return Err(field_error(
                                "all",
                                "`items` always returns every record; drop `all`",
                            ));
                        }
                        Ok(FieldSource::Items(self.items.as_ref().expect("checked")))
                    }
                    "json_pointer" => {
                        if self.all {
                            return Err(field_error(
                                "all",
                                "a JSON Pointer names one value; use `jsonpath` for several",
                            ));
                        }
                        Ok(FieldSource::JsonPointer(
                            self.json_pointer.as_ref().expect("checked"),
                        ))
                    }
                    _ => Ok(FieldSource::JsonPath {
                        query: self.jsonpath.as_ref().expect("checked"),
                        all: self.all,
                    }),
                }
            }
            many => Err(field_error(
                "",
                format!(
                    "a field has exactly one source, found {}",
                    many.iter()
                        .map(|name| format!("`{name}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            )),
        }
    }
}

impl ItemField {
    /// What to read from the matched element (checked like a field's).
    pub fn read(&self) -> Result<ReadAs<'_>, FieldError> {
        read_as(self.attribute.as_deref(), self.html)
    }
}

fn read_as(attribute: Option<&str>, html: bool) -> Result<ReadAs<'_>, FieldError> {
    match (attribute, html) {
        (Some(_), true) => Err(field_error(
            "html",
            "`html` and `attribute` cannot be used together",
        )),
        (Some(""), false) => Err(field_error("attribute", "an attribute name is not empty")),
        (Some(name), false) => Ok(ReadAs::Attribute(name)),
        (None, true) => Ok(ReadAs::Html),
        (None, false) => Ok(ReadAs::Text),
    }
}

/// An RFC 6901 JSON Pointer: empty (the whole document) or `/`-separated
/// reference tokens, `~0` and `~1` escaping `~` and `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JsonPointer(String);

/// Why a string is not a JSON Pointer or a JSONPath query we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonQueryError {
    #[error("it is {len} bytes long; at most {MAX_JSON_QUERY_BYTES} bytes are allowed")]
    TooLong { len: usize },
    #[error("it contains a NUL character")]
    Nul,
    #[error("a JSON Pointer is empty or starts with `/`")]
    PointerStart,
    #[error("`~` in a JSON Pointer must be followed by `0` or `1`")]
    PointerEscape,
    #[error("it nests brackets more than {MAX_JSON_QUERY_NESTING} deep")]
    TooDeep,
    #[error("{0}")]
    Syntax(String),
}

impl JsonPointer {
    pub fn parse(source: &str) -> Result<Self, JsonQueryError> {
        if source.len() > MAX_JSON_QUERY_BYTES {
            return Err(JsonQueryError::TooLong { len: source.len() });
        }
        if source.contains('\0') {
            return Err(JsonQueryError::Nul);
        }
        if !(source.is_empty() || source.starts_with('/')) {
            return Err(JsonQueryError::PointerStart);
        }
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(JsonQueryError::PointerEscape);
            }
        }
        Ok(Self(source.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JsonPointer {
    type Error = JsonQueryError;
    fn try_from(source: String) -> Result<Self, Self::Error> {
        Self::parse(&source).map_err(|err| match err {
            JsonQueryError::Syntax(_) => err,
            err => JsonQueryError::Syntax(format!("invalid JSON Pointer {source:?}: {err}")),
        })
    }
}

impl From<JsonPointer> for String {
    fn from(pointer: JsonPointer) -> Self {
        pointer.0
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for JsonPointer {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(MAX_JSON_QUERY_BYTES))
            .pattern(Some("^(/([^~]|~[01])*)*$"))
            .description(Some(format!(
                "An RFC 6901 JSON Pointer, at most {MAX_JSON_QUERY_BYTES} bytes."
            )))
            .examples(["/data/0/title"])
            .into()
    }
}

impl ToSchema for JsonPointer {}

/// An RFC 9535 JSONPath query within Accord's bounds, with its parsed form.
///
/// The query's length and bracket nesting are checked by a flat scan before
/// the parser (which recurses on nesting) sees it. Regular-expression
/// functions (`match`, `search`) are not available: they would compile a
/// pattern from the job on every node.
#[derive(Clone)]
pub struct JsonPathQuery {
    source: String,
    parsed: Arc<serde_json_path::JsonPath>,
}

impl JsonPathQuery {
    pub fn parse(source: &str) -> Result<Self, JsonQueryError> {
        if source.len() > MAX_JSON_QUERY_BYTES {
            return Err(JsonQueryError::TooLong { len: source.len() });
        }
        if source.contains('\0') {
            return Err(JsonQueryError::Nul);
        }
        if nesting(source) > MAX_JSON_QUERY_NESTING {
            return Err(JsonQueryError::TooDeep);
        }
        let parsed = serde_json_path::JsonPath::parse(source)
            .map_err(|err| JsonQueryError::Syntax(first_line(&err.to_string())))?;
        Ok(Self {
            source: source.to_owned(),
            parsed: Arc::new(parsed),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The parsed form, for querying.
    pub fn compiled(&self) -> &serde_json_path::JsonPath {
        &self.parsed
    }
}

/// Deepest bracket nesting outside string literals.
fn nesting(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                chars.next();
            }
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')' | ']') => depth = depth.saturating_sub(1),
            (None, _) => {}
        }
    }
    deepest
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

impl fmt::Debug for JsonPathQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonPathQuery").field(&self.source).finish()
    }
}

impl fmt::Display for JsonPathQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for JsonPathQuery {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for JsonPathQuery {}

impl Serialize for JsonPathQuery {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for JsonPathQuery {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::parse(&source).map_err(|err| {
            let mut shown: String = source.chars().take(40).collect();
            if shown.len() < source.len() {
                shown.push_str("...");
            }
            serde::de::Error::custom(format_args!("invalid JSONPath query {shown:?}: {err}"))
        })
    }
}

impl utoipa::PartialSchema for JsonPathQuery {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_JSON_QUERY_BYTES))
            .description(Some(format!(
                "An RFC 9535 JSONPath query: at most {MAX_JSON_QUERY_BYTES} bytes, brackets \
                 nested at most {MAX_JSON_QUERY_NESTING} deep, no regular-expression functions."
            )))
            .examples(["$.jobs[*].title"])
            .into()
    }
}

impl ToSchema for JsonPathQuery {}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expected: Result<&str, &str>) {
        let got = serde_json::from_str::<FieldSpec>(json)
            .map_err(|err| err.to_string())
            .and_then(|field| {
                field
                    .source()
                    .map(|source| format!("{source:?}"))
                    .map_err(|err| err.to_string())
            });
        match (&got, expected) {
            (Ok(got), Ok(want)) => assert!(got.starts_with(want), "{json}: got {got}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{json}: got {got:?}"),
            _ => panic!("{json}: got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn a_field_has_exactly_one_source() {
        check(r#"{"selector":"h1"}"#, Ok("Css"));
        check(
            r#"{"selector":"a","attribute":"href","all":true}"#,
            Ok("Css"),
        );
        check(r#"{"selector":"div","html":true}"#, Ok("Css"));
        check(
            r#"{"items":{"selector":"li","fields":{"t":{"selector":"a"},"id":{"attribute":"data-id"}}}}"#,
            Ok("Items"),
        );
        check(r#"{"json_pointer":"/a/0"}"#, Ok("JsonPointer"));
        check(r#"{"json_pointer":""}"#, Ok("JsonPointer"));
        check(r#"{"jsonpath":"$.a[*]","all":true}"#, Ok("JsonPath"));
        check("{}", Err(": a field needs one source"));
        check(
            r#"{"selector":"h1","jsonpath":"$.a"}"#,
            Err("exactly one source, found `selector` and `jsonpath`"),
        );
        check(
            r#"{"selector":"a","attribute":"href","html":true}"#,
            Err("html: `html` and `attribute` cannot be used together"),
        );
        check(
            r#"{"selector":"a","attribute":""}"#,
            Err("attribute: an attribute name is not empty"),
        );
        check(
            r#"{"json_pointer":"/a","attribute":"x"}"#,
            Err("attribute: `attribute` only applies to a `selector` field"),
        );
        check(
            r#"{"jsonpath":"$.a","html":true}"#,
            Err("html: `html` only applies"),
        );
        check(
            r#"{"json_pointer":"/a","all":true}"#,
            Err("all: a JSON Pointer names one value"),
        );
        check(
            r#"{"items":{"selector":"li","fields":{}},"all":true}"#,
            Err("all: `items` always returns every record"),
        );
        check(
            r#"{"items":{"selector":"li","fields":{"x":{"items":{}}}}}"#,
            Err("unknown field `items`"),
        );
        check(r#"{"xpath":"//a"}"#, Err("unknown field `xpath`"));
    }

    #[test]
    fn json_pointers_follow_rfc_6901() {
        let check = |source: &str, ok: bool| {
            assert_eq!(JsonPointer::parse(source).is_ok(), ok, "{source:?}");
        };
        check("", true);
        check("/", true);
        check("/a/0/b", true);
        check("/a~1b/~0c", true);
        check("a", false);
        check("/a~", false);
        check("/a~2", false);
        check("/a\0", false);
        check(&format!("/{}", "a".repeat(MAX_JSON_QUERY_BYTES)), false);
        let err = serde_json::from_str::<JsonPointer>(r#""a/b""#).unwrap_err();
        assert!(
            err.to_string().starts_with(
                r#"invalid JSON Pointer "a/b": a JSON Pointer is empty or starts with `/`"#
            ),
            "{err}"
        );
    }

    #[test]
    fn jsonpath_queries_are_bounded() {
        let check = |source: &str, expected: Result<(), &str>| {
            let got = JsonPathQuery::parse(source)
                .map(|_| ())
                .map_err(|err| err.to_string());
            match (&got, expected) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{source:?}: {got}"),
                _ => panic!("{source:?}: got {got:?}, want {expected:?}"),
            }
        };
        check("$.jobs[*].title", Ok(()));
        check("$..price", Ok(()));
        check("$.a[?@.price < 10]", Ok(()));
        check("$['a[[[[[[[[[[[[[[[[[[[']", Ok(()));
        check("$.a[", Err(""));
        check("a.b", Err(""));
        check("$.a[?match(@.b, 'x.*')]", Err(""));
        check(
            &format!("$.a{}", "[0]".repeat(400)),
            Err("at most 1024 bytes"),
        );
        let deep = format!("$[?{}@.a{}]", "(".repeat(20), ")".repeat(20));
        check(&deep, Err("more than 16 deep"));
        check("$.a\0", Err("NUL"));
        let err = serde_json::from_str::<JsonPathQuery>(r#""$.a[""#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"invalid JSONPath query "$.a[": "#),
            "{err}"
        );
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
