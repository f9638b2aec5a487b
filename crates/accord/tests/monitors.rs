//! Monitors through the real binary: the demo site (`accord-demo`) moved
//! tick by tick by the test, the demo monitors created through the API and
//! run by hand, each run's outcome read back through the API and the CLI;
//! and `accord up --demo` itself.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::process::Command;
use std::time::Duration;

use accord_client::AccordClient;
use accord_demo::{monitors, DemoSite};
use accord_model::{MonitorId, MonitorRun, NewMonitor, RunState, ScheduleSpec};
use common::*;
use serde_json::Value;

/// Creates the demo monitor called `name` against `site`, paused (the test
/// runs it by hand).
async fn create(client: &AccordClient, site: &DemoSite, name: &str) -> MonitorId {
    let demo = monitors(&site.base_url())
        .into_iter()
        .find(|demo| demo.name == name)
        .unwrap_or_else(|| panic!("no demo monitor {name:?}"));
    let new = NewMonitor {
        schedule: ScheduleSpec {
            every: Some("1h".to_owned()),
            cron: None,
            time_zone: None,
        },
        paused: true,
        ..demo.to_new_monitor().unwrap()
    };
    client.create_monitor(&new).await.unwrap().id
}

/// Runs the monitor now with the site at `tick` and waits for the run's
/// outcome.
async fn run_at(client: &AccordClient, site: &DemoSite, id: MonitorId, tick: u64) -> MonitorRun {
    site.set_tick(tick);
    let started = client.run_monitor(id).await.unwrap();
    eventually(Duration::from_secs(30), "the run to finish", || async {
        let runs = client.monitor_runs(id, None, Some(10)).await.unwrap().items;
        runs.into_iter()
            .find(|run| run.id == started.id && run.state != RunState::Running)
    })
    .await
}

fn detail(run: &MonitorRun) -> &Value {
    &run.outcome
        .as_ref()
        .unwrap_or_else(|| panic!("no outcome: {run:?}"))["detail"]
}

fn summary(run: &MonitorRun) -> &Value {
    &run.outcome
        .as_ref()
        .unwrap_or_else(|| panic!("no outcome: {run:?}"))["summary"]
}

fn keys(items: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    keys
}

fn cli(accord: &Process, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(args)
        .args(["--server", accord.url(), "--api-key", accord.key()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "accord {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn page_changes_are_found_and_ignored_regions_are_not() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let news = create(&client, &site, "Demo: news front page").await;

    let first = run_at(&client, &site, news, 0).await;
    assert_eq!(first.state, RunState::Succeeded, "{first:?}");
    assert_eq!(
        summary(&first)["changed"],
        false,
        "the first run is the baseline"
    );
    // The same page: no change.
    let same = run_at(&client, &site, news, 0).await;
    assert_eq!(summary(&same)["changed"], false, "{same:?}");
    // Only the clock and the visitor counter moved: both are ignored.
    let ignored = run_at(&client, &site, news, 1).await;
    assert_eq!(summary(&ignored)["changed"], false, "{ignored:?}");
    // A new top story: a real change, the diff line by line.
    run_at(&client, &site, news, 2).await;
    let changed = run_at(&client, &site, news, 3).await;
    assert_eq!(summary(&changed)["changed"], true, "{changed:?}");
    let diff = &detail(&changed)["diff"];
    assert_eq!(
        (diff["added"].as_u64(), diff["removed"].as_u64()),
        (Some(2), Some(2))
    );
    let lines: Vec<(&str, &str)> = diff["hunks"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["kind"] != "context")
        .map(|line| {
            (
                line["kind"].as_str().unwrap(),
                line["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("removed", "Library extends weekend opening hours New"),
            ("added", "Heatwave expected to ease by Thursday New"),
            ("added", "Library extends weekend opening hours"),
            ("removed", "City council approves new riverside park"),
        ]
    );
    // What a person reads.
    let printed = cli(&accord, &["monitors", "diff", &news.to_string()]);
    assert!(
        printed.contains("+Heatwave expected to ease by Thursday New")
            && printed.contains("-City council approves new riverside park"),
        "{printed}"
    );
    let runs = cli(&accord, &["monitors", "runs", &news.to_string()]);
    // Newest first: the change, then four runs without one.
    assert_eq!(runs.matches("no change").count(), 4, "{runs}");
    assert_eq!(runs.matches("changed").count(), 1, "{runs}");
}

#[tokio::test]
async fn new_removed_and_changed_items_on_a_job_board() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let jobs = create(&client, &site, "Demo: job board").await;

    // The expansion reads the first page only: `pagination` is accepted
    // and stored but not followed yet, so a posting pushed to page 2
    // leaves the monitor's view.
    let first = run_at(&client, &site, jobs, 0).await;
    assert_eq!(first.state, RunState::Succeeded, "{first:?}");
    assert_eq!(detail(&first)["total"], 10);
    let one_new = run_at(&client, &site, jobs, 1).await;
    assert_eq!(keys(&detail(&one_new)["new"]), ["/jobs/25"]);
    assert_eq!(keys(&detail(&one_new)["removed"]), ["/jobs/15"]);
    assert_eq!(summary(&one_new)["new_items"], 1);
    // /jobs/25 moves to "Remote" six ticks after it was posted: a changed
    // item, field by field.
    run_at(&client, &site, jobs, 6).await;
    let moved = run_at(&client, &site, jobs, 7).await;
    let changed = &detail(&moved)["changed"];
    assert_eq!(keys(changed), ["/jobs/25"], "{moved:?}");
    assert_eq!(changed[0]["changes"][0]["field"], "location");
    assert_eq!(changed[0]["changes"][0]["after"], "Remote");
    let printed = cli(&accord, &["monitors", "items", &jobs.to_string()]);
    assert!(
        printed.contains("+ ") && printed.contains("- ") && printed.contains("~ "),
        "{printed}"
    );
}

#[tokio::test]
async fn a_price_crossing_its_mark_and_a_smoke_check_failing_and_recovering() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let price = create(&client, &site, "Demo: product price").await;
    let status = create(&client, &site, "Demo: status page").await;

    run_at(&client, &site, price, 3).await;
    let below = run_at(&client, &site, price, 4).await;
    assert_eq!(summary(&below)["condition_newly_met"], true, "{below:?}");
    let above = run_at(&client, &site, price, 7).await;
    assert_eq!(summary(&above)["condition_met"], false, "{above:?}");
    let series = client.monitor_series(price, None).await.unwrap();
    let values: Vec<f64> = series.points.iter().map(|point| point.value).collect();
    assert_eq!(values, [1099.0, 999.0, 1049.0]);

    let healthy = run_at(&client, &site, status, 4).await;
    assert_eq!(summary(&healthy)["failed"], false, "{healthy:?}");
    // The page is there but says it is degraded and lacks #status-ok.
    let failing = run_at(&client, &site, status, 9).await;
    assert_eq!(summary(&failing)["newly_failed"], true, "{failing:?}");
    let failed: Vec<&str> = detail(&failing)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["status"] == "failed")
        .map(|check| check["check"].as_str().unwrap())
        .collect();
    assert!(
        failed.contains(&"selector") && failed.contains(&"forbidden_text"),
        "{failed:?}"
    );
    let recovered = run_at(&client, &site, status, 10).await;
    assert_eq!(summary(&recovered)["recovered"], true, "{recovered:?}");
}

#[tokio::test]
async fn up_demo_creates_one_monitor_of_each_kind_and_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    // No --allow-private-targets here: --demo opens the demo site alone.
    let data = dir.path().join("data");
    let accord = Process::start(
        &[
            "up",
            "--demo",
            "--no-browser",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
        "up",
        true,
    )
    .with_admin_key_from(&data);
    let banner = accord.stdout_until("accord monitors series");
    assert!(banner.contains("Demo site: http://127.77.0.1:"), "{banner}");
    let client = accord.client();
    let demo = client
        .list_monitors(Some("demo"), None, None)
        .await
        .unwrap()
        .items;
    assert_eq!(demo.len(), 5, "{demo:?}");
    // Each has run once at creation and succeeded on the demo site.
    for monitor in &demo {
        let run = eventually(Duration::from_secs(30), "a first run", || async {
            let runs = client
                .monitor_runs(monitor.id, None, Some(5))
                .await
                .unwrap();
            runs.items
                .into_iter()
                .find(|run| run.state != RunState::Running)
        })
        .await;
        assert!(run.outcome.is_some(), "{}: {run:?}", monitor.name);
    }
    // Every other private target stays refused.
    let refused = client
        .submit_job(
            &job(r#"{"steps":[{"action":"navigate","url":"http://127.0.0.1:9/"}]}"#),
            None,
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let listed = cli(&accord, &["monitors", "list", "--tag", "demo"]);
    assert_eq!(listed.lines().count(), 6, "{listed}");
}
