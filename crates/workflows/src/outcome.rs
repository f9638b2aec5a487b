//! What a run reports.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a run compared nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineReason {
    /// The monitor's first run.
    FirstRun,
    /// The rules that shape what is compared changed since the last run.
    RulesChanged,
}
