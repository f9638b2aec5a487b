//! `extract_items`: one run of the workflow, from the extracted records and
//! the previous snapshot to the outcome and the next snapshot.
//!
//! Each record's values are collapsed (white space runs to one space,
//! trimmed; an empty value is no value) so spacing noise is no change. The
//! filters come first (include, then exclude), then the key. Items without
//! a key are counted and left out. When two items share a key the first on
//! the page wins and the key is reported as a duplicate, so the result does
//! not depend on anything but the page's order.
//!
//! A run is a baseline (nothing reported as new) on the monitor's first run
//! and when the input changed since the snapshot: a new field, filter or
//! key would otherwise report every item as changed, new or removed. An
//! item that moved past the last page read is reported as removed.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::input::{ExtractItemsInput, ItemKey, KeywordFilter};
use crate::outcome::BaselineReason;
use crate::text;
use crate::version::FormatV1;

/// Most items kept per run; the rest are left out and the outcome says so.
pub const MAX_ITEMS: usize = 10_000;
/// Most duplicate keys listed in an outcome (all are counted).
const MAX_LISTED_DUPLICATES: usize = 100;

/// One extracted item: field name to value.
pub type Record = BTreeMap<String, Option<String>>;

/// An item with its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    pub key: String,
    pub fields: Record,
}

/// One field of an item that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// An item present before and now, with different values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangedItem {
    pub key: String,
    /// Its values now.
    pub fields: Record,
    /// What changed, by field name.
    pub changes: Vec<FieldChange>,
}

/// What an `extract_items` monitor keeps between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemsSnapshot {
    pub version: FormatV1,
    /// Fingerprint of the input that produced `items`.
    pub rules: String,
    /// The items kept, in page order.
    pub items: Vec<Item>,
}

/// What one run of `extract_items` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemsOutcome {
    /// Set when nothing was compared, with the reason.
    pub baseline: Option<BaselineReason>,
    /// Items kept this run (after filters, with a key, without duplicates).
    pub total: u32,
    /// Items not seen on the previous run, in page order.
    pub new: Vec<Item>,
    /// Items of the previous run not seen now, in their old order.
    pub removed: Vec<Item>,
    /// Items whose values changed, in page order.
    pub changed: Vec<ChangedItem>,
    /// Items the include and exclude filters left out.
    pub filtered_out: u32,
    /// Items left out because their key was already taken on this run.
    pub duplicates: u32,
    /// The keys that were taken more than once (the first 100).
    pub duplicate_keys: Vec<String>,
    /// Items left out because their key fields were empty.
    pub without_key: u32,
    /// More than [`MAX_ITEMS`] items were kept; the rest were left out.
    pub truncated: bool,
}

impl ItemsOutcome {
    /// Anything new, removed or changed (never on a baseline).
    pub fn changed_anything(&self) -> bool {
        !(self.new.is_empty() && self.removed.is_empty() && self.changed.is_empty())
    }
}

/// A run's results: what to record and what to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemsRun {
    pub outcome: ItemsOutcome,
    pub snapshot: ItemsSnapshot,
}

/// Runs `extract_items` on `records` (in page order) against `previous`.
pub fn extract_items(
    input: &ExtractItemsInput,
    records: &[Record],
    previous: Option<&ItemsSnapshot>,
) -> ItemsRun {
    let rules = rules_fingerprint(input);
    let baseline = match previous {
        None => Some(BaselineReason::FirstRun),
        Some(p) if p.rules != rules => Some(BaselineReason::RulesChanged),
        Some(_) => None,
    };
    let mut outcome = ItemsOutcome {
        baseline,
        total: 0,
        new: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        filtered_out: 0,
        duplicates: 0,
        duplicate_keys: Vec::new(),
        without_key: 0,
        truncated: false,
    };
    let include = input.include.as_ref().map(Matcher::new);
    let exclude = input.exclude.as_ref().map(Matcher::new);
    let mut items: Vec<Item> = Vec::new();
    let mut seen = HashSet::new();
    let mut listed_duplicates = BTreeSet::new();
    for record in records {
        let fields = clean(record);
        let included = include.as_ref().is_none_or(|m| m.matches(&fields));
        let excluded = exclude.as_ref().is_some_and(|m| m.matches(&fields));
        if !included || excluded {
            outcome.filtered_out += 1;
            continue;
        }
        let Some(key) = key_of(&input.key, &fields) else {
            outcome.without_key += 1;
            continue;
        };
        if !seen.insert(key.clone()) {
            outcome.duplicates += 1;
            if outcome.duplicate_keys.len() < MAX_LISTED_DUPLICATES
                && listed_duplicates.insert(key.clone())
            {
                outcome.duplicate_keys.push(key);
            }
            continue;
        }
        if items.len() == MAX_ITEMS {
            outcome.truncated = true;
            break;
        }
        items.push(Item { key, fields });
    }
    outcome.total = u32::try_from(items.len()).unwrap_or(u32::MAX);

    if let Some(previous) = previous.filter(|_| baseline.is_none()) {
        let before: BTreeMap<&str, &Record> = previous
            .items
            .iter()
            .map(|item| (item.key.as_str(), &item.fields))
            .collect();
        for item in &items {
            match before.get(item.key.as_str()) {
                None => outcome.new.push(item.clone()),
                Some(old) => {
                    let changes = field_changes(old, &item.fields);
                    if !changes.is_empty() {
                        outcome.changed.push(ChangedItem {
                            key: item.key.clone(),
                            fields: item.fields.clone(),
                            changes,
                        });
                    }
                }
            }
        }
        outcome.removed = previous
            .items
            .iter()
            .filter(|old| !seen.contains(&old.key))
            .cloned()
            .collect();
    }
    ItemsRun {
        outcome,
        snapshot: ItemsSnapshot {
            version: FormatV1,
            rules,
            items,
        },
    }
}

/// Values with white space collapsed; empty values become none.
fn clean(record: &Record) -> Record {
    record
        .iter()
        .map(|(name, value)| {
            let value = value
                .as_deref()
                .map(text::collapse)
                .filter(|v| !v.is_empty());
            (name.clone(), value)
        })
        .collect()
}

/// The item's key, or none when its key fields are empty.
fn key_of(key: &ItemKey, fields: &Record) -> Option<String> {
    let value = |name: &str| fields.get(name).cloned().flatten();
    match key {
        ItemKey::Field(name) => value(name),
        ItemKey::Hash(names) => {
            let values: Vec<Option<String>> = names.iter().map(|n| value(n)).collect();
            if values.iter().all(Option::is_none) {
                return None;
            }
            // Each value is length-prefixed so ("ab", "c") and ("a", "bc")
            // hash differently; a missing value differs from an empty one.
            let mut hasher = Sha256::new();
            for value in &values {
                match value {
                    Some(v) => {
                        hasher.update(b"s");
                        hasher.update((v.len() as u64).to_be_bytes());
                        hasher.update(v.as_bytes());
                    }
                    None => hasher.update(b"n"),
                }
            }
            Some(hex::encode(&hasher.finalize()[..16]))
        }
    }
}

/// A keyword filter, folded once for the whole run.
struct Matcher<'a> {
    keywords: Vec<String>,
    fields: &'a [String],
}

impl<'a> Matcher<'a> {
    fn new(filter: &'a KeywordFilter) -> Self {
        Self {
            keywords: filter.keywords.iter().map(|k| text::fold(k)).collect(),
            fields: &filter.fields,
        }
    }

    fn matches(&self, fields: &Record) -> bool {
        let mut searched = fields
            .iter()
            .filter(|(name, _)| self.fields.is_empty() || self.fields.contains(name))
            .filter_map(|(_, value)| value.as_deref());
        searched.any(|value| {
            let value = text::fold(value);
            self.keywords.iter().any(|k| value.contains(k.as_str()))
        })
    }
}

/// The fields whose values differ, by name.
fn field_changes(before: &Record, after: &Record) -> Vec<FieldChange> {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let old = before.get(name).cloned().flatten();
            let new = after.get(name).cloned().flatten();
            (old != new).then(|| FieldChange {
                field: name.clone(),
                before: old,
                after: new,
            })
        })
        .collect()
}

/// SHA-256 (hex, first 16 bytes) of the whole input: any change to what is
/// extracted, filtered or keyed changes what the items mean.
fn rules_fingerprint(input: &ExtractItemsInput) -> String {
    let json = serde_json::to_string(input).unwrap_or_default();
    hex::encode(&Sha256::digest(json.as_bytes())[..16])
}

/// What changed between two `extract_items` snapshots of one monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemsDiff {
    /// The two snapshots were extracted with different rules (input), so
    /// their items may not mean the same.
    pub rules_changed: bool,
    /// Items of `after` not in `before`, in `after`'s order.
    pub new: Vec<Item>,
    /// Items of `before` not in `after`, in `before`'s order.
    pub removed: Vec<Item>,
    /// Items in both with different values, in `after`'s order.
    pub changed: Vec<ChangedItem>,
}

/// The items new, removed and changed from `before` to `after`, by key
/// (whatever the rules; `rules_changed` says whether they differ).
pub fn compare_items(before: &ItemsSnapshot, after: &ItemsSnapshot) -> ItemsDiff {
    let old: BTreeMap<&str, &Record> = before
        .items
        .iter()
        .map(|item| (item.key.as_str(), &item.fields))
        .collect();
    let now: HashSet<&str> = after.items.iter().map(|item| item.key.as_str()).collect();
    let mut diff = ItemsDiff {
        rules_changed: before.rules != after.rules,
        new: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    for item in &after.items {
        match old.get(item.key.as_str()) {
            None => diff.new.push(item.clone()),
            Some(fields) => {
                let changes = field_changes(fields, &item.fields);
                if !changes.is_empty() {
                    diff.changed.push(ChangedItem {
                        key: item.key.clone(),
                        fields: item.fields.clone(),
                        changes,
                    });
                }
            }
        }
    }
    diff.removed = before
        .items
        .iter()
        .filter(|item| !now.contains(item.key.as_str()))
        .cloned()
        .collect();
    diff
}
