//! Monitors through the queue with a manual clock: the scheduler starts
//! each slot exactly once (two replicas on PostgreSQL), catches up after a
//! gap with one run, never overlaps a slow run; completions record the
//! workflow's outcome with the job's, against the previous snapshot; a job
//! failing for good fails a smoke check's run. The worker is played by the
//! test: it claims the run's job and reports what an engine would have
//! extracted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use accord_model::{
    ClaimRequest, ClaimedJob, CompleteItem, ErrorKind, ExtractedValue, FailItem, JobError,
    JobResult, ManualClock, Monitor, MonitorPatch, NewMonitor, RunState, RunTrigger, Timings,
    WorkerId, WorkerScope, WorkspaceId,
};
use accord_queue::{Queue, QueueConfig, QueueError, QueueMetrics};
use accord_store::{
    MonitorFilter, PostgresConfig, PostgresStore, SqliteConfig, SqliteStore, Store,
};
use accord_test_support::TestDatabase;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn config() -> QueueConfig {
    let mut config = QueueConfig::default();
    config.monitors.max_attempts = 1;
    config
}

fn queue(store: Arc<dyn Store>, clock: &ManualClock) -> Queue {
    Queue::new(
        store,
        Arc::new(clock.clone()),
        config(),
        Arc::new(QueueMetrics::new()),
    )
}

struct Sqlite {
    queue: Queue,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn sqlite() -> Sqlite {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("q.db")))
        .await
        .unwrap();
    let clock = ManualClock::new(t0());
    Sqlite {
        queue: queue(Arc::new(store), &clock),
        clock,
        _dir: dir,
    }
}

fn new_monitor(workflow: &str, input: serde_json::Value, every: &str) -> NewMonitor {
    serde_json::from_value(json!({
        "name": format!("{workflow} monitor"),
        "workflow": workflow,
        "url": "https://example.com/page",
        "input": input,
        "schedule": {"every": every},
        "tags": ["test"],
    }))
    .unwrap()
}

fn worker() -> WorkerId {
    WorkerId::new("w1").unwrap()
}

async fn claim(queue: &Queue) -> Vec<ClaimedJob> {
    let request = ClaimRequest {
        worker_id: worker(),
        queues: Vec::new(),
        limit: 10,
        wait_ms: 0,
        engines: accord_model::RunEngine::ALL.to_vec(),
    };
    queue
        .claim(WorkerScope::AllWorkspaces, &request)
        .await
        .unwrap()
}

fn result(extracted: serde_json::Value, status: u16) -> JobResult {
    let extracted: BTreeMap<String, ExtractedValue> = serde_json::from_value(extracted).unwrap();
    JobResult {
        extracted,
        status,
        final_url: "https://example.com/page".into(),
        timings: Timings::default(),
        engine: accord_model::RunEngine::Http,
        engine_reason: None,
        artifacts: Vec::new(),
    }
}

/// Plays the worker: claims the one due job and completes it with `page`
/// as the extracted HTML.
async fn run_page(queue: &Queue, page: &str) {
    let jobs = claim(queue).await;
    assert_eq!(jobs.len(), 1, "one job to run");
    let item = CompleteItem {
        job_id: jobs[0].job_id,
        attempt: jobs[0].attempt,
        result: result(json!({"page": page}), 200),
    };
    let answer = queue.complete(&worker(), &[item]).await.unwrap();
    assert_eq!(answer.accepted.len(), 1, "{answer:?}");
}

async fn runs(queue: &Queue, monitor: &Monitor) -> Vec<accord_model::MonitorRun> {
    queue
        .monitor_runs(WorkspaceId::DEFAULT, monitor.id, None, 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_page_change_monitor_reports_a_diff_against_its_last_run() {
    let h = sqlite().await;
    let input = json!({
        "selectors": ["main"],
        "ignore": ["\\d+ views"],
        "values": [{"name": "price", "selector": ".price", "condition": {"below": 100}}]
    });
    let monitor = h
        .queue
        .monitor_create(
            WorkspaceId::DEFAULT,
            new_monitor("page_change", input, "1m"),
        )
        .await
        .unwrap();
    assert!(
        monitor.next_due_at > t0() && monitor.next_due_at <= t0() + chrono::Duration::minutes(1)
    );
    // Nothing is due before the first slot.
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 0);

    let page = |text: &str, views: u32, price: &str| {
        format!(
            "<body><main><p>{text}</p><p>{views} views</p><p class=price>{price}</p></main></body>"
        )
    };
    h.clock.set(monitor.next_due_at);
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 1);
    run_page(&h.queue, &page("Hello", 1, "$120.00")).await;

    h.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 1);
    // Only the ignored counter moved: no change.
    run_page(&h.queue, &page("Hello", 2, "$120.00")).await;

    h.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 1);
    run_page(&h.queue, &page("Goodbye", 3, "$99.50")).await;

    let runs = runs(&h.queue, &monitor).await;
    assert_eq!(runs.len(), 3);
    assert!(runs
        .iter()
        .all(|r| r.state == RunState::Succeeded && r.trigger == RunTrigger::Schedule));
    let summary = |run: &accord_model::MonitorRun| run.outcome.as_ref().unwrap()["summary"].clone();
    assert_eq!(summary(&runs[2])["changed"], json!(false));
    assert_eq!(summary(&runs[1])["changed"], json!(false));
    assert_eq!(summary(&runs[0])["changed"], json!(true));
    assert_eq!(summary(&runs[0])["condition_newly_met"], json!(true));
    let diff = &runs[0].outcome.as_ref().unwrap()["detail"]["diff"];
    assert_eq!(diff["added"], json!(2));
    assert_eq!(diff["removed"], json!(2));
    let unified = diff["unified"].as_str().unwrap();
    assert!(
        unified.contains("-Hello") && unified.contains("+Goodbye"),
        "{unified}"
    );

    let series = h
        .queue
        .monitor_series(WorkspaceId::DEFAULT, monitor.id, Some("price"), 10)
        .await
        .unwrap();
    assert_eq!(
        series.iter().map(|p| p.value).collect::<Vec<_>>(),
        [120.0, 120.0, 99.5]
    );
}

#[tokio::test]
async fn an_items_monitor_reports_new_and_removed_items() {
    let h = sqlite().await;
    let input = json!({
        "item_selector": "li",
        "fields": {"title": {"selector": "a"}, "link": {"selector": "a", "attribute": "href"}},
        "key": {"field": "link"}
    });
    let monitor = h
        .queue
        .monitor_create(
            WorkspaceId::DEFAULT,
            new_monitor("extract_items", input, "30s"),
        )
        .await
        .unwrap();
    let items = |list: &[(&str, &str)]| {
        let records: Vec<_> = list
            .iter()
            .map(|(title, link)| json!({"title": title, "link": link}))
            .collect();
        json!({ "items": records })
    };
    for (n, list) in [
        vec![("Cook", "/1"), ("Engineer", "/2")],
        vec![("Engineer", "/2"), ("Pilot", "/3")],
    ]
    .iter()
    .enumerate()
    {
        let started = h
            .queue
            .monitor_run_now(WorkspaceId::DEFAULT, monitor.id)
            .await
            .unwrap();
        assert_eq!(started.run.trigger, RunTrigger::Manual, "run {n}");
        let jobs = claim(&h.queue).await;
        let item = CompleteItem {
            job_id: jobs[0].job_id,
            attempt: jobs[0].attempt,
            result: result(items(list), 200),
        };
        h.queue.complete(&worker(), &[item]).await.unwrap();
        h.clock.advance(chrono::Duration::seconds(1));
    }
    let runs = runs(&h.queue, &monitor).await;
    let summary = &runs[0].outcome.as_ref().unwrap()["summary"];
    assert_eq!(summary["new_items"], json!(1));
    assert_eq!(summary["removed_items"], json!(1));
    let detail = &runs[0].outcome.as_ref().unwrap()["detail"];
    assert_eq!(detail["new"][0]["key"], json!("/3"));
    assert_eq!(detail["removed"][0]["key"], json!("/1"));
}

#[tokio::test]
async fn a_smoke_check_fails_when_its_job_fails_and_recovers() {
    let h = sqlite().await;
    let monitor = h
        .queue
        .monitor_create(
            WorkspaceId::DEFAULT,
            new_monitor("smoke_check", json!({"required_texts": ["Welcome"]}), "10s"),
        )
        .await
        .unwrap();
    // First run: the site is down; the job fails for good, and its run
    // records a failed verdict.
    h.queue
        .monitor_run_now(WorkspaceId::DEFAULT, monitor.id)
        .await
        .unwrap();
    let jobs = claim(&h.queue).await;
    h.queue
        .fail(
            &worker(),
            vec![FailItem {
                job_id: jobs[0].job_id,
                attempt: jobs[0].attempt,
                error: JobError::new(ErrorKind::Retryable, "connection refused"),
            }],
        )
        .await
        .unwrap();
    // Second run: up, but the text is missing; third: all good.
    for (page, passed) in [("Oops", false), ("Welcome home", true)] {
        h.clock.advance(chrono::Duration::seconds(1));
        h.queue
            .monitor_run_now(WorkspaceId::DEFAULT, monitor.id)
            .await
            .unwrap();
        let jobs = claim(&h.queue).await;
        let item = CompleteItem {
            job_id: jobs[0].job_id,
            attempt: jobs[0].attempt,
            result: result(json!({"page": page}), 200),
        };
        h.queue.complete(&worker(), &[item]).await.unwrap();
        let run = runs(&h.queue, &monitor).await.remove(0);
        assert_eq!(
            run.outcome.as_ref().unwrap()["detail"]["passed"],
            json!(passed),
            "{page}"
        );
    }
    let runs = runs(&h.queue, &monitor).await;
    // The dead job's run has a verdict: the load check failed, newly.
    assert_eq!(runs[2].state, RunState::Failed);
    assert_eq!(runs[2].error.as_deref(), Some("connection refused"));
    let dead = runs[2].outcome.as_ref().unwrap();
    assert_eq!(dead["summary"]["newly_failed"], json!(true));
    assert_eq!(dead["detail"]["checks"][0]["check"], json!("load"));
    assert_eq!(
        dead["detail"]["checks"][0]["message"],
        json!("the page did not load: connection refused")
    );
    // Still failing, on the page this time: not newly.
    assert_eq!(
        runs[1].outcome.as_ref().unwrap()["summary"]["newly_failed"],
        json!(false)
    );
    assert_eq!(
        runs[0].outcome.as_ref().unwrap()["summary"]["recovered"],
        json!(true)
    );
}

#[tokio::test]
async fn catch_up_after_a_gap_is_one_run() {
    let h = sqlite().await;
    let monitor = h
        .queue
        .monitor_create(
            WorkspaceId::DEFAULT,
            new_monitor("page_change", json!({}), "10s"),
        )
        .await
        .unwrap();
    // The control plane was down for ten minutes: sixty slots passed.
    h.clock
        .set(monitor.next_due_at + chrono::Duration::minutes(10));
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 1);
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 0);
    let runs = runs(&h.queue, &monitor).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].slot, monitor.next_due_at);
    let now = h
        .queue
        .monitor_get(WorkspaceId::DEFAULT, monitor.id)
        .await
        .unwrap();
    assert!(now.next_due_at > h.clock_now());
    assert!(now.next_due_at <= h.clock_now() + chrono::Duration::seconds(10));
}

impl Sqlite {
    fn clock_now(&self) -> DateTime<Utc> {
        use accord_model::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn a_slow_run_is_never_overlapped() {
    let h = sqlite().await;
    let monitor = h
        .queue
        .monitor_create(
            WorkspaceId::DEFAULT,
            new_monitor("page_change", json!({}), "10s"),
        )
        .await
        .unwrap();
    h.clock.set(monitor.next_due_at);
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 1);
    let jobs = claim(&h.queue).await;
    // The run takes a minute: six slots pass, none starts.
    for _ in 0..6 {
        h.clock.advance(chrono::Duration::seconds(10));
        assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 0);
    }
    assert!(matches!(
        h.queue
            .monitor_run_now(WorkspaceId::DEFAULT, monitor.id)
            .await,
        Err(QueueError::MonitorBusy(_))
    ));
    let item = CompleteItem {
        job_id: jobs[0].job_id,
        attempt: jobs[0].attempt,
        result: result(json!({"page": "<p>done</p>"}), 200),
    };
    h.queue.complete(&worker(), &[item]).await.unwrap();
    // Slots passed while it ran: one run now, then back on schedule.
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 1);
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 0);
    assert_eq!(runs(&h.queue, &monitor).await.len(), 2);
}

#[tokio::test]
async fn bad_monitors_are_refused_with_the_field() {
    let h = sqlite().await;
    let check = |new: NewMonitor, field: &'static str| {
        let queue = h.queue.clone();
        async move {
            match queue.monitor_create(WorkspaceId::DEFAULT, new).await {
                Err(QueueError::Invalid(err)) => assert_eq!(err.field, field, "{err}"),
                other => panic!("expected an error on {field}, got {other:?}"),
            }
        }
    };
    check(
        new_monitor("page_change", json!({}), "1s"),
        "schedule.every",
    )
    .await;
    check(
        new_monitor("page_change", json!({"ignore": ["(unclosed"]}), "1m"),
        "input.ignore[0]",
    )
    .await;
    check(
        new_monitor("page_change", json!({"visual": {"threshold": 0.1}}), "1m"),
        "input.visual",
    )
    .await;
    check(new_monitor("extract_items", json!({}), "1m"), "input").await;
    let mut cron = new_monitor("page_change", json!({}), "1m");
    cron.schedule =
        serde_json::from_value(json!({"cron": "0 9 * * *", "time_zone": "Nowhere/City"})).unwrap();
    check(cron, "schedule.time_zone").await;
    assert!(h
        .queue
        .monitor_list(
            WorkspaceId::DEFAULT,
            &MonitorFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn pause_resume_and_update() {
    let h = sqlite().await;
    let monitor = h
        .queue
        .monitor_create(
            WorkspaceId::DEFAULT,
            new_monitor("page_change", json!({}), "10s"),
        )
        .await
        .unwrap();
    let paused = h
        .queue
        .monitor_pause(WorkspaceId::DEFAULT, monitor.id)
        .await
        .unwrap();
    assert!(paused.paused);
    h.clock.advance(chrono::Duration::minutes(5));
    assert_eq!(h.queue.scheduler_tick().await.unwrap().started, 0);
    let resumed = h
        .queue
        .monitor_resume(WorkspaceId::DEFAULT, monitor.id)
        .await
        .unwrap();
    assert!(!resumed.paused);
    assert!(resumed.next_due_at > h.clock_now());
    let patch: MonitorPatch =
        serde_json::from_value(json!({"schedule": {"every": "1h"}, "tags": ["b"]})).unwrap();
    let updated = h
        .queue
        .monitor_update(WorkspaceId::DEFAULT, monitor.id, &patch)
        .await
        .unwrap();
    assert_eq!(updated.schedule.spec().every.as_deref(), Some("1h"));
    assert!(
        updated.next_due_at > h.clock_now() + chrono::Duration::seconds(10)
            || updated.next_due_at <= h.clock_now() + chrono::Duration::hours(1)
    );
    let bad: MonitorPatch = serde_json::from_value(json!({"schedule": {"every": "2s"}})).unwrap();
    assert!(matches!(
        h.queue.monitor_update(WorkspaceId::DEFAULT, monitor.id, &bad).await,
        Err(QueueError::Invalid(err)) if err.field == "schedule.every"
    ));
    h.queue
        .monitor_delete(WorkspaceId::DEFAULT, monitor.id)
        .await
        .unwrap();
    assert!(matches!(
        h.queue.monitor_get(WorkspaceId::DEFAULT, monitor.id).await,
        Err(QueueError::MonitorNotFound(_))
    ));
}

async fn postgres_queue(database: &TestDatabase, clock: &ManualClock) -> Queue {
    let mut config = PostgresConfig::new(database.url());
    config.max_connections = 4;
    let store = PostgresStore::connect(&config).await.unwrap();
    queue(Arc::new(store), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_start_each_slot_exactly_once_on_postgres() {
    let database = TestDatabase::create().await;
    let clock = ManualClock::new(t0());
    let a = postgres_queue(&database, &clock).await;
    let b = postgres_queue(&database, &clock).await;
    let mut monitors = Vec::new();
    for _ in 0..20 {
        monitors.push(
            a.monitor_create(
                WorkspaceId::DEFAULT,
                new_monitor("page_change", json!({}), "10s"),
            )
            .await
            .unwrap(),
        );
    }
    let slots = 5;
    for _ in 0..slots {
        clock.advance(chrono::Duration::seconds(10));
        // Both replicas look at the same moment, concurrently.
        let (ta, tb) = tokio::join!(a.scheduler_tick(), b.scheduler_tick());
        let (ta, tb) = (ta.unwrap(), tb.unwrap());
        assert_eq!(ta.started + tb.started, monitors.len(), "{ta:?} {tb:?}");
        // Every run's job completes before the next slot.
        loop {
            let jobs = claim(&a).await;
            if jobs.is_empty() {
                break;
            }
            let items: Vec<_> = jobs
                .iter()
                .map(|job| CompleteItem {
                    job_id: job.job_id,
                    attempt: job.attempt,
                    result: result(json!({"page": "<p>same</p>"}), 200),
                })
                .collect();
            a.complete(&worker(), &items).await.unwrap();
        }
    }
    for monitor in &monitors {
        let runs = runs(&a, monitor).await;
        assert_eq!(runs.len(), slots, "monitor {}", monitor.id);
        let distinct: std::collections::BTreeSet<_> = runs.iter().map(|r| r.slot).collect();
        assert_eq!(distinct.len(), slots);
        assert!(runs.iter().all(|r| r.state == RunState::Succeeded));
    }
    drop((a, b));
    let _ = Duration::ZERO;
}
