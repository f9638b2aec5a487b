//! A monitor's stored snapshots read back: two of them compared
//! ([`diff_snapshots`]: the line diff of two `page_change` texts, the items
//! new, removed and changed between two `extract_items` lists) and one cut
//! to a size a listing can carry ([`bounded_snapshot`]).
//!
//! Deliberately does not fetch the snapshots (the control plane reads them
//! and calls these off the async threads: a diff is quadratic at worst).

use serde::Serialize;
use utoipa::ToSchema;

use crate::items::{compare_items, ItemsDiff};
use crate::kind::WorkflowKind;
use crate::outcome::Snapshot;
use crate::page_change::{diff_texts, TextDiff};

/// Longest `page_change` text a bounded snapshot shows, in bytes.
pub const MAX_LISTED_TEXT_BYTES: usize = 64 * 1024;
/// Most `extract_items` items a bounded snapshot shows.
pub const MAX_LISTED_ITEMS: usize = 100;

/// What changed from one snapshot to another, by workflow. Written only
/// (the API names the workflow beside it), never read back.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SnapshotDiff {
    PageChange(TextDiff),
    ExtractItems(ItemsDiff),
}

/// Why two snapshots cannot be compared; reads after "failed to".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error("compare a {from} snapshot with a {to} snapshot")]
    Mismatch {
        from: WorkflowKind,
        to: WorkflowKind,
    },
    #[error("compare smoke_check snapshots: they keep only a verdict (read the runs instead)")]
    NothingToCompare,
}

/// What changed from `from` to `to` (both of one monitor).
pub fn diff_snapshots(from: &Snapshot, to: &Snapshot) -> Result<SnapshotDiff, DiffError> {
    match (from, to) {
        (Snapshot::PageChange(a), Snapshot::PageChange(b)) => {
            Ok(SnapshotDiff::PageChange(diff_texts(&a.text, &b.text)))
        }
        (Snapshot::ExtractItems(a), Snapshot::ExtractItems(b)) => {
            Ok(SnapshotDiff::ExtractItems(compare_items(a, b)))
        }
        (Snapshot::SmokeCheck(_), Snapshot::SmokeCheck(_)) => Err(DiffError::NothingToCompare),
        (from, to) => Err(DiffError::Mismatch {
            from: from.kind(),
            to: to.kind(),
        }),
    }
}

/// `snapshot` cut to [`MAX_LISTED_TEXT_BYTES`] of text or
/// [`MAX_LISTED_ITEMS`] items, and whether anything was cut.
pub fn bounded_snapshot(mut snapshot: Snapshot) -> (Snapshot, bool) {
    let truncated = match &mut snapshot {
        Snapshot::PageChange(page) if page.text.len() > MAX_LISTED_TEXT_BYTES => {
            let mut end = MAX_LISTED_TEXT_BYTES;
            while !page.text.is_char_boundary(end) {
                end -= 1;
            }
            page.text.truncate(end);
            true
        }
        Snapshot::ExtractItems(items) if items.items.len() > MAX_LISTED_ITEMS => {
            items.items.truncate(MAX_LISTED_ITEMS);
            true
        }
        _ => false,
    };
    (snapshot, truncated)
}

#[cfg(test)]
mod tests;
