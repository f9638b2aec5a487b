//! Monitors through the real binary: the demo site (`accord-demo`) moved
//! tick by tick by the test, the demo monitors created through the API and
//! run by hand, each run's outcome read back through the API and the CLI;
//! and `accord up --demo` itself.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::process::Command;
use std::time::Duration;

use accord_client::{AccordClient, ItemFilter};
use accord_demo::{monitors, DemoSite};
use accord_model::{
    ItemStateFilter, ItemStatus, MonitorId, MonitorRun, NewMonitor, RunState, ScheduleSpec,
};
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
        "accord {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the CLI expecting it to fail; returns its standard error.
fn cli_fails(accord: &Process, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(args)
        .args(["--server", accord.url(), "--api-key", accord.key()])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "accord {args:?} should fail: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).unwrap()
}

/// The changed lines of a diff's hunks, in order.
fn changed_lines(diff: &Value) -> Vec<(String, String)> {
    diff["hunks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|hunk| hunk["lines"].as_array().unwrap())
        .filter(|line| line["kind"] != "context")
        .map(|line| {
            (
                line["kind"].as_str().unwrap().to_owned(),
                line["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
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
    let tick2 = run_at(&client, &site, news, 2).await;
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

    // Every run kept a snapshot, newest first, with a cursor.
    let snapshots = client.monitor_snapshots(news, None, Some(3)).await.unwrap();
    let ids: Vec<i64> = snapshots.items.iter().map(|s| s.run_id).collect();
    assert_eq!(ids, [changed.id, tick2.id, ignored.id], "{snapshots:?}");
    let older = client
        .monitor_snapshots(news, snapshots.next_cursor, Some(3))
        .await
        .unwrap();
    let ids: Vec<i64> = older.items.iter().map(|s| s.run_id).collect();
    assert_eq!(ids, [same.id, first.id]);
    assert!(snapshots.items[0].snapshot["text"]
        .as_str()
        .unwrap()
        .contains("Heatwave expected to ease by Thursday"));

    // Any two runs compared on demand: from the first run to the change,
    // the same lines as the change's own outcome (the ignored run between
    // changed nothing that counts).
    let diff = client
        .monitor_diff(news, first.id, changed.id)
        .await
        .unwrap();
    assert_eq!((diff.from.run_id, diff.to.run_id), (first.id, changed.id));
    let expected: Vec<(String, String)> = lines
        .iter()
        .map(|(kind, text)| ((*kind).to_owned(), (*text).to_owned()))
        .collect();
    assert_eq!(changed_lines(&diff.diff), expected);
    assert_eq!(
        (diff.diff["added"].as_u64(), diff.diff["removed"].as_u64()),
        (Some(2), Some(2))
    );
    // The CLI prints the unified diff of the same two runs, line by line.
    let printed = cli(
        &accord,
        &[
            "monitors",
            "diff",
            &news.to_string(),
            "--from",
            &first.id.to_string(),
            "--to",
            &changed.id.to_string(),
        ],
    );
    let changes: Vec<&str> = printed
        .lines()
        .filter(|line| {
            (line.starts_with('+') || line.starts_with('-'))
                && !line.starts_with("+++")
                && !line.starts_with("---")
        })
        .collect();
    assert_eq!(
        changes,
        [
            "-Library extends weekend opening hours New",
            "+Heatwave expected to ease by Thursday New",
            "+Library extends weekend opening hours",
            "-City council approves new riverside park",
        ],
        "{printed}"
    );
    // Backwards, the same lines swap sides.
    let back = client
        .monitor_diff(news, changed.id, first.id)
        .await
        .unwrap();
    assert_eq!(back.diff["added"], diff.diff["removed"]);

    // A run of another monitor is refused, naming the parameter.
    let price = create(&client, &site, "Demo: product price").await;
    let foreign = run_at(&client, &site, price, 3).await;
    let refused = cli_fails(
        &accord,
        &[
            "monitors",
            "diff",
            &news.to_string(),
            "--from",
            &foreign.id.to_string(),
            "--to",
            &changed.id.to_string(),
        ],
    );
    assert!(
        refused.contains(&format!(
            "from: run {} is not a run of monitor {news}",
            foreign.id
        )),
        "{refused}"
    );
}

#[tokio::test]
async fn new_removed_and_changed_items_on_a_job_board() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let jobs = create(&client, &site, "Demo: job board").await;

    // The job follows the board's next-page links (three pages of ten), so
    // the monitor sees every posting: 24 at tick 0, one more every tick,
    // and the oldest expire every fourth tick.
    let first = run_at(&client, &site, jobs, 0).await;
    assert_eq!(first.state, RunState::Succeeded, "{first:?}");
    assert_eq!(detail(&first)["total"], 24);
    let one_new = run_at(&client, &site, jobs, 1).await;
    assert_eq!(keys(&detail(&one_new)["new"]), ["/jobs/25"]);
    assert!(
        keys(&detail(&one_new)["removed"]).is_empty(),
        "a posting pushed to page 2 is still seen: {one_new:?}"
    );
    assert_eq!(summary(&one_new)["new_items"], 1);
    // /jobs/25 moves to "Remote" six ticks after it was posted: a changed
    // item, field by field.
    run_at(&client, &site, jobs, 6).await;
    let moved = run_at(&client, &site, jobs, 7).await;
    let changed = &detail(&moved)["changed"];
    assert_eq!(keys(changed), ["/jobs/25"], "{moved:?}");
    assert_eq!(changed[0]["changes"][0]["field"], "location");
    assert_eq!(changed[0]["changes"][0]["after"], "Remote");
    // The diff of any two runs: from the first to the last, /jobs/25 is
    // new (already in Remote) and the postings that expired at tick 4 are
    // removed.
    let diff = client.monitor_diff(jobs, first.id, moved.id).await.unwrap();
    assert!(keys(&diff.diff["new"]).contains(&"/jobs/25"), "{diff:?}");
    assert_eq!(
        keys(&diff.diff["removed"]),
        ["/jobs/1", "/jobs/2", "/jobs/3", "/jobs/4"],
        "{diff:?}"
    );
    let printed = cli(
        &accord,
        &[
            "monitors",
            "diff",
            &jobs.to_string(),
            "--run",
            &moved.id.to_string(),
        ],
    );
    assert!(printed.contains("~ "), "{printed}");

    // The item history: every posting ever seen, when first and last.
    let all = ItemFilter::default();
    let items = client.monitor_items(jobs, &all, None, None).await.unwrap();
    let item = |key: &str| {
        items
            .items
            .iter()
            .find(|item| item.key == key)
            .unwrap_or_else(|| panic!("{key} in {items:?}"))
    };
    let posted = item("/jobs/25");
    assert_eq!(posted.status, ItemStatus::Current);
    assert_eq!(
        (posted.first_seen.run_id, posted.last_seen.run_id),
        (one_new.id, moved.id)
    );
    assert_eq!(posted.fields["location"].as_deref(), Some("Remote"));
    assert_eq!(posted.removed, None);
    assert_eq!(posted.changes, 1, "moved to Remote once: {posted:?}");
    let gone = item("/jobs/1");
    assert_eq!(gone.status, ItemStatus::Removed);
    assert_eq!(
        (gone.first_seen.run_id, gone.last_seen.run_id),
        (first.id, one_new.id)
    );
    // Removed by the first run that no longer found it (tick 6).
    let removed_by = gone.removed.expect("the run that removed it");
    assert!(
        removed_by.run_id > one_new.id && removed_by.run_id < moved.id,
        "{gone:?}"
    );
    assert_eq!(gone.changes, 0);
    // Filtered by state, and by a text in the key or a field (any case).
    let removed = client
        .monitor_items(
            jobs,
            &ItemFilter {
                state: Some(ItemStateFilter::Removed),
                q: None,
            },
            None,
            None,
        )
        .await
        .unwrap();
    let mut removed_keys: Vec<&str> = removed.items.iter().map(|i| i.key.as_str()).collect();
    removed_keys.sort_unstable();
    assert_eq!(removed_keys, ["/jobs/1", "/jobs/2", "/jobs/3", "/jobs/4"]);
    let current = client
        .monitor_items(
            jobs,
            &ItemFilter {
                state: Some(ItemStateFilter::Current),
                q: None,
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(current.items.len() + removed.items.len(), items.items.len());
    assert!(current
        .items
        .iter()
        .all(|i| i.status == ItemStatus::Current));
    let remote = client
        .monitor_items(
            jobs,
            &ItemFilter {
                state: None,
                q: Some("REMOTE".to_owned()),
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert!(
        remote.items.iter().any(|i| i.key == "/jobs/25"),
        "{remote:?}"
    );
    assert!(
        remote.items.iter().all(|i| i
            .fields
            .values()
            .flatten()
            .any(|v| v.to_lowercase().contains("remote"))),
        "{remote:?}"
    );
    let by_key = client
        .monitor_items(
            jobs,
            &ItemFilter {
                state: None,
                q: Some("/jobs/25".to_owned()),
            },
            None,
            None,
        )
        .await
        .unwrap();
    let by_key: Vec<&str> = by_key.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(by_key, ["/jobs/25"]);
    // Paged with a cursor, in the order first seen.
    let page = client
        .monitor_items(jobs, &all, None, Some(4))
        .await
        .unwrap();
    let rest = client
        .monitor_items(jobs, &all, page.next_cursor.as_deref(), Some(1_000))
        .await
        .unwrap();
    let paged: Vec<&str> = page
        .items
        .iter()
        .chain(&rest.items)
        .map(|item| item.key.as_str())
        .collect();
    let whole: Vec<&str> = items.items.iter().map(|item| item.key.as_str()).collect();
    assert_eq!(paged, whole);

    // The same history as CSV, through the CLI.
    let csv = cli(&accord, &["monitors", "items", &jobs.to_string(), "--csv"]);
    let mut lines = csv.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("key,status,first_seen_run,first_seen_at,last_seen_run,last_seen_at,removed_run,removed_at,changes,company,date,link,location,title")
    );
    let when = |run: &MonitorRun| run.finished_at.unwrap().to_rfc3339();
    let row = lines
        .clone()
        .find(|line| line.starts_with("/jobs/25,"))
        .unwrap_or_else(|| panic!("/jobs/25 in {csv}"));
    assert_eq!(
        row,
        format!(
            "/jobs/25,current,{},{},{},{},,,1,{},{},/jobs/25,Remote,{}",
            one_new.id,
            when(&one_new),
            moved.id,
            when(&moved),
            csv_cell(posted.fields["company"].as_deref()),
            csv_cell(posted.fields["date"].as_deref()),
            csv_cell(posted.fields["title"].as_deref()),
        )
    );
    let row = lines
        .find(|line| line.starts_with("/jobs/1,"))
        .unwrap_or_else(|| panic!("/jobs/1 in {csv}"));
    assert!(
        row.starts_with(&format!(
            "/jobs/1,removed,{},{},{},{},{},{},0,",
            first.id,
            when(&first),
            one_new.id,
            when(&one_new),
            removed_by.run_id,
            removed_by.at.to_rfc3339(),
        )),
        "{row}"
    );
    assert_eq!(csv.matches("\r\n").count(), items.items.len() + 1);
    let table = cli(&accord, &["monitors", "items", &jobs.to_string()]);
    assert!(
        table.contains("removed") && table.contains("Remote"),
        "{table}"
    );
    // The CLI's filters: only removed postings, or those matching a text.
    let table = cli(
        &accord,
        &["monitors", "items", &jobs.to_string(), "--state", "removed"],
    );
    assert_eq!(table.lines().count(), 1 + 4, "{table}");
    assert!(
        table.lines().skip(1).all(|l| l.starts_with("removed")),
        "{table}"
    );
    let csv = cli(
        &accord,
        &[
            "monitors",
            "items",
            &jobs.to_string(),
            "--csv",
            "-q",
            "remote",
        ],
    );
    assert!(csv.contains("\r\n/jobs/25,current,"), "{csv}");
    assert!(
        csv.split("\r\n")
            .skip(1)
            .filter(|line| !line.is_empty())
            .all(|line| line.to_lowercase().contains("remote")),
        "{csv}"
    );
}

/// A value as the CSV writes it.
fn csv_cell(value: Option<&str>) -> String {
    let value = value.unwrap_or("");
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
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
    // The latest value is a gauge on /metrics, labelled by monitor.
    let metrics = accord
        .http()
        .get(format!("{}/metrics", accord.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = format!(
        "accord_monitor_value{{monitor_id=\"{price}\",monitor=\"Demo: product price\",name=\"price\"}} 1049"
    );
    assert!(metrics.contains(&gauge), "{gauge} in {metrics}");
    let state = format!(
        "accord_monitor_last_run_state{{monitor_id=\"{price}\",monitor=\"Demo: product price\",state=\"succeeded\"}} 1"
    );
    assert!(metrics.contains(&state), "{state} in {metrics}");

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

// The CLI runs as a blocking child process while the demo site serves it
// from this runtime: a second worker thread keeps the site answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_once_and_its_outcome_is_read_back() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let base = site.base_url();
    let base = base.trim_end_matches('/');
    site.set_tick(4);

    // A smoke check: the table for people.
    let smoke = dir.path().join("smoke.json");
    std::fs::write(&smoke, r##"{"required_selectors": ["#status-ok"]}"##).unwrap();
    let status_url = format!("{base}/status");
    let smoke_path = smoke.to_str().unwrap();
    let printed = cli(
        &accord,
        &[
            "workflows",
            "run",
            "smoke_check",
            "--input",
            smoke_path,
            "--url",
            &status_url,
            "--wait",
        ],
    );
    assert!(printed.contains("state:     succeeded"), "{printed}");
    assert!(printed.contains("verdict:   passed"), "{printed}");
    assert!(printed.contains("selector"), "{printed}");

    // The job board's items, as JSON for a script: a whole request in the
    // file, the outcome computed without a baseline, the items with it.
    let jobs = dir.path().join("jobs.json");
    let request = serde_json::json!({
        "url": format!("{base}/jobs"),
        "input": {
            "item_selector": "li.job",
            "fields": {"title": {"selector": "h3"}, "link": {"selector": "h3 a", "attribute": "href"}},
            "key": {"field": "link"}
        }
    });
    std::fs::write(&jobs, request.to_string()).unwrap();
    let printed = cli(
        &accord,
        &[
            "workflows",
            "run",
            "extract_items",
            "--input",
            jobs.to_str().unwrap(),
            "--wait",
            "--output",
            "json",
        ],
    );
    let run: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["outcome"]["detail"]["total"], 10, "{run}");
    assert_eq!(run["outcome"]["detail"]["baseline"], "first_run", "{run}");
    assert_eq!(
        run["snapshot"]["items"].as_array().unwrap().len(),
        10,
        "{run}"
    );
    // Read back through the API at the address the run gave.
    let again = accord
        .http()
        .get(format!(
            "{}{}",
            accord.url(),
            run["url_self"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(again, run);

    // Refusals name what is wrong, and start nothing.
    let unknown = cli_fails(
        &accord,
        &[
            "workflows",
            "run",
            "nope",
            "--input",
            smoke_path,
            "--url",
            &status_url,
        ],
    );
    assert!(unknown.contains("find workflow \"nope\""), "{unknown}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"ignore": ["("]}"#).unwrap();
    let invalid = cli_fails(
        &accord,
        &[
            "workflows",
            "run",
            "page_change",
            "--input",
            bad.to_str().unwrap(),
            "--url",
            &status_url,
        ],
    );
    assert!(invalid.contains("input.ignore[0]"), "{invalid}");
    let no_url = cli_fails(
        &accord,
        &["workflows", "run", "smoke_check", "--input", smoke_path],
    );
    assert!(no_url.contains("--url"), "{no_url}");
}

#[tokio::test]
async fn monitors_are_imported_from_a_list_and_exported_and_imported_back() {
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();

    // A typo on any line: nothing is created, the line is named.
    let broken = dir.path().join("broken.txt");
    std::fs::write(&broken, "https://a.example/\nnot a url\n").unwrap();
    let refused = cli_fails(&accord, &["monitors", "import", broken.to_str().unwrap()]);
    assert!(refused.contains("line 2: \"not a url\""), "{refused}");
    assert!(client
        .list_monitors(None, None, None)
        .await
        .unwrap()
        .items
        .is_empty());

    let list = dir.path().join("urls.txt");
    std::fs::write(
        &list,
        "# shops to watch\nhttps://shop.example/\n\nhttps://news.example/today\n",
    )
    .unwrap();
    let printed = cli(
        &accord,
        &[
            "monitors",
            "import",
            list.to_str().unwrap(),
            "--workflow",
            "smoke_check",
            "--every",
            "5m",
            "--tag",
            "imported",
            "--paused",
        ],
    );
    assert!(printed.contains("2 created, 0 refused"), "{printed}");
    let exported = cli(&accord, &["monitors", "export", "--tag", "imported"]);
    let first: Vec<NewMonitor> = serde_json::from_str(&exported).unwrap();
    let urls: Vec<String> = first.iter().map(|m| m.url.to_string()).collect();
    assert_eq!(
        urls,
        ["https://shop.example/", "https://news.example/today"]
    );
    assert!(first.iter().all(|m| m.paused
        && m.workflow == accord_model::WorkflowKind::SmokeCheck
        && m.schedule.every.as_deref() == Some("5m")));

    // Deleted, then imported back from the export: the same monitors.
    for monitor in client.list_monitors(None, None, None).await.unwrap().items {
        client.delete_monitor(monitor.id).await.unwrap();
    }
    let file = dir.path().join("export.json");
    std::fs::write(&file, &exported).unwrap();
    let printed = cli(&accord, &["monitors", "import", file.to_str().unwrap()]);
    assert!(printed.contains("2 created"), "{printed}");
    let second: Vec<NewMonitor> =
        serde_json::from_str(&cli(&accord, &["monitors", "export", "--tag", "imported"])).unwrap();
    assert_eq!(second, first);

    // An entry the server refuses is reported with its index; the others
    // are still created.
    let mixed = serde_json::json!([
        {"name": "ok", "workflow": "page_change", "url": "https://ok.example/", "schedule": {"every": "1h"}, "tags": ["mixed"]},
        {"name": "too often", "workflow": "page_change", "url": "https://no.example/", "schedule": {"every": "1s"}, "tags": ["mixed"]}
    ]);
    let file = dir.path().join("mixed.json");
    std::fs::write(&file, mixed.to_string()).unwrap();
    let refused = cli_fails(&accord, &["monitors", "import", file.to_str().unwrap()]);
    assert!(
        refused.contains("1 of 2 monitors were refused"),
        "{refused}"
    );
    let created = client
        .list_monitors(Some("mixed"), None, None)
        .await
        .unwrap()
        .items;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].name, "ok");
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

/// Decodes a PNG into RGBA.
fn decode_png(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .unwrap()
        .into_rgba8()
}

/// An artifact's bytes, through the API.
async fn artifact_bytes(client: &AccordClient, job: accord_model::JobId, name: &str) -> Vec<u8> {
    let name = accord_model::ArtifactName::new(name).unwrap();
    client
        .artifact(job, &name, None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

// The CLI runs as a blocking child process while the demo site serves it
// from this runtime: a second worker thread keeps the site answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visual_change_keeps_its_highlight_image_as_an_artifact_on_chromium() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accord = up_with_browser(dir.path(), &[]);
    let client = accord.client();
    let demo = monitors(&site.base_url())
        .into_iter()
        .find(|demo| demo.name == "Demo: news front page")
        .unwrap();
    let mut input = demo.input.clone();
    input["visual"] = serde_json::json!({"threshold": 0.002});
    let new = NewMonitor {
        name: "News, visually".to_owned(),
        engine: accord_model::Engine::Browser,
        input,
        schedule: ScheduleSpec {
            every: Some("1h".to_owned()),
            cron: None,
            time_zone: None,
        },
        paused: true,
        ..demo.to_new_monitor().unwrap()
    };
    let id = client.create_monitor(&new).await.unwrap().id;

    let baseline = run_at(&client, &site, id, 2).await;
    assert_eq!(baseline.state, RunState::Succeeded, "{baseline:?}");
    // The same page again: compared, nothing counts, no image kept.
    let same = run_at(&client, &site, id, 2).await;
    let visual = &detail(&same)["visual"];
    assert_eq!(visual["status"], "compared", "{visual}");
    assert_eq!(visual["changed"], false, "{visual}");
    assert!(visual.get("highlight").is_none(), "{visual}");
    let names: Vec<String> = client
        .list_artifacts(same.job_id)
        .await
        .unwrap()
        .items
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert!(!names.iter().any(|n| n == "visual-diff.png"), "{names:?}");

    // A new top story pushes the headlines down: a visual change.
    let changed = run_at(&client, &site, id, 3).await;
    assert_eq!(summary(&changed)["changed"], true, "{changed:?}");
    let visual = &detail(&changed)["visual"];
    assert_eq!(visual["changed"], true, "{visual}");
    let highlight = &visual["highlight"];
    assert_eq!(highlight["name"], "visual-diff.png", "{visual}");
    assert_eq!(highlight["content_type"], "image/png");
    assert_eq!(highlight["job_id"], changed.job_id.to_string());

    // Listed with the job's artifacts, fetched through the API.
    let listed = client.list_artifacts(changed.job_id).await.unwrap().items;
    let row = listed
        .iter()
        .find(|a| a.name.as_str() == "visual-diff.png")
        .unwrap_or_else(|| panic!("no visual-diff.png in {listed:?}"));
    assert_eq!(row.content_type, "image/png");
    assert_eq!(Some(row.size), highlight["size"].as_u64());
    assert_eq!(row.sha256.to_hex(), highlight["sha256"].as_str().unwrap());
    let png = artifact_bytes(&client, changed.job_id, "visual-diff.png").await;
    assert_eq!(accord_model::Sha256Digest::of(&png), row.sha256);
    // To look at the image: ACCORD_KEEP_HIGHLIGHT=/tmp/diff.png.
    #[expect(
        clippy::disallowed_methods,
        reason = "a test's own switch to keep its image for a person to look at"
    )]
    let keep = std::env::var_os("ACCORD_KEEP_HIGHLIGHT");
    if let Some(keep) = keep {
        std::fs::write(keep, &png).unwrap();
    }

    // It is the screenshots' size and shows the change: where the two
    // screenshots differ it is red and matches neither; elsewhere it is the
    // new page dimmed (grey, darker than the page).
    let before = decode_png(&artifact_bytes(&client, same.job_id, "monitor-screenshot.png").await);
    let after =
        decode_png(&artifact_bytes(&client, changed.job_id, "monitor-screenshot.png").await);
    let shown = decode_png(&png);
    assert_eq!(shown.dimensions(), after.dimensions());
    assert_eq!(before.dimensions(), after.dimensions());
    let region = &visual["changed_region"];
    let inside = |x: u32, y: u32| {
        let (rx, ry) = (
            region["x"].as_u64().unwrap() as u32,
            region["y"].as_u64().unwrap() as u32,
        );
        let (rw, rh) = (
            region["width"].as_u64().unwrap() as u32,
            region["height"].as_u64().unwrap() as u32,
        );
        // The frame is drawn 3 pixels around the region.
        x + 3 >= rx && x < rx + rw + 3 && y + 3 >= ry && y < ry + rh + 3
    };
    let (mut differing, mut red, mut unchanged, mut dimmed) = (0u64, 0u64, 0u64, 0u64);
    for (x, y, pixel) in shown.enumerate_pixels() {
        let (b, a) = (before.get_pixel(x, y).0, after.get_pixel(x, y).0);
        let moved = (0..4).map(|c| b[c].abs_diff(a[c])).max().unwrap();
        if moved > 16 {
            differing += 1;
            let reddish = pixel.0[0] > pixel.0[1] && pixel.0[1] == pixel.0[2];
            if reddish && pixel.0 != b && pixel.0 != a {
                red += 1;
            }
        } else if !inside(x, y) {
            // Outside the frame (the highlighter's halo stays inside it).
            unchanged += 1;
            // The page's grey level, scaled into 30 to 110.
            let luma = (u32::from(a[0]) * 77 + u32::from(a[1]) * 150 + u32::from(a[2]) * 29) >> 8;
            let grey = (30 + luma * 80 / 255) as u8;
            if pixel.0 == [grey, grey, grey, 255] {
                dimmed += 1;
            }
        }
    }
    assert!(differing > 0, "the screenshots differ somewhere");
    assert_eq!(red, differing, "every changed pixel is highlighted in red");
    assert_eq!(
        visual["changed_pixels"].as_u64(),
        Some(differing),
        "{visual}"
    );
    assert!(unchanged > 0);
    assert_eq!(
        dimmed, unchanged,
        "every unchanged pixel outside the frame is dimmed"
    );

    // The diff route points at it; the URL serves the same bytes.
    let diff = client.monitor_diff(id, same.id, changed.id).await.unwrap();
    let shown = diff.highlight.expect("the diff names the highlight");
    assert_eq!(shown.run_id, changed.id);
    assert_eq!(shown.job_id, changed.job_id);
    assert_eq!(shown.artifact.sha256, row.sha256);
    let served = accord
        .http()
        .get(format!(
            "{}{}",
            accord.url().trim_end_matches('/'),
            shown.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), png.as_slice());
    // A diff whose `to` run kept no image names none.
    let none = client.monitor_diff(id, baseline.id, same.id).await.unwrap();
    assert_eq!(none.highlight, None);

    // The CLI says where it is; the evidence manifest lists it and verifies.
    let printed = cli(&accord, &["monitors", "diff", &id.to_string()]);
    assert!(printed.contains(&shown.url), "{printed}");
    assert!(
        printed.contains(&format!(
            "accord jobs artifact {} visual-diff.png",
            changed.job_id
        )),
        "{printed}"
    );
    let manifest = client.manifest(changed.job_id, None).await.unwrap();
    let manifest: accord_model::EvidenceManifest = serde_json::from_slice(&manifest.bytes).unwrap();
    assert!(
        manifest
            .artifacts
            .iter()
            .any(|a| a.name.as_str() == "visual-diff.png" && a.sha256 == row.sha256),
        "{manifest:?}"
    );
    let verified = cli(&accord, &["jobs", "verify", &changed.job_id.to_string()]);
    assert!(verified.contains("visual-diff.png"), "{verified}");
    assert!(!verified.contains("MISMATCH"), "{verified}");
}
