//! `run`: one entry point for every workflow, from an input, what the
//! engine captured and the previous run to the outcome to record, the
//! snapshot to keep and the artifact to store.
//!
//! The control plane calls it off the async threads (`spawn_blocking`) at
//! job completion and writes the outcome and the snapshot in the same
//! transaction as the completion. It is pure: the same arguments give the
//! same result.

use crate::items::{extract_items, Record};
use crate::kind::{WorkflowInput, WorkflowKind};
use crate::outcome::{RunOutcome, Snapshot, WorkflowOutcome};
use crate::page_change::{page_change, CaptureError, PageCapture, PreviousPage};
use crate::smoke::{smoke_check, SmokeCapture};

/// What the engine captured, by workflow.
#[derive(Debug, Clone, PartialEq)]
pub enum Capture {
    PageChange(PageCapture),
    /// The records extracted, in page order (all pages, in order).
    ExtractItems(Vec<Record>),
    SmokeCheck(SmokeCapture),
}

impl Capture {
    pub fn kind(&self) -> WorkflowKind {
        match self {
            Self::PageChange(_) => WorkflowKind::PageChange,
            Self::ExtractItems(_) => WorkflowKind::ExtractItems,
            Self::SmokeCheck(_) => WorkflowKind::SmokeCheck,
        }
    }
}

/// The monitor's last run, as the control plane passes it back.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    pub snapshot: &'a Snapshot,
    /// The screenshot a `page_change` snapshot refers to, if still stored.
    pub screenshot_png: Option<&'a [u8]>,
}

/// Everything a run produces.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Recorded with the run.
    pub outcome: RunOutcome,
    /// Kept for the next run.
    pub snapshot: Snapshot,
    /// The visual diff's highlight (PNG), to store as an artifact.
    pub highlight_png: Option<Vec<u8>>,
}

/// Why a run produced nothing; reads after "failed to".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("run {input}: the capture is for {capture}")]
    CaptureMismatch {
        input: WorkflowKind,
        capture: WorkflowKind,
    },
    #[error("run {input}: the previous snapshot is from {snapshot}")]
    SnapshotMismatch {
        input: WorkflowKind,
        snapshot: WorkflowKind,
    },
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// Runs the workflow of `input` on `capture` against `previous`.
pub fn run(
    input: &WorkflowInput,
    capture: &Capture,
    previous: Option<Previous<'_>>,
) -> Result<RunResult, RunError> {
    if let Some(previous) = previous {
        if previous.snapshot.kind() != input.kind() {
            return Err(RunError::SnapshotMismatch {
                input: input.kind(),
                snapshot: previous.snapshot.kind(),
            });
        }
    }
    let (detail, snapshot, highlight_png) = match (input, capture) {
        (WorkflowInput::PageChange(input), Capture::PageChange(capture)) => {
            let previous = previous.and_then(|p| match p.snapshot {
                Snapshot::PageChange(snapshot) => Some(PreviousPage {
                    snapshot,
                    screenshot_png: p.screenshot_png,
                }),
                _ => None,
            });
            let run = page_change(input, capture, previous)?;
            (
                WorkflowOutcome::PageChange(run.outcome),
                Snapshot::PageChange(run.snapshot),
                run.highlight_png,
            )
        }
        (WorkflowInput::ExtractItems(input), Capture::ExtractItems(records)) => {
            let previous = previous.and_then(|p| match p.snapshot {
                Snapshot::ExtractItems(snapshot) => Some(snapshot),
                _ => None,
            });
            let run = extract_items(input, records, previous);
            (
                WorkflowOutcome::ExtractItems(run.outcome),
                Snapshot::ExtractItems(run.snapshot),
                None,
            )
        }
        (WorkflowInput::SmokeCheck(input), Capture::SmokeCheck(capture)) => {
            let previous = previous.and_then(|p| match p.snapshot {
                Snapshot::SmokeCheck(snapshot) => Some(snapshot),
                _ => None,
            });
            let run = smoke_check(input, capture, previous);
            (
                WorkflowOutcome::SmokeCheck(run.outcome),
                Snapshot::SmokeCheck(run.snapshot),
                None,
            )
        }
        (input, capture) => {
            return Err(RunError::CaptureMismatch {
                input: input.kind(),
                capture: capture.kind(),
            })
        }
    };
    Ok(RunResult {
        outcome: RunOutcome::new(detail),
        snapshot,
        highlight_png,
    })
}
