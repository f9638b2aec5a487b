use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::kind::WorkflowKind;
use crate::run::run;

fn url() -> TargetUrl {
    TargetUrl::parse("https://example.com/page").unwrap()
}

fn input(kind: WorkflowKind, json: serde_json::Value) -> WorkflowInput {
    WorkflowInput::parse(kind, &json).unwrap()
}

/// Expands `input` on `engine`; `Ok(steps as JSON)` or `Err(field)`.
fn check_expand(
    kind: WorkflowKind,
    json: serde_json::Value,
    engine: Engine,
    expected: Result<serde_json::Value, &str>,
) {
    let input = input(kind, json.clone());
    let target = JobTarget {
        url: &url(),
        engine,
        timeout_seconds: 60,
    };
    match (expand(&input, &target), expected) {
        (Ok(spec), Ok(steps)) => {
            assert_eq!(spec.engine, engine);
            assert_eq!(spec.timeout_seconds, 60);
            assert_eq!(serde_json::to_value(&spec.steps).unwrap(), steps, "{json}");
            // What the expansion makes is a job the queue accepts.
            let job = accord_model::NewJob {
                queue: Default::default(),
                priority: Default::default(),
                run_at: None,
                max_attempts: 1,
                timeout_seconds: 60,
                engine,
                steps: spec.steps,
                labels: Default::default(),
                retry: Default::default(),
            };
            job.validate(&accord_model::Limits::default()).unwrap();
        }
        (Err(err), Err(field)) => assert_eq!(err.field, field, "{json}: {err}"),
        (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn page_change_reads_the_whole_page() {
    let navigate = json!({"action": "navigate", "url": "https://example.com/page"});
    check_expand(
        WorkflowKind::PageChange,
        json!({"selectors": ["main"], "ignore": ["\\d+"]}),
        Engine::Http,
        Ok(
            json!([navigate, {"action": "extract", "fields": {"page": {"selector": "html", "html": true}}}]),
        ),
    );
    check_expand(
        WorkflowKind::PageChange,
        json!({"format": "json"}),
        Engine::Http,
        Ok(json!([navigate, {"action": "extract", "fields": {"page": {"json_pointer": ""}}}])),
    );
    check_expand(
        WorkflowKind::PageChange,
        json!({"visual": {"threshold": 0.01}}),
        Engine::Browser,
        Ok(json!([
            navigate,
            {"action": "extract", "fields": {"page": {"selector": "html", "html": true}}},
            {"action": "screenshot", "width": 1280, "height": 800, "name": "monitor-screenshot.png"}
        ])),
    );
    check_expand(
        WorkflowKind::PageChange,
        json!({"visual": {"threshold": 0.01}}),
        Engine::Http,
        Err("visual"),
    );
}

#[test]
fn extract_items_reads_the_records() {
    check_expand(
        WorkflowKind::ExtractItems,
        json!({
            "item_selector": "li.job",
            "fields": {"title": {"selector": "h2"}, "link": {"selector": "a", "attribute": "href"}},
            "key": {"field": "link"}
        }),
        Engine::Http,
        Ok(json!([
            {"action": "navigate", "url": "https://example.com/page"},
            {"action": "extract", "fields": {"items": {"items": {
                "selector": "li.job",
                "fields": {"link": {"selector": "a", "attribute": "href"}, "title": {"selector": "h2"}}
            }}}}
        ])),
    );
}

#[test]
fn smoke_check_keeps_error_statuses_and_reads_each_selector() {
    check_expand(
        WorkflowKind::SmokeCheck,
        json!({"required_selectors": ["#app", "footer"], "required_texts": ["Welcome"]}),
        Engine::Http,
        Ok(json!([
            {"action": "navigate", "url": "https://example.com/page", "accept_error_status": true},
            {"action": "extract", "fields": {
                "page": {"selector": "html"},
                "required_0": {"selector": "#app", "all": true},
                "required_1": {"selector": "footer", "all": true}
            }}
        ])),
    );
}

fn result(extracted: serde_json::Value, status: u16, final_url: &str) -> JobResult {
    serde_json::from_value(json!({
        "extracted": extracted,
        "status": status,
        "final_url": final_url,
        "timings": {"total_ms": 120, "fetch_ms": 90, "process_ms": 30, "steps_ms": []}
    }))
    .unwrap()
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

#[test]
fn page_change_capture_feeds_the_diff() {
    let input = input(WorkflowKind::PageChange, json!({"selectors": ["main"]}));
    let capture = |main: &str| {
        capture_from_result(
            &input,
            &result(
                json!({"page": format!("<head></head><body><nav>menu</nav><main>{main}</main></body>")}),
                200,
                "https://example.com/page",
            ),
            &url(),
            None,
            at(),
        )
    };
    let first = run(&input, &capture("<p>one</p><p>two</p>"), None).unwrap();
    assert!(!first.outcome.summary.changed);
    let previous = crate::run::Previous {
        snapshot: &first.snapshot,
        screenshot_png: None,
    };
    let second = run(&input, &capture("<p>one</p><p>three</p>"), Some(previous)).unwrap();
    assert!(second.outcome.summary.changed);
    let crate::outcome::WorkflowOutcome::PageChange(detail) = &second.outcome.detail else {
        panic!("a page change outcome");
    };
    let diff = detail.diff.as_ref().unwrap();
    assert_eq!((diff.added, diff.removed), (1, 1));
    assert!(
        diff.unified.contains("-two") && diff.unified.contains("+three"),
        "{}",
        diff.unified
    );
}

#[test]
fn json_capture_is_compared_as_json() {
    let input = input(WorkflowKind::PageChange, json!({"format": "json"}));
    let capture = |doc: serde_json::Value| {
        capture_from_result(
            &input,
            &result(json!({"page": doc}), 200, "https://example.com/page"),
            &url(),
            None,
            at(),
        )
    };
    let Capture::PageChange(page) = capture(json!({"b": 1, "a": [1, 2]})) else {
        panic!("a page capture");
    };
    assert_eq!(page.content_type.as_deref(), Some("application/json"));
    let first = run(&input, &capture(json!({"b": 1, "a": [1, 2]})), None).unwrap();
    let previous = crate::run::Previous {
        snapshot: &first.snapshot,
        screenshot_png: None,
    };
    let same = run(
        &input,
        &capture(json!({"a": [1, 2], "b": 1})),
        Some(previous),
    )
    .unwrap();
    assert!(!same.outcome.summary.changed);
}

#[test]
fn extract_items_follows_the_next_link_up_to_max_pages() {
    let items = json!({"items": {"selector": "li.job", "fields": {"title": {"selector": "h2"}}}});
    let follow = json!({"action": "follow", "selector": "a[rel=next]", "optional": true});
    check_expand(
        WorkflowKind::ExtractItems,
        json!({
            "item_selector": "li.job",
            "fields": {"title": {"selector": "h2"}},
            "key": {"field": "title"},
            "pagination": {"next_selector": "a[rel=next]", "max_pages": 3}
        }),
        Engine::Http,
        Ok(json!([
            {"action": "navigate", "url": "https://example.com/page"},
            {"action": "extract", "fields": {"items": items}},
            follow,
            {"action": "extract", "fields": {"items_page_2": items}},
            follow,
            {"action": "extract", "fields": {"items_page_3": items}},
        ])),
    );
    // The most pages make a job the queue still accepts (checked inside).
    check_expand_len(50, 100);
}

/// Expands a 1-field `extract_items` with `pages` pages and checks its
/// step count (and that the queue accepts it).
fn check_expand_len(pages: u32, steps: usize) {
    let input = input(
        WorkflowKind::ExtractItems,
        json!({
            "item_selector": "li", "fields": {"title": {}}, "key": {"field": "title"},
            "pagination": {"next_selector": "a[rel=next]", "max_pages": pages}
        }),
    );
    let target = JobTarget {
        url: &url(),
        engine: Engine::Http,
        timeout_seconds: 60,
    };
    let spec = expand(&input, &target).unwrap();
    assert_eq!(spec.steps.len(), steps);
    let job = accord_model::NewJob {
        queue: Default::default(),
        priority: Default::default(),
        run_at: None,
        max_attempts: 1,
        timeout_seconds: 60,
        engine: Engine::Http,
        steps: spec.steps,
        labels: Default::default(),
        retry: Default::default(),
    };
    job.validate(&accord_model::Limits::default()).unwrap();
}

#[test]
fn items_capture_reads_every_page_in_order() {
    let input = input(
        WorkflowKind::ExtractItems,
        json!({"item_selector": "li", "fields": {"title": {}}, "key": {"field": "title"},
               "pagination": {"next_selector": "a[rel=next]", "max_pages": 3}}),
    );
    // The job ended after page 2 (no link to a third).
    let extracted = json!({
        "items": [{"title": "a"}, {"title": "b"}],
        "items_page_2": [{"title": "c"}]
    });
    let got = capture_from_result(
        &input,
        &result(extracted, 200, "https://example.com/page?p=2"),
        &url(),
        None,
        at(),
    );
    let titles: Vec<Record> = ["a", "b", "c"]
        .iter()
        .map(|t| Record::from([("title".to_owned(), Some((*t).to_owned()))]))
        .collect();
    assert_eq!(got, Capture::ExtractItems(titles));
}

#[test]
fn items_capture_maps_records() {
    let input = input(
        WorkflowKind::ExtractItems,
        json!({"item_selector": "li", "fields": {"title": {}, "link": {"selector": "a", "attribute": "href"}}, "key": {"field": "link"}}),
    );
    let check = |extracted: serde_json::Value, expected: Vec<Record>| {
        let got = capture_from_result(
            &input,
            &result(extracted.clone(), 200, "https://example.com/page"),
            &url(),
            None,
            at(),
        );
        assert_eq!(got, Capture::ExtractItems(expected), "{extracted}");
    };
    let record = |title: Option<&str>, link: Option<&str>| {
        Record::from([
            ("link".to_owned(), link.map(str::to_owned)),
            ("title".to_owned(), title.map(str::to_owned)),
        ])
    };
    check(json!({"items": []}), vec![]);
    check(json!({}), vec![]);
    check(
        json!({"items": [{"title": "Engineer", "link": "/1"}, {"title": "Cook", "link": null}]}),
        vec![
            record(Some("Engineer"), Some("/1")),
            record(Some("Cook"), None),
        ],
    );
}

#[test]
fn smoke_capture_reads_status_redirect_and_selectors() {
    let input = input(
        WorkflowKind::SmokeCheck,
        json!({"required_selectors": ["#app", "footer"], "required_texts": ["Welcome"]}),
    );
    let check = |extracted: serde_json::Value,
                 status: u16,
                 final_url: &str,
                 expected: (Vec<&str>, Vec<&str>, bool)| {
        let Capture::SmokeCheck(capture) = capture_from_result(
            &input,
            &result(extracted.clone(), status, final_url),
            &url(),
            None,
            at(),
        ) else {
            panic!("a smoke capture");
        };
        assert_eq!(capture.status, Some(status));
        assert_eq!(capture.load_ms, Some(90));
        assert_eq!(capture.matched_selectors, expected.0, "{extracted}");
        assert_eq!(capture.redirects, expected.1, "{final_url}");
        let verdict = crate::smoke_check(
            match &input {
                WorkflowInput::SmokeCheck(input) => input,
                _ => unreachable!(),
            },
            &capture,
            None,
        );
        assert_eq!(
            verdict.outcome.passed, expected.2,
            "{:?}",
            verdict.outcome.checks
        );
    };
    check(
        json!({"page": "Welcome home", "required_0": ["app"], "required_1": ["foot"]}),
        200,
        "https://example.com/page",
        (vec!["#app", "footer"], vec![], true),
    );
    check(
        json!({"page": "Welcome home", "required_0": [], "required_1": ["foot"]}),
        200,
        "https://example.com/page/",
        (vec!["footer"], vec![], false),
    );
    check(
        json!({"page": "Oops", "required_0": ["app"], "required_1": ["foot"]}),
        500,
        "https://example.com/login",
        (
            vec!["#app", "footer"],
            vec!["https://example.com/page"],
            false,
        ),
    );
}

#[test]
fn a_failed_load_fails_the_smoke_check() {
    let WorkflowInput::SmokeCheck(input) = input(WorkflowKind::SmokeCheck, json!({})) else {
        unreachable!()
    };
    let capture = capture_from_failure("connection refused", at());
    let verdict = crate::smoke_check(&input, &capture, None);
    assert!(!verdict.outcome.passed);
}
