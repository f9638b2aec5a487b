//! `WorkflowKind`, the names of the built-in workflows, and
//! `WorkflowInput`, an input parsed and validated for one of them, with the
//! JSON Schema the API publishes for each.
//!
//! Deliberately does not expand a workflow into a job (the control plane
//! does, with the engine's steps).

use std::fmt;
use std::str::FromStr;

use accord_model::ValidationError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::items::ExtractItemsInput;
use crate::page_change::PageChangeInput;
use crate::schema::json_schema;
use crate::smoke::SmokeCheckInput;
use crate::validate::from_json;

/// A built-in workflow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    /// Whether a page (or parts of it) changed, with a diff.
    PageChange,
    /// A list of records out of a page, with new, removed and changed items.
    ExtractItems,
    /// Whether a page loads and shows what it must.
    SmokeCheck,
}

impl WorkflowKind {
    pub const ALL: [Self; 3] = [Self::PageChange, Self::ExtractItems, Self::SmokeCheck];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PageChange => "page_change",
            Self::ExtractItems => "extract_items",
            Self::SmokeCheck => "smoke_check",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// One sentence for people choosing a workflow.
    pub fn description(self) -> &'static str {
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

    /// The JSON Schema of this workflow's input, generated from its type.
    pub fn input_schema(self) -> serde_json::Value {
        match self {
            Self::PageChange => json_schema::<PageChangeInput>(),
            Self::ExtractItems => json_schema::<ExtractItemsInput>(),
            Self::SmokeCheck => json_schema::<SmokeCheckInput>(),
        }
    }
}

impl fmt::Display for WorkflowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a built-in workflow; reads after "failed to".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("find workflow {0:?}: the workflows are page_change, extract_items and smoke_check")]
pub struct UnknownWorkflow(pub String);

impl FromStr for WorkflowKind {
    type Err = UnknownWorkflow;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name).ok_or_else(|| UnknownWorkflow(name.to_owned()))
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
