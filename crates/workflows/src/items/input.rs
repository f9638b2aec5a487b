//! What a user asks of an `extract_items` monitor, and its checks.

use std::collections::BTreeMap;

use accord_model::{CssSelector, ValidationError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{check_field_name, check_len, check_text, check_texts, invalid};

/// Most pages followed by the next-page link.
pub const MAX_PAGES: u32 = 50;

/// How to read one field of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemField {
    /// A CSS selector inside the item; none reads the item element itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<CssSelector>,
    /// Read this attribute instead of the text (`href` for a link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
}

/// What identifies an item from one run to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ItemKey {
    /// The value of one field (a link is the usual choice).
    Field(String),
    /// A hash of these fields' values, for items without a stable id.
    Hash(Vec<String>),
}

/// Keywords matched ignoring case and spacing, in some fields or all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeywordFilter {
    /// An item matches when any keyword appears.
    #[schema(min_items = 1, max_items = 32)]
    pub keywords: Vec<String>,
    /// Fields searched; empty searches all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub fields: Vec<String>,
}

/// Following a "next page" link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// A CSS selector matching the link (`a[rel=next]`) to the next page.
    pub next_selector: CssSelector,
    /// Most pages read, the first included.
    #[schema(minimum = 1, maximum = 50)]
    pub max_pages: u32,
}

/// Input of the `extract_items` workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractItemsInput {
    /// A CSS selector matching each item (`li.job`).
    pub item_selector: CssSelector,
    /// The fields read from each item, by name.
    pub fields: BTreeMap<String, ItemField>,
    pub key: ItemKey,
    /// Keep only items matching one of these keywords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<KeywordFilter>,
    /// Drop items matching one of these keywords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<KeywordFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

impl ExtractItemsInput {
    /// Checks what serde cannot: names, references between fields, bounds.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.fields.is_empty() {
            return Err(invalid("fields", "an item needs at least one field"));
        }
        if self.fields.len() > crate::validate::MAX_LIST_LEN {
            return Err(invalid(
                "fields",
                format!(
                    "at most {} fields are allowed",
                    crate::validate::MAX_LIST_LEN
                ),
            ));
        }
        for (name, field) in &self.fields {
            check_field_name(&format!("fields.{name}"), name)?;
            if let Some(attribute) = &field.attribute {
                check_text(&format!("fields.{name}.attribute"), attribute)?;
            }
        }
        match &self.key {
            ItemKey::Field(name) => self.check_known("key.field", name)?,
            ItemKey::Hash(names) => {
                if names.is_empty() {
                    return Err(invalid("key.hash", "name at least one field to hash"));
                }
                check_len("key.hash", names)?;
                for (i, name) in names.iter().enumerate() {
                    let field = format!("key.hash[{i}]");
                    self.check_known(&field, name)?;
                    if names[..i].contains(name) {
                        return Err(invalid(field, format!("{name:?} is listed twice")));
                    }
                }
            }
        }
        for (which, filter) in [("include", &self.include), ("exclude", &self.exclude)] {
            let Some(filter) = filter else { continue };
            if filter.keywords.is_empty() {
                return Err(invalid(
                    format!("{which}.keywords"),
                    "give at least one keyword",
                ));
            }
            check_texts(&format!("{which}.keywords"), &filter.keywords)?;
            check_len(&format!("{which}.fields"), &filter.fields)?;
            for (i, name) in filter.fields.iter().enumerate() {
                self.check_known(&format!("{which}.fields[{i}]"), name)?;
            }
        }
        if let Some(pagination) = &self.pagination {
            if !(1..=MAX_PAGES).contains(&pagination.max_pages) {
                return Err(invalid(
                    "pagination.max_pages",
                    format!("must be between 1 and {MAX_PAGES}"),
                ));
            }
        }
        Ok(())
    }

    fn check_known(&self, field: &str, name: &str) -> Result<(), ValidationError> {
        if self.fields.contains_key(name) {
            Ok(())
        } else {
            let known: Vec<&str> = self.fields.keys().map(String::as_str).collect();
            Err(invalid(
                field,
                format!("{name:?} is not one of the fields ({})", known.join(", ")),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validate::from_json;

    fn check(json: serde_json::Value, expected: Result<(), (&str, &str)>) {
        let got = from_json::<ExtractItemsInput>(&json).and_then(|input| input.validate());
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(err), Err((field, message))) => {
                assert_eq!(err.field, field, "{json}: {err}");
                assert!(err.message.contains(message), "{json}: {err}");
            }
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    }

    /// The flagship input, with `patch` merged over it.
    fn jobs(patch: serde_json::Value) -> serde_json::Value {
        let mut input = json!({
            "item_selector": "li.job",
            "fields": {
                "title": {"selector": "h3"},
                "company": {"selector": ".company"},
                "location": {"selector": ".location"},
                "link": {"selector": "a", "attribute": "href"},
                "date": {"selector": "time", "attribute": "datetime"}
            },
            "key": {"field": "link"},
            "include": {"keywords": ["rust", "go"], "fields": ["title"]},
            "exclude": {"keywords": ["senior"]},
            "pagination": {"next_selector": "a[rel=next]", "max_pages": 5}
        });
        if let (Some(base), Some(patch)) = (input.as_object_mut(), patch.as_object()) {
            for (k, v) in patch {
                base.insert(k.clone(), v.clone());
            }
        }
        input
    }

    #[test]
    fn accepts_the_flagship_input() {
        check(jobs(json!({})), Ok(()));
        check(jobs(json!({"key": {"hash": ["title", "company"]}})), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        check(
            jobs(json!({"item_selector": "li[" })),
            Err(("item_selector", "invalid CSS selector")),
        );
        check(
            jobs(json!({"fields": {}})),
            Err(("fields", "at least one field")),
        );
        check(
            jobs(json!({"fields": {"": {}}, "key": {"field": ""}})),
            Err(("fields.", "must not be empty")),
        );
        check(
            jobs(json!({"key": {"field": "url"}})),
            Err((
                "key.field",
                "\"url\" is not one of the fields (company, date, link, location, title)",
            )),
        );
        check(
            jobs(json!({"key": {"hash": []}})),
            Err(("key.hash", "at least one field")),
        );
        check(
            jobs(json!({"key": {"hash": ["title", "title"]}})),
            Err(("key.hash[1]", "listed twice")),
        );
        check(
            jobs(json!({"key": {"id": "x"}})),
            Err(("key", "unknown variant `id`")),
        );
        check(
            jobs(json!({"include": {"keywords": []}})),
            Err(("include.keywords", "at least one keyword")),
        );
        check(
            jobs(json!({"exclude": {"keywords": ["ok", ""]}})),
            Err(("exclude.keywords[1]", "must not be blank")),
        );
        check(
            jobs(json!({"exclude": {"keywords": ["x"], "fields": ["salary"]}})),
            Err(("exclude.fields[0]", "is not one of the fields")),
        );
        check(
            jobs(json!({"pagination": {"next_selector": "a", "max_pages": 0}})),
            Err(("pagination.max_pages", "between 1 and 50")),
        );
        check(
            jobs(json!({"pagination": {"next_selector": "a", "max_pages": 51}})),
            Err(("pagination.max_pages", "between 1 and 50")),
        );
        check(
            jobs(json!({"pagination": {"max_pages": 2}})),
            Err(("pagination", "missing field `next_selector`")),
        );
    }
}
