//! A tracked value: its input (`ValueSpec`), its state between runs
//! (`ValueState`) and what a run reports (`ValueOutcome`), with the
//! condition evaluated as a level and an edge.
//!
//! Edges: `below` and `above` are met for as long as the value stays on that
//! side, so `newly_met` is true only on the run that crossed. Values that
//! cannot be read leave the state as it was, so one broken page does not
//! re-fire the edge when the value returns. `changed_by_percent` compares
//! two consecutive runs: each run where it holds is a separate event (a
//! second drop of 20% is news again), so there `newly_met` equals `met`.

use accord_model::{CssSelector, ValidationError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::parse::{parse_number, DecimalSeparator};
use crate::validate::{check_field_name, invalid};

/// Longest JSON pointer accepted, in bytes.
pub const MAX_JSON_POINTER_BYTES: usize = 512;
/// Longest text kept in an outcome to show where a value came from.
const MAX_SHOWN_CHARS: usize = 200;

/// When a tracked value is worth telling someone about.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The value is below this number.
    Below(f64),
    /// The value is above this number.
    Above(f64),
    /// The value moved by more than this many percent since the previous run.
    ChangedByPercent(f64),
}

impl Condition {
    /// Whether `current` meets the condition, given the previous run's value.
    /// A change from 0 to anything else counts as an unbounded change.
    pub fn holds(self, current: f64, previous: Option<f64>) -> bool {
        match self {
            Self::Below(limit) => current < limit,
            Self::Above(limit) => current > limit,
            Self::ChangedByPercent(percent) => match previous {
                None => false,
                Some(0.0) => current != 0.0,
                Some(before) => ((current - before) / before).abs() * 100.0 > percent,
            },
        }
    }

    fn is_event(self) -> bool {
        matches!(self, Self::ChangedByPercent(_))
    }

    fn validate(self, field: &str) -> Result<(), ValidationError> {
        let (name, number) = match self {
            Self::Below(n) => ("below", n),
            Self::Above(n) => ("above", n),
            Self::ChangedByPercent(n) => ("changed_by_percent", n),
        };
        let field = format!("{field}.{name}");
        if !number.is_finite() {
            return Err(invalid(field, "must be a finite number"));
        }
        if matches!(self, Self::ChangedByPercent(_)) && number <= 0.0 {
            return Err(invalid(field, "must be a percentage above 0"));
        }
        Ok(())
    }
}

/// A number to track on each run: where to read it, and an optional
/// condition on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueSpec {
    /// The series' name (`price`); unique within a monitor.
    pub name: String,
    /// Read the text of the first element matching this selector (HTML pages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<CssSelector>,
    /// Read the value at this JSON pointer (`/offers/0/price`) (JSON bodies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    /// Which character marks decimals; `auto` guesses.
    #[serde(default, skip_serializing_if = "is_auto")]
    pub decimal_separator: DecimalSeparator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

fn is_auto(separator: &DecimalSeparator) -> bool {
    *separator == DecimalSeparator::Auto
}

impl ValueSpec {
    /// Checks what serde cannot; `field` is this spec's path (`values[0]`).
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        check_field_name(&format!("{field}.name"), &self.name)?;
        match (&self.selector, &self.json_pointer) {
            (Some(_), None) => {}
            (None, Some(pointer)) => {
                let field = format!("{field}.json_pointer");
                if pointer.len() > MAX_JSON_POINTER_BYTES {
                    return Err(invalid(
                        field,
                        format!("must be at most {MAX_JSON_POINTER_BYTES} bytes long"),
                    ));
                }
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return Err(invalid(
                        field,
                        "a JSON pointer is empty or starts with `/` (like `/price`)",
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    field,
                    "give exactly one of `selector` (HTML) and `json_pointer` (JSON)",
                ))
            }
        }
        if let Some(condition) = self.condition {
            condition.validate(&format!("{field}.condition"))?;
        }
        Ok(())
    }
}

/// What a tracked value remembers between runs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ValueState {
    /// The last value read; kept when a later run could not read one.
    pub value: Option<f64>,
    /// Whether the condition held on the last run that read a value.
    pub condition_met: bool,
}

/// One tracked value in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValueOutcome {
    pub name: String,
    /// The text the value was read from (its start, if long).
    pub text: Option<String>,
    /// The number read, or none when it could not be read (see `error`).
    pub value: Option<f64>,
    /// The value of the last run that read one.
    pub previous: Option<f64>,
    /// Why no value was read.
    pub error: Option<String>,
    pub condition: Option<Condition>,
    /// The condition holds on this run (the level).
    pub condition_met: bool,
    /// The condition holds on this run and did not before (the edge).
    pub newly_met: bool,
}

/// Reads the value from `text` (already found on the page, or why it was
/// not), evaluates the condition against `previous`, and returns the
/// outcome and the state to keep.
pub fn track_value(
    spec: &ValueSpec,
    text: Result<&str, String>,
    previous: Option<&ValueState>,
) -> (ValueOutcome, ValueState) {
    let before = previous.copied().unwrap_or_default();
    let mut outcome = ValueOutcome {
        name: spec.name.clone(),
        text: text.as_ref().ok().map(|text| shown(text)),
        value: None,
        previous: before.value,
        error: None,
        condition: spec.condition,
        condition_met: false,
        newly_met: false,
    };
    let parsed = text.and_then(|text| {
        parse_number(text, spec.decimal_separator)
            .map_err(|err| format!("found no number in {:?}: {err}", shown(text)))
    });
    let value = match parsed {
        Ok(value) => value,
        Err(error) => {
            outcome.error = Some(error);
            return (outcome, before);
        }
    };
    let met = spec.condition.is_some_and(|c| c.holds(value, before.value));
    let is_event = spec.condition.is_some_and(Condition::is_event);
    outcome.value = Some(value);
    outcome.condition_met = met;
    outcome.newly_met = met && (is_event || !before.condition_met);
    let state = ValueState {
        value: Some(value),
        condition_met: met,
    };
    (outcome, state)
}

fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_SHOWN_CHARS).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(condition: Option<Condition>) -> ValueSpec {
        ValueSpec {
            name: "price".to_owned(),
            selector: Some(CssSelector::parse(".price").unwrap()),
            json_pointer: None,
            decimal_separator: DecimalSeparator::Auto,
            condition,
        }
    }

    /// One run: the text read, the previous state, then the expected
    /// (value, met, newly met) and state kept.
    fn check(
        condition: Option<Condition>,
        text: Result<&str, &str>,
        previous: Option<ValueState>,
        expected: (Option<f64>, bool, bool),
        kept: ValueState,
    ) {
        let text = text.map_err(str::to_owned);
        let (outcome, state) = track_value(&spec(condition), text.clone(), previous.as_ref());
        assert_eq!(
            (outcome.value, outcome.condition_met, outcome.newly_met),
            expected,
            "{condition:?} on {text:?} after {previous:?}: {outcome:?}"
        );
        assert_eq!(state, kept, "{condition:?} on {text:?} after {previous:?}");
    }

    fn state(value: f64, met: bool) -> ValueState {
        ValueState {
            value: Some(value),
            condition_met: met,
        }
    }

    #[test]
    fn below_and_above_fire_on_the_crossing_only() {
        let below = Some(Condition::Below(1000.0));
        // First run already below: that is news once.
        check(
            below,
            Ok("$999"),
            None,
            (Some(999.0), true, true),
            state(999.0, true),
        );
        // Still below: level, not edge.
        check(
            below,
            Ok("$950"),
            Some(state(999.0, true)),
            (Some(950.0), true, false),
            state(950.0, true),
        );
        // Back above, then below again: the edge fires again.
        check(
            below,
            Ok("$1,050"),
            Some(state(950.0, true)),
            (Some(1050.0), false, false),
            state(1050.0, false),
        );
        check(
            below,
            Ok("$990"),
            Some(state(1050.0, false)),
            (Some(990.0), true, true),
            state(990.0, true),
        );
        // Exactly the limit is not below it.
        check(
            below,
            Ok("1000"),
            None,
            (Some(1000.0), false, false),
            state(1000.0, false),
        );
        let above = Some(Condition::Above(5.0));
        check(
            above,
            Ok("12%"),
            Some(state(4.0, false)),
            (Some(12.0), true, true),
            state(12.0, true),
        );
        check(
            above,
            Ok("4%"),
            Some(state(12.0, true)),
            (Some(4.0), false, false),
            state(4.0, false),
        );
    }

    #[test]
    fn changed_by_percent_compares_consecutive_runs() {
        let moved = Some(Condition::ChangedByPercent(10.0));
        check(
            moved,
            Ok("100"),
            None,
            (Some(100.0), false, false),
            state(100.0, false),
        );
        check(
            moved,
            Ok("85"),
            Some(state(100.0, false)),
            (Some(85.0), true, true),
            state(85.0, true),
        );
        // A second drop of more than 10% is a new event.
        check(
            moved,
            Ok("70"),
            Some(state(85.0, true)),
            (Some(70.0), true, true),
            state(70.0, true),
        );
        // Exactly 10% is not more than 10%.
        check(
            moved,
            Ok("77"),
            Some(state(70.0, true)),
            (Some(77.0), false, false),
            state(77.0, false),
        );
        check(
            moved,
            Ok("5"),
            Some(state(0.0, false)),
            (Some(5.0), true, true),
            state(5.0, true),
        );
        check(
            moved,
            Ok("0"),
            Some(state(0.0, false)),
            (Some(0.0), false, false),
            state(0.0, false),
        );
    }

    #[test]
    fn an_unreadable_value_keeps_the_previous_state() {
        let below = Some(Condition::Below(1000.0));
        check(
            below,
            Ok("sold out"),
            Some(state(950.0, true)),
            (None, false, false),
            state(950.0, true),
        );
        check(
            below,
            Err("no element matches `.price`"),
            Some(state(950.0, true)),
            (None, false, false),
            state(950.0, true),
        );
        // So coming back below does not re-fire the edge.
        check(
            below,
            Ok("$940"),
            Some(state(950.0, true)),
            (Some(940.0), true, false),
            state(940.0, true),
        );
        let (outcome, _) = track_value(&spec(below), Ok("sold out"), None);
        assert_eq!(
            outcome.error.as_deref(),
            Some(r#"found no number in "sold out": the text has no digits"#)
        );
    }

    #[test]
    fn without_a_condition_only_the_value_is_recorded() {
        check(
            None,
            Ok("1 299,00 €"),
            Some(state(1.0, false)),
            (Some(1299.0), false, false),
            state(1299.0, false),
        );
    }

    fn check_valid(json: serde_json::Value, expected: Result<(), (&str, &str)>) {
        let spec: ValueSpec = serde_json::from_value(json.clone()).unwrap();
        let got = spec.validate("values[0]");
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(err), Err((field, message))) => {
                assert_eq!(err.field, field, "{json}");
                assert!(err.message.contains(message), "{json}: {err}");
            }
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn validation_names_the_field() {
        use serde_json::json;
        check_valid(
            json!({"name": "price", "selector": ".price", "condition": {"below": 10}}),
            Ok(()),
        );
        check_valid(
            json!({"name": "price", "json_pointer": "/offers/0/price"}),
            Ok(()),
        );
        check_valid(
            json!({"name": "", "selector": "p"}),
            Err(("values[0].name", "must not be empty")),
        );
        check_valid(json!({"name": "p"}), Err(("values[0]", "exactly one of")));
        check_valid(
            json!({"name": "p", "selector": "p", "json_pointer": "/p"}),
            Err(("values[0]", "exactly one of")),
        );
        check_valid(
            json!({"name": "p", "json_pointer": "price"}),
            Err(("values[0].json_pointer", "starts with `/`")),
        );
        check_valid(
            json!({"name": "p", "selector": "p", "condition": {"changed_by_percent": 0}}),
            Err(("values[0].condition.changed_by_percent", "above 0")),
        );
    }
}
