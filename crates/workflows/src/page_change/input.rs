//! What a user asks of a `page_change` monitor, and its checks.

use accord_model::{CssSelector, ValidationError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::pattern::Pattern;
use crate::validate::{check_len, check_text, invalid};
use crate::values::ValueSpec;
use crate::visual::VisualRule;

/// How to read a captured body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// Decide from the content type, then from the body itself.
    #[default]
    Auto,
    /// Read as a web page: the text a person sees, line by line.
    Html,
    /// Compare as canonical JSON: keys sorted, one value per line, so a
    /// change of key order is no change.
    Json,
    /// Compare the body's lines as they are.
    Text,
}

/// Whether a change counts only when a text appears or when it disappears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerWhen {
    /// The text is on the page now and was not on the previous run.
    Appears,
    /// The text was on the previous run and is not now.
    Disappears,
}

/// A text whose appearing (or disappearing) is what makes a change count
/// ("In stock", "Sold out"). Matched ignoring case and spacing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[schema(min_length = 1, max_length = 1024)]
    pub text: String,
    pub when: TriggerWhen,
}

/// Input of the `page_change` workflow. The default watches the whole page
/// with no rules.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageChangeInput {
    /// Parts of the page to watch, in this order; empty watches the whole
    /// page (HTML only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub selectors: Vec<CssSelector>,
    /// Elements removed before the text is read: clocks, ads, banners
    /// (HTML only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub remove: Vec<CssSelector>,
    /// Regular expressions whose matches are removed from each line before
    /// comparing: timestamps, counters, session ids. A line left empty is
    /// dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub ignore: Vec<Pattern>,
    /// Sort the lines before comparing, for lists whose order shuffles.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sort_lines: bool,
    /// How to read the body; `auto` decides from its content type.
    #[serde(default, skip_serializing_if = "is_auto")]
    pub format: BodyFormat,
    /// Only count a change when this text appears (or disappears).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Compare screenshots too (browser engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual: Option<VisualRule>,
    /// Numbers to read from the page on each run (a price, a count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub values: Vec<ValueSpec>,
}

fn is_auto(format: &BodyFormat) -> bool {
    *format == BodyFormat::Auto
}

impl PageChangeInput {
    /// Checks what serde cannot (selectors and patterns were checked when
    /// they were parsed).
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_len("selectors", &self.selectors)?;
        check_len("remove", &self.remove)?;
        check_len("ignore", &self.ignore)?;
        if let Some(trigger) = &self.trigger {
            check_text("trigger.text", &trigger.text)?;
        }
        if let Some(visual) = &self.visual {
            visual.validate("visual")?;
        }
        check_len("values", &self.values)?;
        for (i, value) in self.values.iter().enumerate() {
            let field = format!("values[{i}]");
            value.validate(&field)?;
            if self.values[..i].iter().any(|v| v.name == value.name) {
                return Err(invalid(
                    format!("{field}.name"),
                    format!("another value is already named {:?}", value.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validate::from_json;

    /// Parses and validates `json`; `Err((field, part of the message))`.
    fn check(json: serde_json::Value, expected: Result<(), (&str, &str)>) {
        let got = from_json::<PageChangeInput>(&json).and_then(|input| input.validate());
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(err), Err((field, message))) => {
                assert_eq!(err.field, field, "{json}: {err}");
                assert!(err.message.contains(message), "{json}: {err}");
            }
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn accepts_full_and_empty_inputs() {
        check(json!({}), Ok(()));
        check(
            json!({
                "selectors": ["main", "#prices li"],
                "remove": [".ad", "time"],
                "ignore": [r"\d{1,2}:\d{2}", r"\d+ views"],
                "sort_lines": true,
                "format": "html",
                "trigger": {"text": "In stock", "when": "appears"},
                "visual": {"threshold": 0.02, "tolerance": 24},
                "values": [{"name": "price", "selector": ".price", "condition": {"below": 100}}]
            }),
            Ok(()),
        );
    }

    #[test]
    fn errors_name_the_field() {
        check(
            json!({"selectors": ["p["]}),
            Err(("selectors[0]", "invalid CSS selector")),
        );
        check(
            json!({"ignore": ["ok", "(unclosed"]}),
            Err(("ignore[1]", "unclosed group")),
        );
        check(
            json!({"ignore": [r"\w{100}{100}"]}),
            Err(("ignore[0]", "too costly")),
        );
        check(
            json!({"ignore": vec!["x"; 33]}),
            Err(("ignore", "at most 32 entries")),
        );
        check(
            json!({"selector": "p"}),
            Err(("selector", "unknown field `selector`")),
        );
        check(
            json!({"format": "xml"}),
            Err(("format", "unknown variant `xml`")),
        );
        check(
            json!({"trigger": {"text": " ", "when": "appears"}}),
            Err(("trigger.text", "must not be blank")),
        );
        check(
            json!({"trigger": {"text": "x", "when": "sometimes"}}),
            Err(("trigger.when", "unknown variant")),
        );
        check(
            json!({"visual": {"threshold": 1.5}}),
            Err(("visual.threshold", "between 0 and 1")),
        );
        check(
            json!({"values": [{"name": "p", "selector": "p"}, {"name": "p", "json_pointer": "/p"}]}),
            Err(("values[1].name", "already named \"p\"")),
        );
        check(json!("all of it"), Err(("input", "invalid type")));
    }
}
