//! The item history of an `extract_items` monitor: every item its
//! snapshots ever held, with the runs it was first and last seen on, folded
//! from the snapshots in run order.
//!
//! Deliberately reads nothing: the control plane passes the snapshots in,
//! oldest first, as many at a time as it likes.

use std::collections::HashMap;

use accord_model::{ItemRecord, ItemStatus, SeenAt};
use chrono::{DateTime, Utc};

use super::compare::ItemsSnapshot;

/// The history folded so far.
#[derive(Debug, Clone, Default)]
pub struct ItemHistory {
    /// By key; each with the order it was first seen in.
    items: HashMap<String, (usize, ItemRecord)>,
    /// The run of the latest snapshot added.
    latest_run: Option<i64>,
}

impl ItemHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the snapshot of run `run_id`, finished at `at`; runs must come
    /// oldest first (an older run than the latest added is ignored).
    pub fn add(&mut self, run_id: i64, at: DateTime<Utc>, snapshot: &ItemsSnapshot) {
        if self.latest_run.is_some_and(|latest| run_id <= latest) {
            return;
        }
        self.latest_run = Some(run_id);
        let seen = SeenAt { run_id, at };
        for item in &snapshot.items {
            let order = self.items.len();
            self.items
                .entry(item.key.clone())
                .and_modify(|(_, record)| {
                    record.last_seen = seen;
                    record.fields = item.fields.clone();
                })
                .or_insert_with(|| {
                    (
                        order,
                        ItemRecord {
                            key: item.key.clone(),
                            status: ItemStatus::Current,
                            first_seen: seen,
                            last_seen: seen,
                            fields: item.fields.clone(),
                        },
                    )
                });
        }
    }

    /// Every item, in the order first seen (by run, then page order), each
    /// current when the latest snapshot holds it.
    pub fn into_records(self) -> Vec<ItemRecord> {
        let latest = self.latest_run;
        let mut items: Vec<(usize, ItemRecord)> = self.items.into_values().collect();
        items.sort_by_key(|(order, _)| *order);
        items
            .into_iter()
            .map(|(_, mut record)| {
                record.status = if Some(record.last_seen.run_id) == latest {
                    ItemStatus::Current
                } else {
                    ItemStatus::Removed
                };
                record
            })
            .collect()
    }
}
