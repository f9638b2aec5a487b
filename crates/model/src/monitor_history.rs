//! What a monitor's history looks like on the wire: its snapshots
//! (`SnapshotPage`), the difference between two of its runs (`RunDiff`) and
//! the item history of an `extract_items` monitor (`ItemRecord`,
//! `ItemPage`).
//!
//! The workflow-specific parts (a snapshot, a diff) are the workflows
//! crate's formats, carried here as JSON like a run's outcome: this crate
//! does not know the workflows. Deliberately computes nothing: the
//! workflows crate folds and compares, the control plane reads.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ArtifactRef, JobId, MonitorId, WorkflowKind};

/// One snapshot a run kept (`GET /api/v1/monitors/{id}/snapshots`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotView {
    pub run_id: i64,
    /// When the run that kept it finished.
    pub at: DateTime<Utc>,
    pub workflow: WorkflowKind,
    /// The workflow's snapshot (`page_change`: the normalised `text`, the
    /// tracked `values` and the screenshot's hash; `extract_items`: the
    /// `items`; `smoke_check`: whether it `passed`), bounded: see
    /// `truncated`.
    #[schema(value_type = Object)]
    pub snapshot: serde_json::Value,
    /// The snapshot was cut to fit a listing: a `page_change` text after
    /// 64 KiB, an `extract_items` list after 100 items. The diff route
    /// compares the whole snapshots.
    pub truncated: bool,
}

/// `GET /api/v1/monitors/{id}/snapshots`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotPage {
    pub items: Vec<SnapshotView>,
    pub next_cursor: Option<i64>,
}

/// `GET /api/v1/monitors/{id}/diff?from=RUN&to=RUN`: what changed between
/// the snapshots of two runs of one monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunDiff {
    pub monitor_id: MonitorId,
    pub workflow: WorkflowKind,
    pub from: DiffEnd,
    pub to: DiffEnd,
    /// `page_change`: the line diff of the normalised texts (`added`,
    /// `removed`, `unified`, `hunks`, `truncated`); `extract_items`: the
    /// items `new`, `removed` and `changed` from `from` to `to`, and
    /// whether the extraction rules differ (`rules_changed`).
    #[schema(value_type = Object)]
    pub diff: serde_json::Value,
    /// `page_change` with a visual rule: the highlight image of the `to`
    /// run's own visual comparison (with the run before it), when that
    /// change counted and the image is still stored (it is an artifact of
    /// the run's job, pruned with it). `null` otherwise.
    #[serde(default)]
    pub highlight: Option<VisualHighlight>,
}

/// A run's visual diff image, stored as an artifact of its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VisualHighlight {
    /// The run whose comparison made it.
    pub run_id: i64,
    /// Share of the pixels that changed, from 0 to 1.
    pub changed_ratio: f64,
    pub job_id: JobId,
    /// `visual-diff.png`, `image/png`, its size and SHA-256.
    pub artifact: ArtifactRef,
    /// Where to download it: `/api/v1/jobs/{job_id}/artifacts/visual-diff.png`.
    pub url: String,
}

/// One side of a diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiffEnd {
    pub run_id: i64,
    pub at: DateTime<Utc>,
}

/// Whether an item is on the monitor's latest snapshot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// On the latest snapshot.
    Current,
    /// Seen before, not on the latest snapshot.
    Removed,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Removed => "removed",
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an item was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SeenAt {
    pub run_id: i64,
    pub at: DateTime<Utc>,
}

/// One item an `extract_items` monitor has ever seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemRecord {
    pub key: String,
    pub status: ItemStatus,
    pub first_seen: SeenAt,
    pub last_seen: SeenAt,
    /// The run that no longer found it (`status` is `removed`); `null`
    /// while it is current. An item that comes back is current again.
    #[serde(default)]
    pub removed: Option<SeenAt>,
    /// How many times its fields changed from one sighting to the next.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub changes: u32,
    /// Its values when it was last seen.
    pub fields: BTreeMap<String, Option<String>>,
}

/// Which items of a history to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStateFilter {
    /// On the latest snapshot.
    Current,
    /// Seen before, not on the latest snapshot.
    Removed,
    /// Both.
    #[default]
    All,
}

/// Longest text query of an item listing, in characters.
pub const MAX_ITEM_QUERY_CHARS: usize = 200;

/// `GET /api/v1/monitors/{id}/items`: in the order the items were first
/// seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<ItemRecord>,
    pub next_cursor: Option<String>,
}
