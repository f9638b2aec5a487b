//! `WorkflowInfo` (the description and input JSON Schema of each
//! `WorkflowKind`, a model type) and `WorkflowInput`, an input parsed and
//! validated for one of them.
//!
//! Deliberately does not expand a workflow into a job (`expand.rs` does).

use accord_model::ValidationError;

use crate::items::ExtractItemsInput;
use crate::page_change::PageChangeInput;
use crate::schema::json_schema;
use crate::smoke::SmokeCheckInput;
use crate::validate::from_json;

pub use accord_model::{UnknownWorkflow, WorkflowKind};

/// What the workflows crate knows about each built-in workflow: its
/// description and the JSON Schema of its input (the kind itself is the
/// model's, so monitors can name it).
pub trait WorkflowInfo {
    /// One sentence for people choosing a workflow.
    fn description(self) -> &'static str;
    /// The JSON Schema of this workflow's input, generated from its type.
    fn input_schema(self) -> serde_json::Value;
}

impl WorkflowInfo for WorkflowKind {
    fn description(self) -> &'static str {
        match self {
            Self::PageChange => {
                "Watch a page, or parts of it, and report what changed since the last run as a \
                 diff; optionally compare screenshots and track numbers such as a price."
            }
            Self::ExtractItems => {
                "Extract a list of records (job postings, products) and report the items that \
                 are new, removed or changed since the last run."
            }
            Self::SmokeCheck => {
                "Check that a page loads in time with the right status and shows what it must, \
                 and report when it starts failing and when it recovers."
            }
        }
    }

    fn input_schema(self) -> serde_json::Value {
        match self {
            Self::PageChange => json_schema::<PageChangeInput>(),
            Self::ExtractItems => json_schema::<ExtractItemsInput>(),
            Self::SmokeCheck => json_schema::<SmokeCheckInput>(),
        }
    }
}

/// A valid input for one workflow.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowInput {
    PageChange(PageChangeInput),
    ExtractItems(ExtractItemsInput),
    SmokeCheck(SmokeCheckInput),
}

impl WorkflowInput {
    /// Parses `json` as the input of `kind` and validates it; an error
    /// names the offending field with a dotted path (`values[0].condition`),
    /// or `input` for the whole document.
    pub fn parse(kind: WorkflowKind, json: &serde_json::Value) -> Result<Self, ValidationError> {
        let input = match kind {
            WorkflowKind::PageChange => Self::PageChange(from_json(json)?),
            WorkflowKind::ExtractItems => Self::ExtractItems(from_json(json)?),
            WorkflowKind::SmokeCheck => Self::SmokeCheck(from_json(json)?),
        };
        input.validate()?;
        Ok(input)
    }

    pub fn kind(&self) -> WorkflowKind {
        match self {
            Self::PageChange(_) => WorkflowKind::PageChange,
            Self::ExtractItems(_) => WorkflowKind::ExtractItems,
            Self::SmokeCheck(_) => WorkflowKind::SmokeCheck,
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::PageChange(input) => input.validate(),
            Self::ExtractItems(input) => input.validate(),
            Self::SmokeCheck(input) => input.validate(),
        }
    }

    /// The input as JSON, as `parse` reads it back (for storage next to
    /// the workflow's name).
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Self::PageChange(input) => serde_json::to_value(input),
            Self::ExtractItems(input) => serde_json::to_value(input),
            Self::SmokeCheck(input) => serde_json::to_value(input),
        };
        // Every field serializes to JSON: strings, numbers, maps with
        // string keys. A failure would be a bug in a derive.
        value.unwrap_or(serde_json::Value::Null)
    }
}
