//! `run`, the one entry point the control plane calls: dispatch, the
//! summary each workflow gives, and the stored formats reading back.

use std::collections::BTreeMap;

use accord_workflows::{
    run, Capture, PageCapture, Previous, Record, RunError, RunOutcome, RunResult, SmokeCapture,
    Snapshot, Summary, WorkflowInput, WorkflowKind,
};
use chrono::{TimeZone, Utc};
use serde_json::json;

fn input(kind: WorkflowKind, json: serde_json::Value) -> WorkflowInput {
    WorkflowInput::parse(kind, &json).unwrap()
}

fn page(body: &str) -> Capture {
    Capture::PageChange(PageCapture {
        body: body.to_owned(),
        content_type: Some("text/html".to_owned()),
        screenshot_png: None,
    })
}

fn jobs(links: &[&str]) -> Capture {
    Capture::ExtractItems(
        links
            .iter()
            .map(|link| {
                Record::from([
                    ("title".to_owned(), Some(format!("Job at {link}"))),
                    ("link".to_owned(), Some((*link).to_owned())),
                ])
            })
            .collect(),
    )
}

fn smoke(matched: &[&str]) -> Capture {
    Capture::SmokeCheck(SmokeCapture {
        load_error: None,
        status: Some(200),
        redirects: Vec::new(),
        load_ms: Some(100),
        matched_selectors: matched.iter().map(|s| (*s).to_owned()).collect(),
        page_text: "Status: all systems operational".to_owned(),
        console_errors: None,
        tls_not_after: None,
        observed_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
    })
}

/// Runs `captures` in order, each against the snapshot of the one before,
/// checking each run's summary and that what is stored reads back.
fn check(input: &WorkflowInput, captures: &[Capture], expected: &[Summary]) -> Vec<RunResult> {
    assert_eq!(captures.len(), expected.len());
    let mut results: Vec<RunResult> = Vec::new();
    for (capture, want) in captures.iter().zip(expected) {
        let previous = results.last().map(|r| Previous {
            snapshot: &r.snapshot,
            screenshot_png: None,
        });
        let result = run(input, capture, previous).unwrap();
        assert_eq!(
            &result.outcome.summary, want,
            "{:#?}",
            result.outcome.detail
        );
        assert_eq!(result.outcome.detail.kind(), input.kind());
        assert_eq!(result.snapshot.kind(), input.kind());
        // The stored forms read back to the same values.
        let outcome_json = serde_json::to_value(&result.outcome).unwrap();
        assert_eq!(outcome_json["version"], 1);
        assert_eq!(outcome_json["detail"]["workflow"], input.kind().as_str());
        let outcome: RunOutcome = serde_json::from_value(outcome_json).unwrap();
        assert_eq!(outcome, result.outcome);
        let snapshot_json = serde_json::to_value(&result.snapshot).unwrap();
        assert_eq!(snapshot_json["version"], 1);
        let snapshot: Snapshot = serde_json::from_value(snapshot_json).unwrap();
        assert_eq!(snapshot, result.snapshot);
        results.push(result);
    }
    results
}

#[test]
fn page_change_summaries() {
    let input = input(
        WorkflowKind::PageChange,
        json!({"values": [{"name": "price", "selector": ".price", "condition": {"below": 10}}]}),
    );
    let body = |price: &str, news: &str| format!("<p class=price>{price}</p><p>{news}</p>");
    let changed = Summary {
        changed: true,
        ..Summary::default()
    };
    let cheap = Summary {
        condition_met: true,
        ..Summary::default()
    };
    let results = check(
        &input,
        &[
            page(&body("$12.00", "a")),
            page(&body("$12.00", "a")),
            page(&body("$12.00", "b")),
            page(&body("$9.00", "b")),
            page(&body("$8.00", "b")),
        ],
        &[
            Summary::default(),
            Summary::default(),
            changed,
            Summary {
                changed: true,
                condition_newly_met: true,
                ..cheap
            },
            Summary {
                changed: true,
                ..cheap
            },
        ],
    );
    assert!(results[2].outcome.summary.is_news());
    assert!(!results[1].outcome.summary.is_news());
}

#[test]
fn extract_items_summaries() {
    let input = input(
        WorkflowKind::ExtractItems,
        json!({"item_selector": "li", "fields": {"title": {}, "link": {"selector": "a", "attribute": "href"}}, "key": {"field": "link"}}),
    );
    check(
        &input,
        &[
            jobs(&["/1", "/2"]),
            jobs(&["/3", "/1"]),
            jobs(&["/3", "/1"]),
        ],
        &[
            Summary::default(),
            Summary {
                changed: true,
                new_items: 1,
                removed_items: 1,
                ..Summary::default()
            },
            Summary::default(),
        ],
    );
}

#[test]
fn smoke_check_summaries() {
    let input = input(
        WorkflowKind::SmokeCheck,
        json!({"required_selectors": ["#status"]}),
    );
    let failed = Summary {
        failed: true,
        ..Summary::default()
    };
    check(
        &input,
        &[
            smoke(&["#status"]),
            smoke(&[]),
            smoke(&[]),
            smoke(&["#status"]),
        ],
        &[
            Summary::default(),
            Summary {
                newly_failed: true,
                ..failed
            },
            failed,
            Summary {
                recovered: true,
                ..Summary::default()
            },
        ],
    );
}

#[test]
fn mismatched_captures_and_snapshots_are_refused() {
    let pages = input(WorkflowKind::PageChange, json!({}));
    let err = run(&pages, &jobs(&["/1"]), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "run page_change: the capture is for extract_items"
    );
    let items = input(
        WorkflowKind::ExtractItems,
        json!({"item_selector": "li", "fields": {"link": {}}, "key": {"field": "link"}}),
    );
    let snapshot = run(&items, &jobs(&["/1"]), None).unwrap().snapshot;
    let previous = Previous {
        snapshot: &snapshot,
        screenshot_png: None,
    };
    let err = run(&pages, &page("<p>x</p>"), Some(previous)).unwrap_err();
    assert_eq!(
        err,
        RunError::SnapshotMismatch {
            input: WorkflowKind::PageChange,
            snapshot: WorkflowKind::ExtractItems
        }
    );
    let err = run(&pages, &page(&"<b>".repeat(600)), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "read the page: the page nests elements more than 512 deep"
    );
}

#[test]
fn stored_formats_of_another_version_are_refused() {
    let stored =
        json!({"workflow": "smoke_check", "version": 2, "passed": true, "failing_since": null});
    let err = serde_json::from_value::<Snapshot>(stored).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported format version 2; this build reads version 1"
    );
    let stored = json!({"workflow": "smoke_check", "version": 1, "passed": false, "failing_since": "2025-01-01T00:00:00Z"});
    assert!(
        matches!(serde_json::from_value::<Snapshot>(stored), Ok(Snapshot::SmokeCheck(s)) if !s.passed)
    );
}

#[test]
fn a_stored_outcome_reads_like_its_documentation() {
    let input = input(WorkflowKind::PageChange, json!({"selectors": ["main"]}));
    let first = run(
        &input,
        &page("<main><p>Old headline</p><p>Body</p></main>"),
        None,
    )
    .unwrap();
    let previous = Previous {
        snapshot: &first.snapshot,
        screenshot_png: None,
    };
    let second = run(
        &input,
        &page("<main><p>New headline</p><p>Body</p></main>"),
        Some(previous),
    )
    .unwrap();
    insta::assert_json_snapshot!(second.outcome);
    let snapshot = serde_json::to_value(&second.snapshot).unwrap();
    let keys: BTreeMap<String, serde_json::Value> = serde_json::from_value(snapshot).unwrap();
    assert_eq!(
        keys.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "rules",
            "screenshot_sha256",
            "text",
            "values",
            "version",
            "workflow"
        ]
    );
}
