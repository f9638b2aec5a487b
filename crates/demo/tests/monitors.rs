//! The demo monitors against the demo site: every input parses and
//! validates with accord-workflows, and the workflows' pure functions, fed
//! what the HTTP engine would capture at two or more ticks, report what the
//! script promises (a real diff, new and removed postings, a price crossing
//! its mark, a smoke check failing and recovering).
//!
//! The capture here stands in for the engine (it fetches over real HTTP and
//! reads the page with `scraper`); the end-to-end run through the binary is
//! the lead's `accord up --demo` test.

use accord_demo::{monitors, script, DemoMonitor, DemoSite, DEMO_SCHEDULE, DEMO_TAG};
use accord_model::Engine;
use accord_workflows::{
    diff_texts, run, Capture, DiffLine, LineKind, PageCapture, Previous, Record, RunResult,
    SmokeCapture, WorkflowInput, WorkflowKind, WorkflowOutcome,
};
use chrono::Utc;
use scraper::{Html, Selector};

fn parse(monitor: &DemoMonitor) -> WorkflowInput {
    WorkflowInput::parse(monitor.kind, &monitor.input)
        .unwrap_or_else(|err| panic!("{}: {err}", monitor.name))
}

fn find<'a>(monitors: &'a [DemoMonitor], path: &str) -> &'a DemoMonitor {
    monitors
        .iter()
        .find(|m| m.url.ends_with(path))
        .unwrap_or_else(|| panic!("no demo monitor on {path}"))
}

#[test]
fn every_demo_monitor_input_parses_and_validates() {
    let monitors = monitors("http://127.0.0.1:8081/");
    let kinds: Vec<WorkflowKind> = monitors.iter().map(|m| m.kind).collect();
    for kind in WorkflowKind::ALL {
        assert!(kinds.contains(&kind), "no demo monitor of {kind}");
    }
    let urls: Vec<&str> = monitors.iter().map(|m| m.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:8081/news",
            "http://127.0.0.1:8081/jobs",
            "http://127.0.0.1:8081/product",
            "http://127.0.0.1:8081/api/product.json",
            "http://127.0.0.1:8081/status",
        ]
    );
    for monitor in &monitors {
        let input = parse(monitor);
        assert_eq!(input.kind(), monitor.kind);
        // What is stored reads back the same.
        assert_eq!(
            WorkflowInput::parse(monitor.kind, &input.to_json()).unwrap(),
            input
        );
        assert_eq!(monitor.schedule, DEMO_SCHEDULE);
        assert_eq!(monitor.engine, Engine::Http);
        assert_eq!(monitor.tags, [DEMO_TAG]);
        assert!(!monitor.name.is_empty() && !monitor.shows.is_empty());
    }
    let names: std::collections::BTreeSet<&str> = monitors.iter().map(|m| m.name).collect();
    assert_eq!(names.len(), monitors.len(), "names are unique");
    // The price is tracked with a condition below the mark.
    let price = find(&monitors, "/product");
    assert_eq!(
        price.input["values"][0]["condition"]["below"],
        script::PRICE_MARK
    );
}

/// What the HTTP engine would capture for `monitor` now, followed the way
/// the monitor's input says.
async fn capture(monitor: &DemoMonitor) -> Capture {
    let input = parse(monitor);
    match input {
        WorkflowInput::PageChange(_) => {
            let response = reqwest::get(&monitor.url).await.unwrap();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned());
            Capture::PageChange(PageCapture {
                body: response.text().await.unwrap(),
                content_type,
                screenshot_png: None,
            })
        }
        WorkflowInput::ExtractItems(input) => {
            let mut records = Vec::new();
            let mut url = Some(monitor.url.clone());
            let mut pages = 0;
            let max_pages = input.pagination.as_ref().map_or(1, |p| p.max_pages);
            while let Some(next) = url.take() {
                if pages == max_pages {
                    break;
                }
                pages += 1;
                let body = reqwest::get(&next).await.unwrap().text().await.unwrap();
                let html = Html::parse_document(&body);
                let items = Selector::parse(input.item_selector.as_str()).unwrap();
                for item in html.select(&items) {
                    let mut record = Record::new();
                    for (name, field) in &input.fields {
                        let element = match &field.selector {
                            Some(css) => {
                                item.select(&Selector::parse(css.as_str()).unwrap()).next()
                            }
                            None => Some(item),
                        };
                        let value = element.and_then(|e| match &field.attribute {
                            Some(attribute) => e.value().attr(attribute).map(str::to_owned),
                            None => Some(e.text().collect()),
                        });
                        record.insert(name.clone(), value);
                    }
                    records.push(record);
                }
                if let Some(pagination) = &input.pagination {
                    let link = Selector::parse(pagination.next_selector.as_str()).unwrap();
                    url = html
                        .select(&link)
                        .next()
                        .and_then(|a| a.value().attr("href"))
                        .map(|href| {
                            let base = monitor.url.split("/jobs").next().unwrap();
                            format!("{base}{href}")
                        });
                }
            }
            Capture::ExtractItems(records)
        }
        WorkflowInput::SmokeCheck(input) => {
            let response = reqwest::get(&monitor.url).await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            let html = Html::parse_document(&body);
            let matched_selectors = input
                .required_selectors
                .iter()
                .filter(|css| {
                    html.select(&Selector::parse(css.as_str()).unwrap())
                        .next()
                        .is_some()
                })
                .map(|css| css.as_str().to_owned())
                .collect();
            let page_text = html.root_element().text().collect::<Vec<_>>().join(" ");
            Capture::SmokeCheck(SmokeCapture {
                load_error: None,
                status: Some(status),
                redirects: Vec::new(),
                load_ms: Some(5),
                matched_selectors,
                page_text,
                console_errors: None,
                tls_not_after: None,
                observed_at: Utc::now(),
            })
        }
    }
}

/// Runs `monitor` once at each of `ticks` (in order), each run against the
/// previous run's snapshot, as the control plane would.
async fn runs(site: &DemoSite, monitor: &DemoMonitor, ticks: &[u64]) -> Vec<RunResult> {
    let input = parse(monitor);
    let mut results: Vec<RunResult> = Vec::new();
    for &tick in ticks {
        while site.tick() < tick {
            site.advance();
        }
        assert_eq!(site.tick(), tick, "ticks must increase");
        let capture = capture(monitor).await;
        let previous = results.last().map(|r| Previous {
            snapshot: &r.snapshot,
            screenshot_png: None,
        });
        results.push(run(&input, &capture, previous).unwrap());
    }
    results
}

fn line(kind: LineKind, text: &str) -> DiffLine {
    DiffLine {
        kind,
        text: text.to_owned(),
    }
}

#[tokio::test]
async fn the_news_monitor_ignores_the_clock_and_counter_and_diffs_the_headlines() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let monitors = monitors(&site.base_url());
    let news = find(&monitors, "/news");
    let results = runs(&site, news, &[0, 1, 2, 3]).await;
    let changed: Vec<bool> = results.iter().map(|r| r.outcome.summary.changed).collect();
    assert_eq!(
        changed,
        [false, false, false, true],
        "only tick 3 brings news"
    );

    let WorkflowOutcome::PageChange(outcome) = &results[3].outcome.detail else {
        panic!("not a page_change outcome");
    };
    let diff = outcome.diff.as_ref().unwrap();
    assert_eq!((diff.added, diff.removed), (2, 2));
    let changes: Vec<&DiffLine> = diff
        .hunks
        .iter()
        .flat_map(|h| &h.lines)
        .filter(|l| l.kind != LineKind::Context)
        .collect();
    assert_eq!(
        changes,
        [
            &line(
                LineKind::Removed,
                "Library extends weekend opening hours New"
            ),
            &line(LineKind::Added, "Heatwave expected to ease by Thursday New"),
            &line(LineKind::Added, "Library extends weekend opening hours"),
            &line(
                LineKind::Removed,
                "City council approves new riverside park"
            ),
        ]
    );
    // What a person reads in `accord monitors diff`.
    insta::assert_snapshot!("news_diff_at_tick_3", diff.unified);

    // Without the monitor's rules, the counter and clock alone are a change
    // on every tick: the rules are what make the monitor quiet.
    let bare = WorkflowInput::parse(WorkflowKind::PageChange, &serde_json::json!({})).unwrap();
    let WorkflowInput::PageChange(bare) = bare else {
        unreachable!()
    };
    let body = |tick: u64| PageCapture {
        body: accord_demo::pages::news(tick),
        content_type: Some("text/html".to_owned()),
        screenshot_png: None,
    };
    let first = accord_workflows::page_change(&bare, &body(0), None).unwrap();
    let second = accord_workflows::page_change(
        &bare,
        &body(1),
        Some(accord_workflows::PreviousPage {
            snapshot: &first.snapshot,
            screenshot_png: None,
        }),
    )
    .unwrap();
    assert!(second.outcome.changed);
    let diff = second.outcome.diff.unwrap();
    assert_eq!((diff.added, diff.removed), (2, 2), "{}", diff.unified);

    // `diff_texts` on the page text of two captured ticks.
    let text = |tick: u64| {
        script::headlines(tick)
            .iter()
            .map(|h| format!("{h}\n"))
            .collect::<String>()
    };
    let diff = diff_texts(&text(2), &text(3));
    assert_eq!((diff.added, diff.removed), (1, 1));
    assert!(diff
        .unified
        .contains("+Heatwave expected to ease by Thursday\n"));
    assert!(diff
        .unified
        .contains("-City council approves new riverside park\n"));
    assert!(diff_texts(&text(3), &text(5)).is_empty());
}

#[tokio::test]
async fn the_job_monitor_reports_new_expired_and_moved_postings() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let monitors = monitors(&site.base_url());
    let jobs = find(&monitors, "/jobs");
    let results = runs(&site, jobs, &[0, 1, 3, 4, 6]).await;
    let outcome = |i: usize| match &results[i].outcome.detail {
        WorkflowOutcome::ExtractItems(o) => o.clone(),
        _ => panic!("not an extract_items outcome"),
    };
    let keys =
        |items: &[accord_workflows::Item]| items.iter().map(|i| i.key.clone()).collect::<Vec<_>>();

    let first = outcome(0);
    assert!(first.baseline.is_some());
    assert_eq!(first.total, 24, "all three pages were read");

    let second = outcome(1);
    assert_eq!(second.total, 25);
    assert_eq!(keys(&second.new), ["/jobs/25"]);
    assert_eq!(
        second.new[0].fields["title"].as_deref(),
        Some(script::posting(25, 1).unwrap().title)
    );
    assert!(second.removed.is_empty() && second.changed.is_empty());

    assert_eq!(keys(&outcome(2).new), ["/jobs/27", "/jobs/26"]);

    let fourth = outcome(3);
    assert_eq!(keys(&fourth.new), ["/jobs/28"]);
    assert_eq!(
        keys(&fourth.removed),
        ["/jobs/4", "/jobs/3", "/jobs/2", "/jobs/1"]
    );

    let sixth = outcome(4);
    assert_eq!(keys(&sixth.new), ["/jobs/30", "/jobs/29"]);
    let moved: Vec<(&str, Option<&str>)> = sixth
        .changed
        .iter()
        .map(|c| {
            assert_eq!(c.changes.len(), 1);
            assert_eq!(c.changes[0].field, "location");
            (c.key.as_str(), c.changes[0].after.as_deref())
        })
        .collect();
    assert_eq!(
        moved,
        [
            ("/jobs/20", Some("Remote")),
            ("/jobs/15", Some("Remote")),
            ("/jobs/10", Some("Remote")),
            ("/jobs/5", Some("Remote")),
        ]
    );
    assert_eq!(results[4].outcome.summary.changed_items, 4);
}

#[tokio::test]
async fn the_price_monitors_see_the_price_cross_below_the_mark() {
    let template = monitors("http://127.0.0.1:1");
    for path in ["/product", "/api/product.json"] {
        // A site of its own for each, so both start at tick 0.
        let site = DemoSite::bind_loopback().await.unwrap();
        let monitor = monitors_for(&site, &template, path);
        let results = runs(&site, &monitor, &[0, 3, 4, 5, 7]).await;
        let values: Vec<(Option<f64>, bool, bool)> = results
            .iter()
            .map(|r| match &r.outcome.detail {
                WorkflowOutcome::PageChange(o) => {
                    let v = &o.values[0];
                    assert_eq!(v.name, "price");
                    (v.value, v.condition_met, v.newly_met)
                }
                _ => panic!("not a page_change outcome"),
            })
            .collect();
        assert_eq!(
            values,
            [
                (Some(1299.0), false, false),
                (Some(1099.0), false, false),
                (Some(999.0), true, true),
                (Some(949.0), true, false),
                (Some(1049.0), false, false),
            ],
            "{path}"
        );
        let changed: Vec<bool> = results.iter().map(|r| r.outcome.summary.changed).collect();
        assert_eq!(changed, [false, true, true, true, true], "{path}");
        let WorkflowOutcome::PageChange(outcome) = &results[2].outcome.detail else {
            unreachable!()
        };
        let diff = outcome.diff.as_ref().unwrap();
        // The page watches only `#price`; the JSON shows the price twice.
        let lines = if path == "/product" { 1 } else { 2 };
        assert_eq!(
            (diff.added, diff.removed),
            (lines, lines),
            "{path}: {}",
            diff.unified
        );
    }
}

/// The demo monitor on `path`, pointed at `site`.
fn monitors_for(site: &DemoSite, template: &[DemoMonitor], path: &str) -> DemoMonitor {
    let mut monitor = find(template, path).clone();
    monitor.url = site.url(path);
    monitor
}

#[tokio::test]
async fn the_status_monitor_fails_and_recovers() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let monitors = monitors(&site.base_url());
    let status = find(&monitors, "/status");
    let results = runs(&site, status, &[0, 4, 5, 6, 7, 9, 10]).await;
    // (passed, newly failed, recovered) per run.
    let got: Vec<(bool, bool, bool)> = results
        .iter()
        .map(|r| match &r.outcome.detail {
            WorkflowOutcome::SmokeCheck(o) => (o.passed, o.newly_failed, o.recovered),
            _ => panic!("not a smoke_check outcome"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (true, false, false),
            (true, false, false),
            (false, true, false),
            (false, false, false),
            (true, false, true),
            (false, true, false),
            (true, false, true),
        ]
    );
    let failed = |i: usize| match &results[i].outcome.detail {
        WorkflowOutcome::SmokeCheck(o) => o
            .failed_checks()
            .map(|c| {
                serde_json::to_value(c.check)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>(),
        _ => unreachable!(),
    };
    assert_eq!(failed(2), ["status", "selector", "text"], "down: HTTP 500");
    assert_eq!(
        failed(5),
        ["selector", "text", "forbidden_text"],
        "degraded"
    );
}
