//! `page_change`: whether a page (or parts of it) changed since the last
//! snapshot, with a unified diff and structured hunks of its normalised
//! text, an optional visual comparison of screenshots, a trigger text that
//! gates what counts as a change, and tracked values.
//!
//! Deliberately does not fetch the page or store the snapshot: the engine
//! captured the body (and screenshot), the control plane keeps the snapshot
//! and passes the previous one back.

mod compare;
mod diff;
mod input;
mod normalize;

pub use compare::{
    page_change, CaptureError, PageCapture, PageChangeOutcome, PageChangeRun, PageSnapshot,
    PreviousPage, TriggerOutcome, VisualOutcome,
};
pub use diff::{diff_texts, DiffLine, Hunk, LineKind, TextDiff, MAX_DIFF_LINES};
pub use input::{BodyFormat, PageChangeInput, Trigger, TriggerWhen};

#[cfg(test)]
mod tests;
