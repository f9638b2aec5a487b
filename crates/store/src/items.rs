//! [`ItemHistoryStore`]: the item history of `extract_items` monitors, one
//! row per monitor and item key: its fields when last seen, the run and
//! time it was first and last seen, the run that no longer found it (if
//! any) and how many times its fields changed. Implemented in each
//! backend's `items.rs`.
//!
//! Written only by a run's completion, in the same transaction as its
//! outcome and snapshot ([`crate::MonitorStore::monitor_run_complete`] with
//! [`crate::RunRecord::Outcome`]'s `items`), so the history always agrees
//! with the runs: an item on the run's snapshot is inserted or seen again
//! (its fields replaced, its change count moved when they differ, its
//! removal cleared when it comes back), and every current item the snapshot
//! no longer holds is marked removed by that run. Deleted with the monitor.
//!
//! Monitors that ran before the table existed were backfilled by its
//! migration from their latest snapshot: each of its items first seen and
//! last seen on that run, with no changes counted (the runs before it are
//! not replayed).

use std::collections::{BTreeMap, BTreeSet};

use accord_model::{ItemRecord, ItemStateFilter, MonitorId, WorkspaceId};
use async_trait::async_trait;

use crate::StoreError;

/// An item a run's snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenItem {
    pub key: String,
    pub fields: BTreeMap<String, Option<String>>,
}

impl SeenItem {
    /// What the text query of a listing searches: the key and the field
    /// values, one a line, lowercased (the query is lowercased the same
    /// way, so the search ignores case on both backends).
    pub fn search_text(&self) -> String {
        let mut text = self.key.to_lowercase();
        for value in self.fields.values().flatten() {
            text.push('\n');
            text.push_str(&value.to_lowercase());
        }
        text
    }
}

/// Which items of a monitor's history to list.
#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    pub state: ItemStateFilter,
    /// Only items whose key or a field value contains this text, ignoring
    /// case.
    pub text: Option<String>,
    /// Only items after this position (the cursor).
    pub after: Option<i64>,
    pub limit: u32,
}

impl ItemQuery {
    /// The text as the search column holds it.
    pub(crate) fn folded_text(&self) -> Option<String> {
        self.text.as_deref().map(str::to_lowercase)
    }
}

/// An item of the history with its position: the order first seen, and
/// the cursor of the page that ends with it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub position: i64,
    pub record: ItemRecord,
}

/// The item histories of `extract_items` monitors.
#[async_trait]
pub trait ItemHistoryStore: Send + Sync {
    /// The items of a monitor's history that `query` selects, in the order
    /// first seen (by run, then page order); empty for a monitor that is
    /// not in `workspace`.
    async fn monitor_items(
        &self,
        workspace: WorkspaceId,
        monitor: MonitorId,
        query: &ItemQuery,
    ) -> Result<Vec<StoredItem>, StoreError>;

    /// Every field name the items of a monitor's history have: the columns
    /// of an export, the same on every page.
    async fn monitor_item_fields(
        &self,
        workspace: WorkspaceId,
        monitor: MonitorId,
    ) -> Result<BTreeSet<String>, StoreError>;
}
