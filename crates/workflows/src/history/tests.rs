//! Stored snapshots compared and bounded.

use std::collections::BTreeMap;

use super::*;
use crate::items::{ChangedItem, FieldChange, Item, ItemsSnapshot};
use crate::page_change::PageSnapshot;
use crate::smoke::SmokeSnapshot;
use crate::version::FormatV1;

fn page(text: &str) -> Snapshot {
    Snapshot::PageChange(PageSnapshot {
        version: FormatV1,
        rules: "r".to_owned(),
        text: text.to_owned(),
        screenshot_sha256: None,
        values: BTreeMap::new(),
    })
}

fn item(key: &str, title: &str) -> Item {
    Item {
        key: key.to_owned(),
        fields: [("title".to_owned(), Some(title.to_owned()))]
            .into_iter()
            .collect(),
    }
}

fn items_snapshot(rules: &str, items: &[(&str, &str)]) -> ItemsSnapshot {
    ItemsSnapshot {
        version: FormatV1,
        rules: rules.to_owned(),
        items: items.iter().map(|(k, t)| item(k, t)).collect(),
    }
}

fn items(rules: &str, list: &[(&str, &str)]) -> Snapshot {
    Snapshot::ExtractItems(items_snapshot(rules, list))
}

fn smoke() -> Snapshot {
    Snapshot::SmokeCheck(SmokeSnapshot {
        version: FormatV1,
        passed: true,
        failing_since: None,
    })
}

fn check(from: Snapshot, to: Snapshot, expected: Result<serde_json::Value, DiffError>) {
    let got = diff_snapshots(&from, &to).map(|diff| serde_json::to_value(diff).unwrap());
    assert_eq!(got, expected);
}

#[test]
fn page_texts_are_diffed_line_by_line() {
    let diff = diff_snapshots(&page("a\nb\nc\n"), &page("a\nB\nc\nd\n")).unwrap();
    let SnapshotDiff::PageChange(text) = diff else {
        panic!("a page diff");
    };
    assert_eq!((text.added, text.removed), (2, 1));
    assert_eq!(
        text.unified,
        "--- previous\n+++ current\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n"
    );
    assert_eq!(text.hunks.len(), 1);
}

#[test]
fn the_same_text_is_an_empty_diff() {
    check(
        page("same\n"),
        page("same\n"),
        Ok(serde_json::json!({
            "added": 0, "removed": 0, "unified": "", "hunks": [], "truncated": false
        })),
    );
}

#[test]
fn items_new_removed_and_changed_by_key() {
    let diff = compare_items(
        &items_snapshot("r", &[("1", "Rust"), ("2", "Go"), ("3", "C")]),
        &items_snapshot("r", &[("4", "Zig"), ("1", "Rust 2"), ("3", "C")]),
    );
    assert_eq!(
        diff,
        ItemsDiff {
            rules_changed: false,
            new: vec![item("4", "Zig")],
            removed: vec![item("2", "Go")],
            changed: vec![ChangedItem {
                key: "1".to_owned(),
                fields: item("1", "Rust 2").fields,
                changes: vec![FieldChange {
                    field: "title".to_owned(),
                    before: Some("Rust".to_owned()),
                    after: Some("Rust 2".to_owned()),
                }],
            }],
        }
    );
}

#[test]
fn items_under_other_rules_say_so() {
    check(
        items("a", &[("1", "x")]),
        items("b", &[("1", "x")]),
        Ok(serde_json::json!({
            "rules_changed": true, "new": [], "removed": [], "changed": []
        })),
    );
}

#[test]
fn snapshots_of_two_workflows_are_refused() {
    check(
        page("a"),
        items("r", &[]),
        Err(DiffError::Mismatch {
            from: WorkflowKind::PageChange,
            to: WorkflowKind::ExtractItems,
        }),
    );
    check(smoke(), smoke(), Err(DiffError::NothingToCompare));
}

#[test]
fn a_long_text_is_cut_on_a_character_boundary() {
    // 'é' is two bytes: the cut falls inside one and moves back.
    let text = format!("a{}", "é".repeat(MAX_LISTED_TEXT_BYTES));
    let (bounded, truncated) = bounded_snapshot(page(&text));
    let Snapshot::PageChange(bounded) = bounded else {
        panic!("a page");
    };
    assert!(truncated);
    assert_eq!(bounded.text.len(), MAX_LISTED_TEXT_BYTES - 1);
    assert_eq!(bounded_snapshot(page("short")), (page("short"), false));
}

#[test]
fn a_long_list_keeps_its_first_items() {
    let many: Vec<(String, String)> = (0..MAX_LISTED_ITEMS + 5)
        .map(|i| (i.to_string(), format!("t{i}")))
        .collect();
    let list: Vec<(&str, &str)> = many.iter().map(|(k, t)| (k.as_str(), t.as_str())).collect();
    let (bounded, truncated) = bounded_snapshot(items("r", &list));
    let Snapshot::ExtractItems(bounded) = bounded else {
        panic!("items");
    };
    assert!(truncated);
    assert_eq!(bounded.items.len(), MAX_LISTED_ITEMS);
    assert_eq!(bounded.items[0], item("0", "t0"));
}
