//! Smoke verdicts over captured facts.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::validate::from_json;

fn input(json: serde_json::Value) -> SmokeCheckInput {
    let input: SmokeCheckInput = from_json(&json).unwrap();
    input.validate().unwrap();
    input
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
}

/// A healthy shop page, as the browser engine captures it.
fn healthy() -> SmokeCapture {
    SmokeCapture {
        load_error: None,
        status: Some(200),
        redirects: vec!["http://shop.test/".to_owned()],
        load_ms: Some(420),
        matched_selectors: vec!["#cart".to_owned(), "nav a".to_owned()],
        page_text: "Welcome to the Shop\nAdd to cart\nFree delivery".to_owned(),
        console_errors: Some(Vec::new()),
        tls_not_after: Some(Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap()),
        observed_at: now(),
    }
}

fn strict() -> SmokeCheckInput {
    input(json!({
        "status": {"exact": 200},
        "max_redirects": 1,
        "max_load_ms": 2000,
        "required_selectors": ["#cart", "nav a"],
        "required_texts": ["add to CART"],
        "forbidden_texts": ["Internal Server Error"],
        "allow_console_errors": false,
        "tls_min_days": 14
    }))
}

/// Judges `capture` (after `previous`) and checks the verdict: passed, and
/// the messages of the failed checks in order.
fn check(
    input: &SmokeCheckInput,
    capture: &SmokeCapture,
    previous: Option<&SmokeSnapshot>,
    expected: (bool, &[&str]),
) -> SmokeRun {
    let run = smoke_check(input, capture, previous);
    let failed: Vec<&str> = run
        .outcome
        .failed_checks()
        .map(|c| c.message.as_str())
        .collect();
    assert_eq!(
        (run.outcome.passed, failed.as_slice()),
        expected,
        "{:#?}",
        run.outcome
    );
    assert_eq!(run.outcome.failures as usize, failed.len());
    run
}

#[test]
fn a_healthy_page_passes_every_check() {
    let run = check(&strict(), &healthy(), None, (true, &[]));
    insta::assert_json_snapshot!(run.outcome.checks);
}

#[test]
fn every_failed_check_is_listed_with_a_sentence() {
    let broken = SmokeCapture {
        status: Some(503),
        redirects: vec![
            "http://shop.test/".to_owned(),
            "https://shop.test/".to_owned(),
        ],
        load_ms: Some(3_150),
        matched_selectors: vec!["nav a".to_owned()],
        page_text: "Oops\nInternal  server error".to_owned(),
        console_errors: Some(vec![
            "Uncaught TypeError: cart is undefined".to_owned(),
            "Failed to load resource".to_owned(),
        ]),
        tls_not_after: Some(Utc.with_ymd_and_hms(2025, 3, 6, 12, 0, 0).unwrap()),
        ..healthy()
    };
    let run = check(
        &strict(),
        &broken,
        None,
        (
            false,
            &[
                "status 503 is not the expected 200",
                "2 redirects were followed; at most 1 allowed",
                "the page took 3150 ms to load; the limit is 2000 ms",
                "no element matches `#cart`",
                "\"add to CART\" does not appear on the page",
                "the forbidden text \"Internal Server Error\" appears on the page",
                "2 console errors were logged; the first: \"Uncaught TypeError: cart is undefined\"",
                "the TLS certificate expires in 5 days (2025-03-06); at least 14 days are required",
            ],
        ),
    );
    assert!(run.outcome.newly_failed && !run.outcome.recovered);
    assert_eq!(run.outcome.failing_since, Some(now()));
}

#[test]
fn a_page_that_did_not_load_fails_on_that_alone() {
    let down = SmokeCapture {
        load_error: Some("connection refused".to_owned()),
        status: None,
        tls_not_after: None,
        ..healthy()
    };
    let run = check(
        &strict(),
        &down,
        None,
        (false, &["the page did not load: connection refused"]),
    );
    assert_eq!(run.outcome.checks.len(), 1);
    // An expired certificate is judged even so: it is often the cause.
    let expired = SmokeCapture {
        load_error: Some("invalid peer certificate: Expired".to_owned()),
        tls_not_after: Some(Utc.with_ymd_and_hms(2025, 2, 27, 0, 0, 0).unwrap()),
        ..down
    };
    check(
        &strict(),
        &expired,
        None,
        (
            false,
            &[
                "the page did not load: invalid peer certificate: Expired",
                "the TLS certificate expired on 2025-02-27",
            ],
        ),
    );
}

#[test]
fn what_the_engine_could_not_see_is_skipped_not_failed() {
    let http_engine = SmokeCapture {
        console_errors: None,
        tls_not_after: None,
        load_ms: None,
        ..healthy()
    };
    let run = check(&strict(), &http_engine, None, (true, &[]));
    let skipped: Vec<(CheckKind, &str)> = run
        .outcome
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Skipped)
        .map(|c| (c.check, c.message.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            (CheckKind::LoadTime, "the load time was not captured"),
            (
                CheckKind::ConsoleErrors,
                "console errors were not captured (they need the browser engine)"
            ),
            (CheckKind::TlsExpiry, "no TLS certificate was captured"),
        ]
    );
}

#[test]
fn status_rules_and_defaults() {
    let any_success = input(json!({}));
    let at = |status: u16| SmokeCapture {
        status: Some(status),
        ..healthy()
    };
    check(&any_success, &at(204), None, (true, &[]));
    check(
        &any_success,
        &at(302),
        None,
        (false, &["status 302 is outside the expected range 200-299"]),
    );
    let range = input(json!({"status": {"range": {"min": 200, "max": 399}}}));
    check(&range, &at(302), None, (true, &[]));
    let gone = input(json!({"status": {"exact": 410}}));
    check(&gone, &at(410), None, (true, &[]));
    // Console errors are allowed unless the input says otherwise.
    let noisy = SmokeCapture {
        console_errors: Some(vec!["warning".to_owned()]),
        ..healthy()
    };
    check(&any_success, &noisy, None, (true, &[]));
}

#[test]
fn failing_then_recovering_is_reported_on_the_edges() {
    let rules = input(json!({"required_selectors": ["#cart"]}));
    let missing = SmokeCapture {
        matched_selectors: Vec::new(),
        ..healthy()
    };
    let first = check(&rules, &healthy(), None, (true, &[]));
    assert!(!first.outcome.newly_failed && !first.outcome.recovered);
    // Fails: newly.
    let later = SmokeCapture {
        observed_at: now() + chrono::TimeDelta::minutes(5),
        ..missing.clone()
    };
    let failed = check(
        &rules,
        &later,
        Some(&first.snapshot),
        (false, &["no element matches `#cart`"]),
    );
    assert!(failed.outcome.newly_failed && !failed.outcome.recovered);
    // Still failing: not newly, and failing since the first failure.
    let even_later = SmokeCapture {
        observed_at: now() + chrono::TimeDelta::minutes(10),
        ..missing
    };
    let still = check(
        &rules,
        &even_later,
        Some(&failed.snapshot),
        (false, &["no element matches `#cart`"]),
    );
    assert!(!still.outcome.newly_failed && !still.outcome.recovered);
    assert_eq!(
        still.outcome.failing_since,
        Some(now() + chrono::TimeDelta::minutes(5))
    );
    // Passes again: recovered, once.
    let back = check(&rules, &healthy(), Some(&still.snapshot), (true, &[]));
    assert!(back.outcome.recovered && !back.outcome.newly_failed);
    assert_eq!(back.snapshot.failing_since, None);
    let steady = check(&rules, &healthy(), Some(&back.snapshot), (true, &[]));
    assert!(!steady.outcome.recovered);
}

fn check_valid(json: serde_json::Value, expected: Result<(), (&str, &str)>) {
    let got = from_json::<SmokeCheckInput>(&json).and_then(|input| input.validate());
    match (got, expected) {
        (Ok(()), Ok(())) => {}
        (Err(err), Err((field, message))) => {
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(err.message.contains(message), "{json}: {err}");
        }
        (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn input_errors_name_the_field() {
    check_valid(
        json!({"status": {"exact": 99}}),
        Err(("status.exact", "100-599")),
    );
    check_valid(
        json!({"status": {"range": {"min": 500, "max": 400}}}),
        Err(("status.range", "min (500) is above max (400)")),
    );
    check_valid(json!({"status": 200}), Err(("status", "expected")));
    check_valid(
        json!({"max_redirects": 21}),
        Err(("max_redirects", "at most 20")),
    );
    check_valid(
        json!({"max_load_ms": 0}),
        Err(("max_load_ms", "between 1 and 600000")),
    );
    check_valid(
        json!({"required_selectors": ["#a", "::"]}),
        Err(("required_selectors[1]", "invalid CSS selector")),
    );
    check_valid(
        json!({"required_texts": ["ok", ""]}),
        Err(("required_texts[1]", "must not be blank")),
    );
    check_valid(
        json!({"forbidden_texts": ["a\u{0}b"]}),
        Err(("forbidden_texts[0]", "NUL")),
    );
    check_valid(
        json!({"tls_min_days": 400}),
        Err(("tls_min_days", "at most 365")),
    );
    check_valid(
        json!({"allow_console_errors": "no"}),
        Err(("allow_console_errors", "invalid type")),
    );
}
