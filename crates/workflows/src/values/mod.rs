//! Values over time: numbers read from page text ("$1,299.00", "1 299,00 €")
//! and conditions on them (`below`, `above`, `changed_by_percent`) evaluated
//! against the previous run, reporting both the level (met) and the edge
//! (just became met).
//!
//! Deliberately does not find the text on the page (the workflow that
//! tracks the value does) nor store the series (the control plane does).

mod condition;
mod parse;

pub use condition::{
    track_value, Condition, ValueOutcome, ValueSpec, ValueState, MAX_JSON_POINTER_BYTES,
};
pub use parse::{parse_number, DecimalSeparator, NumberError};
