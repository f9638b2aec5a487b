//! What a run reports and keeps, in one shape for every workflow: the
//! `RunOutcome` (a `Summary` of what a notification needs, plus the
//! workflow's own outcome) and the `Snapshot` kept for the next run.
//!
//! Both are stored by the control plane, in the same transaction as the
//! job's completion, and read back by later builds: each carries a format
//! version and names its workflow. Deliberately does not decide whom to
//! notify (the notifications code reads the summary).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::items::{ItemsOutcome, ItemsSnapshot};
use crate::kind::WorkflowKind;
use crate::page_change::{PageChangeOutcome, PageSnapshot, VisualOutcome};
use crate::smoke::{SmokeOutcome, SmokeSnapshot};
use crate::version::FormatV1;
use crate::visual::{HighlightArtifact, VisualComparison};

/// Why a run compared nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineReason {
    /// The monitor's first run.
    FirstRun,
    /// The rules that shape what is compared changed since the last run.
    RulesChanged,
}

/// What a notification needs to know about a run, whatever the workflow.
/// Levels (`changed`, `condition_met`, `failed`) say how things are;
/// edges (`condition_newly_met`, `newly_failed`, `recovered`) say what just
/// happened, so a notifier can tell once instead of on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    /// Something changed that counts: the page (after ignore rules and
    /// trigger), or any item new, removed or changed.
    pub changed: bool,
    pub new_items: u32,
    pub removed_items: u32,
    pub changed_items: u32,
    /// A tracked value's condition holds on this run.
    pub condition_met: bool,
    /// A tracked value's condition holds and did not on the run before.
    pub condition_newly_met: bool,
    /// The smoke check failed.
    pub failed: bool,
    /// The smoke check failed and did not on the run before.
    pub newly_failed: bool,
    /// The smoke check passed after failing.
    pub recovered: bool,
}

impl Summary {
    /// Whether something happened on this run that a person watching the
    /// monitor would want to hear about (an edge, not a level: a smoke
    /// check failing for the third time is not news).
    pub fn is_news(&self) -> bool {
        self.changed || self.condition_newly_met || self.newly_failed || self.recovered
    }

    /// The summary of `outcome`.
    pub fn of(outcome: &WorkflowOutcome) -> Self {
        match outcome {
            WorkflowOutcome::PageChange(o) => Self {
                changed: o.changed,
                condition_met: o.values.iter().any(|v| v.condition_met),
                condition_newly_met: o.values.iter().any(|v| v.newly_met),
                ..Self::default()
            },
            WorkflowOutcome::ExtractItems(o) => {
                let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                Self {
                    changed: o.changed_anything(),
                    new_items: count(o.new.len()),
                    removed_items: count(o.removed.len()),
                    changed_items: count(o.changed.len()),
                    ..Self::default()
                }
            }
            WorkflowOutcome::SmokeCheck(o) => Self {
                failed: !o.passed,
                newly_failed: o.newly_failed,
                recovered: o.recovered,
                ..Self::default()
            },
        }
    }
}

/// A workflow's own outcome, tagged with its workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "workflow", rename_all = "snake_case")]
pub enum WorkflowOutcome {
    PageChange(PageChangeOutcome),
    ExtractItems(ItemsOutcome),
    SmokeCheck(SmokeOutcome),
}

impl WorkflowOutcome {
    pub fn kind(&self) -> WorkflowKind {
        match self {
            Self::PageChange(_) => WorkflowKind::PageChange,
            Self::ExtractItems(_) => WorkflowKind::ExtractItems,
            Self::SmokeCheck(_) => WorkflowKind::SmokeCheck,
        }
    }
}

/// What one run of a monitor found: stored with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunOutcome {
    pub version: FormatV1,
    pub summary: Summary,
    pub detail: WorkflowOutcome,
}

impl RunOutcome {
    pub fn new(detail: WorkflowOutcome) -> Self {
        Self {
            version: FormatV1,
            summary: Summary::of(&detail),
            detail,
        }
    }

    /// The visual comparison of a `page_change` run whose visual change
    /// counts (more than its threshold changed): the one whose highlight
    /// image is worth keeping.
    pub fn counted_visual_change(&mut self) -> Option<&mut VisualComparison> {
        match &mut self.detail {
            WorkflowOutcome::PageChange(PageChangeOutcome {
                visual: Some(VisualOutcome::Compared(comparison)),
                ..
            }) if comparison.changed => Some(comparison),
            _ => None,
        }
    }

    /// Where the highlight image of this run's visual comparison is
    /// stored, if it was.
    pub fn highlight(&self) -> Option<&HighlightArtifact> {
        match &self.detail {
            WorkflowOutcome::PageChange(PageChangeOutcome {
                visual: Some(VisualOutcome::Compared(comparison)),
                ..
            }) => comparison.highlight.as_deref(),
            _ => None,
        }
    }
}

/// What a monitor keeps between runs, tagged with its workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "workflow", rename_all = "snake_case")]
pub enum Snapshot {
    PageChange(PageSnapshot),
    ExtractItems(ItemsSnapshot),
    SmokeCheck(SmokeSnapshot),
}

impl Snapshot {
    pub fn kind(&self) -> WorkflowKind {
        match self {
            Self::PageChange(_) => WorkflowKind::PageChange,
            Self::ExtractItems(_) => WorkflowKind::ExtractItems,
            Self::SmokeCheck(_) => WorkflowKind::SmokeCheck,
        }
    }
}
