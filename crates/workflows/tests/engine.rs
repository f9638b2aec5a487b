//! The jobs `expand` builds, run through the HTTP engine's real page
//! processing, give results `capture_from_result` reads as each workflow
//! expects: the round trip from input to outcome without a network.

use std::sync::atomic::AtomicBool;

use accord_engine::{process_page, PageLimits};
use accord_model::{Engine, JobResult, Step, TargetUrl, Timings};
use accord_workflows::{
    capture_from_result, expand, run, JobTarget, Previous, RunResult, WorkflowInput, WorkflowKind,
};
use chrono::TimeZone;
use serde_json::{json, Value};

/// Runs `input`'s job on `body` (everything after its `navigate`) and
/// then the workflow against `previous`.
fn check_run(
    kind: WorkflowKind,
    input: Value,
    body: &str,
    status: u16,
    previous: Option<&RunResult>,
) -> RunResult {
    let input = WorkflowInput::parse(kind, &input).unwrap();
    let url = TargetUrl::parse("https://example.com/").unwrap();
    let spec = expand(
        &input,
        &JobTarget {
            url: &url,
            engine: Engine::Http,
            timeout_seconds: 30,
        },
    )
    .unwrap();
    let steps: Vec<Step> = spec
        .steps
        .into_iter()
        .filter(|step| !matches!(step, Step::Navigate { .. }))
        .collect();
    let extracted = process_page(
        body,
        status,
        &steps,
        &PageLimits::default(),
        &AtomicBool::new(false),
    )
    .unwrap();
    let result = JobResult {
        extracted,
        status,
        final_url: url.as_str().to_owned(),
        timings: Timings::default(),
        engine: accord_model::RunEngine::Http,
        engine_reason: None,
        artifacts: Vec::new(),
    };
    let at = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let capture = capture_from_result(&input, &result, &url, None, at);
    let previous = previous.map(|p| Previous {
        snapshot: &p.snapshot,
        screenshot_png: None,
    });
    run(&input, &capture, previous).unwrap()
}

fn outcome(run: &RunResult) -> Value {
    serde_json::to_value(&run.outcome).unwrap()
}

#[test]
fn page_change_sees_a_change_in_the_watched_part_only() {
    let page = |main: &str, aside: &str| {
        format!(
            "<!doctype html><html><head><title>t</title></head><body>\
             <main><h1>News</h1><p>{main}</p><p>Price: $1,299.00</p></main><aside>{aside}</aside></body></html>"
        )
    };
    let input = json!({
        "selectors": ["main"],
        "values": [{"name": "price", "selector": "main p:nth-of-type(2)"}]
    });
    let first = check_run(
        WorkflowKind::PageChange,
        input.clone(),
        &page("one", "ad 1"),
        200,
        None,
    );
    let same = check_run(
        WorkflowKind::PageChange,
        input.clone(),
        &page("one", "ad 2"),
        200,
        Some(&first),
    );
    assert_eq!(outcome(&same)["summary"]["changed"], json!(false));
    let changed = check_run(
        WorkflowKind::PageChange,
        input,
        &page("two", "ad 2"),
        200,
        Some(&same),
    );
    let detail = outcome(&changed)["detail"].clone();
    assert_eq!(detail["changed"], json!(true));
    assert_eq!(detail["diff"]["added"], json!(1));
    assert_eq!(detail["diff"]["removed"], json!(1));
    let unified = detail["diff"]["unified"].as_str().unwrap();
    assert!(
        unified.contains("-one") && unified.contains("+two"),
        "{unified}"
    );
    assert_eq!(detail["values"][0]["value"], json!(1299.0));
}

#[test]
fn page_change_compares_json_as_json() {
    let input = json!({"format": "json"});
    let first = check_run(
        WorkflowKind::PageChange,
        input.clone(),
        r#"{"b": 1, "a": [1, 2]}"#,
        200,
        None,
    );
    let reordered = check_run(
        WorkflowKind::PageChange,
        input.clone(),
        r#"{"a": [1, 2], "b": 1}"#,
        200,
        Some(&first),
    );
    assert_eq!(outcome(&reordered)["summary"]["changed"], json!(false));
    let changed = check_run(
        WorkflowKind::PageChange,
        input,
        r#"{"a": [1, 3], "b": 1}"#,
        200,
        Some(&reordered),
    );
    assert_eq!(outcome(&changed)["summary"]["changed"], json!(true));
}

#[test]
fn extract_items_reads_records_from_the_page() {
    let input = json!({
        "item_selector": "li.job",
        "fields": {"title": {"selector": "h2"}, "link": {"selector": "a", "attribute": "href"}},
        "key": {"field": "link"}
    });
    let page = |jobs: &[(&str, &str)]| {
        let items: String = jobs
            .iter()
            .map(|(title, link)| {
                format!("<li class=job><h2>{title}</h2><a href='{link}'>apply</a></li>")
            })
            .collect();
        format!("<html><body><ul>{items}</ul></body></html>")
    };
    let first = check_run(
        WorkflowKind::ExtractItems,
        input.clone(),
        &page(&[("Cook", "/1"), ("Pilot", "/2")]),
        200,
        None,
    );
    assert_eq!(outcome(&first)["detail"]["total"], json!(2));
    let next = check_run(
        WorkflowKind::ExtractItems,
        input,
        &page(&[("Pilot", "/2"), ("Engineer", "/3")]),
        200,
        Some(&first),
    );
    let summary = outcome(&next)["summary"].clone();
    assert_eq!(
        (
            summary["new_items"].clone(),
            summary["removed_items"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(
        outcome(&next)["detail"]["new"][0]["fields"]["title"],
        json!("Engineer")
    );
}

#[test]
fn smoke_check_lists_every_failed_check() {
    let input = json!({
        "required_selectors": ["#app", "footer"],
        "required_texts": ["Welcome"],
        "forbidden_texts": ["Error"]
    });
    let good = "<html><body><div id=app>Welcome</div><footer>f</footer></body></html>";
    let passed = check_run(WorkflowKind::SmokeCheck, input.clone(), good, 200, None);
    assert_eq!(
        outcome(&passed)["detail"]["passed"],
        json!(true),
        "{}",
        outcome(&passed)
    );
    let bad = "<html><body><div>Internal Error</div></body></html>";
    let failed = check_run(WorkflowKind::SmokeCheck, input, bad, 500, Some(&passed));
    let detail = outcome(&failed)["detail"].clone();
    assert_eq!(detail["passed"], json!(false));
    // Status, both selectors, the required text and the forbidden one.
    assert_eq!(detail["failures"], json!(5), "{detail}");
    assert_eq!(outcome(&failed)["summary"]["newly_failed"], json!(true));
}
