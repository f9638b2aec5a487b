//! [`accord_store::MonitorStore`]: monitors read and written within their
//! workspace, listed by tag with a cursor, updated without lost updates;
//! runs started with their job exactly once per slot, never while another
//! run is unfinished; completions that record the outcome and move the
//! baseline in the job's transaction, fenced on the lease and on the
//! baseline; failures that finish the run; deletion that takes the history.

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_model::{
    CompleteItem, ErrorKind, JobId, JobState, Monitor, MonitorId, RunState, RunTrigger, Schedule,
    ScheduleSpec, WorkflowKind, WorkspaceId,
};
use accord_store::{
    Advance, CompleteRun, CompleteRunOutcome, InsertJob, MonitorFilter, RunRecord, SnapshotOrder,
    StartOutcome, StartRun, Store,
};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::fixtures::*;
use crate::harness::conformance;

fn every(text: &str) -> Schedule {
    let spec = ScheduleSpec {
        every: Some(text.to_owned()),
        cron: None,
        time_zone: None,
    };
    Schedule::parse(&spec, "schedule", 0).unwrap()
}

pub(crate) fn monitor(
    workspace: WorkspaceId,
    name: &str,
    tags: &[&str],
    due: DateTime<Utc>,
) -> Monitor {
    Monitor {
        id: MonitorId::new(),
        workspace_id: workspace,
        name: name.to_owned(),
        workflow: WorkflowKind::PageChange,
        url: "https://example.com/".parse().unwrap(),
        engine: accord_model::Engine::Http,
        input: json!({"selectors": ["main"]}),
        schedule: every("1m"),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        paused: false,
        notify: Vec::new(),
        created_at: at(0),
        updated_at: at(0),
        next_due_at: due,
    }
}

fn job_for(monitor: &Monitor) -> InsertJob {
    InsertJob {
        id: JobId::new(),
        workspace_id: monitor.workspace_id,
        job: new_job(r#","max_attempts":1"#),
        run_on: accord_model::RunEngine::Http,
        engine_reason: None,
        idempotency: None,
    }
}

/// A scheduled start of `monitor` as read, at `now`.
fn scheduled(monitor: &Monitor, now: DateTime<Utc>) -> StartRun {
    StartRun {
        workspace_id: monitor.workspace_id,
        monitor_id: monitor.id,
        trigger: RunTrigger::Schedule,
        slot: monitor.next_due_at,
        advance: Some(Advance {
            due_at: monitor.next_due_at,
            updated_at: monitor.updated_at,
            next_due_at: monitor.next_slot_after(now).unwrap(),
        }),
        job: job_for(monitor),
        now,
    }
}

pub(crate) fn manual(monitor: &Monitor, now: DateTime<Utc>) -> StartRun {
    StartRun {
        workspace_id: monitor.workspace_id,
        monitor_id: monitor.id,
        trigger: RunTrigger::Manual,
        slot: now,
        advance: None,
        job: job_for(monitor),
        now,
    }
}

pub(crate) fn started(outcome: StartOutcome) -> (accord_model::MonitorRun, accord_model::Job) {
    match outcome {
        StartOutcome::Started { run, job } => (run, *job),
        other => panic!("expected a started run, got {other:?}"),
    }
}

pub(crate) fn completion(
    monitor: &Monitor,
    run_id: i64,
    lease: accord_model::LeaseRef,
    baseline: Option<i64>,
    text: &str,
    now: DateTime<Utc>,
) -> CompleteRun {
    CompleteRun {
        worker: worker("w"),
        item: CompleteItem {
            job_id: lease.job_id,
            attempt: lease.attempt,
            result: result(),
        },
        now,
        monitor_id: monitor.id,
        run_id,
        baseline_run_id: baseline,
        record: RunRecord::Outcome {
            outcome: json!({"changed": true, "text": text}),
            snapshot: json!({"text": text}),
            values: vec![("price".to_owned(), 12.5)],
            events: [accord_model::NotifyEvent::Changed].into_iter().collect(),
            artifacts: Vec::new(),
            items: None,
        },
        notice: None,
    }
}

async fn monitors_are_scoped_listed_by_tag_and_paged(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let a = monitor(WorkspaceId::DEFAULT, "a", &["news", "eu"], at(60));
    let b = monitor(WorkspaceId::DEFAULT, "b", &["jobs"], at(60));
    let c = monitor(WorkspaceId::DEFAULT, "c", &["news"], at(60));
    let hidden = monitor(other, "hidden", &["news"], at(60));
    for m in [&a, &b, &c, &hidden] {
        store.monitor_insert(m).await.unwrap();
    }
    assert_eq!(
        store.monitor_get(WorkspaceId::DEFAULT, a.id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.monitor_get(other, a.id).await.unwrap(), None);

    let list = |tag: Option<&str>, before: Option<MonitorId>, limit: u32| {
        let store = store.clone();
        let filter = MonitorFilter {
            tag: tag.map(str::to_owned),
            before,
            limit,
        };
        async move {
            store
                .monitor_list(WorkspaceId::DEFAULT, &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, None, 10).await, ["c", "b", "a"]);
    assert_eq!(list(Some("news"), None, 10).await, ["c", "a"]);
    assert_eq!(list(Some("nothing"), None, 10).await, Vec::<String>::new());
    assert_eq!(list(None, None, 2).await, ["c", "b"]);
    assert_eq!(list(None, Some(b.id), 2).await, ["a"]);
}

async fn updates_are_fenced_and_deletion_takes_the_history(store: Arc<dyn Store>) {
    let m = monitor(WorkspaceId::DEFAULT, "m", &[], at(0));
    store.monitor_insert(&m).await.unwrap();
    let mut changed = m.clone();
    changed.name = "renamed".into();
    changed.tags = BTreeSet::from(["x".to_owned()]);
    changed.paused = true;
    changed.updated_at = at(5);
    assert!(store.monitor_update(&changed, m.updated_at).await.unwrap());
    // A second writer that read the old version loses: no lost update.
    let mut stale = m.clone();
    stale.name = "stale".into();
    stale.updated_at = at(6);
    assert!(!store.monitor_update(&stale, m.updated_at).await.unwrap());
    assert_eq!(
        store.monitor_get(WorkspaceId::DEFAULT, m.id).await.unwrap(),
        Some(changed.clone())
    );

    let mut resumed = changed.clone();
    resumed.paused = false;
    resumed.updated_at = at(7);
    assert!(store
        .monitor_update(&resumed, changed.updated_at)
        .await
        .unwrap());
    let (run, _) = started(
        store
            .monitor_run_start(&manual(&resumed, at(8)))
            .await
            .unwrap(),
    );
    assert!(store
        .monitor_delete(WorkspaceId::DEFAULT, m.id)
        .await
        .unwrap());
    assert!(!store
        .monitor_delete(WorkspaceId::DEFAULT, m.id)
        .await
        .unwrap());
    assert!(store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, run.id)
        .await
        .unwrap()
        .is_none());
    // The job stays, like any job, until retention.
    assert_eq!(state_of(&*store, run.job_id).await, JobState::Available);
    assert!(store
        .monitor_run_context(run.job_id)
        .await
        .unwrap()
        .is_none());
}

async fn a_slot_starts_once_with_its_job_and_moves_the_due_time(store: Arc<dyn Store>) {
    let m = monitor(WorkspaceId::DEFAULT, "m", &[], at(60));
    let paused = Monitor {
        paused: true,
        ..monitor(WorkspaceId::DEFAULT, "p", &[], at(0))
    };
    store.monitor_insert(&m).await.unwrap();
    store.monitor_insert(&paused).await.unwrap();
    assert!(store.monitors_due(at(59), 10).await.unwrap().is_empty());
    let due = store.monitors_due(at(61), 10).await.unwrap();
    assert_eq!(due, vec![m.clone()]);

    // Two replicas read the same due monitor; one starts the slot.
    let first = scheduled(&due[0], at(61));
    let second = scheduled(&due[0], at(61));
    let (run, job) = started(store.monitor_run_start(&first).await.unwrap());
    assert_eq!(run.slot, at(60));
    assert_eq!(run.trigger, RunTrigger::Schedule);
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.job_id, job.id);
    assert_eq!(job.id, first.job.id);
    assert!(matches!(
        store.monitor_run_start(&second).await.unwrap(),
        StartOutcome::Busy | StartOutcome::Moved
    ));
    // The loser wrote nothing: no job.
    assert!(store
        .job_get(WorkspaceId::DEFAULT, second.job.id)
        .await
        .unwrap()
        .is_none());
    let now = store
        .monitor_get(WorkspaceId::DEFAULT, m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.next_due_at, m.next_slot_after(at(61)).unwrap());
    assert!(now.next_due_at > at(61));

    // While the run's job is unfinished the monitor is not due, and a
    // manual run is refused: a monitor never overlaps itself.
    let later = now.next_due_at + chrono::Duration::seconds(1);
    assert!(store.monitors_due(later, 10).await.unwrap().is_empty());
    assert!(matches!(
        store.monitor_run_start(&manual(&now, later)).await.unwrap(),
        StartOutcome::Busy
    ));
    // Once its job finishes, the monitor is due again: one catch-up run.
    let lease = claim(&*store, "w", 1, later).await.remove(0);
    fail(&*store, "w", lease, ErrorKind::Permanent, later).await;
    let due = store.monitors_due(later, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let run = store
        .monitor_runs(WorkspaceId::DEFAULT, m.id, None, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(run.state, RunState::Error);
    assert_eq!(run.error.as_deref(), Some("boom"));
    assert!(run.finished_at.is_some());
}

async fn a_stale_read_starts_nothing(store: Arc<dyn Store>) {
    let m = monitor(WorkspaceId::DEFAULT, "m", &[], at(60));
    store.monitor_insert(&m).await.unwrap();
    // The monitor was edited after the scheduler read it.
    let mut edited = m.clone();
    edited.updated_at = at(61);
    assert!(store.monitor_update(&edited, m.updated_at).await.unwrap());
    let start = scheduled(&m, at(62));
    assert!(matches!(
        store.monitor_run_start(&start).await.unwrap(),
        StartOutcome::Moved
    ));
    assert!(store
        .job_get(WorkspaceId::DEFAULT, start.job.id)
        .await
        .unwrap()
        .is_none());
    // Paused after being read: nothing either.
    let mut paused = edited.clone();
    paused.paused = true;
    paused.updated_at = at(63);
    assert!(store
        .monitor_update(&paused, edited.updated_at)
        .await
        .unwrap());
    assert!(matches!(
        store
            .monitor_run_start(&scheduled(&edited, at(64)))
            .await
            .unwrap(),
        StartOutcome::Moved
    ));
    // An unknown or foreign monitor: nothing.
    let foreign = monitor(other_workspace(&*store).await, "f", &[], at(0));
    assert!(matches!(
        store
            .monitor_run_start(&manual(&foreign, at(65)))
            .await
            .unwrap(),
        StartOutcome::Moved
    ));
}

/// A batch of starts in one transaction judges each start on its own: a
/// moved, busy or already-run slot writes nothing (no job, the due time
/// unchanged) while the others start; outcomes come in the batch's order.
async fn a_batch_starts_each_run_on_its_own(store: Arc<dyn Store>) {
    let fresh = monitor(WorkspaceId::DEFAULT, "fresh", &[], at(60));
    let edited = monitor(WorkspaceId::DEFAULT, "edited", &[], at(60));
    let busy = monitor(WorkspaceId::DEFAULT, "busy", &[], at(60));
    let ran = monitor(WorkspaceId::DEFAULT, "ran", &[], at(60));
    for m in [&fresh, &edited, &busy, &ran] {
        store.monitor_insert(m).await.unwrap();
    }
    // Edited after the scheduler read it.
    let mut changed = edited.clone();
    changed.updated_at = at(10);
    assert!(store
        .monitor_update(&changed, edited.updated_at)
        .await
        .unwrap());
    // A run in progress.
    started(
        store
            .monitor_run_start(&manual(&busy, at(20)))
            .await
            .unwrap(),
    );
    // The slot at 60 has its run already, finished.
    started(
        store
            .monitor_run_start(&manual(&ran, at(60)))
            .await
            .unwrap(),
    );
    let ran_runs = store
        .monitor_runs(WorkspaceId::DEFAULT, ran.id, None, 10)
        .await
        .unwrap();
    let ran_job = ran_runs[0].job_id;
    store
        .job_cancel(WorkspaceId::DEFAULT, ran_job, at(61))
        .await
        .unwrap();

    let batch = vec![
        scheduled(&fresh, at(61)),
        scheduled(&edited, at(61)),
        scheduled(&busy, at(61)),
        scheduled(&ran, at(61)),
    ];
    let outcomes = store.monitor_runs_start(&batch).await.unwrap();
    assert_eq!(outcomes.len(), 4);
    let mut outcomes = outcomes.into_iter();
    let (run, job) = started(outcomes.next().unwrap());
    assert_eq!(
        (run.monitor_id, run.slot, job.id),
        (fresh.id, at(60), batch[0].job.id)
    );
    assert!(matches!(outcomes.next().unwrap(), StartOutcome::Moved));
    assert!(matches!(outcomes.next().unwrap(), StartOutcome::Busy));
    assert!(matches!(outcomes.next().unwrap(), StartOutcome::Moved));
    for (m, start) in [(&edited, &batch[1]), (&busy, &batch[2]), (&ran, &batch[3])] {
        assert!(
            store
                .job_get(WorkspaceId::DEFAULT, start.job.id)
                .await
                .unwrap()
                .is_none(),
            "{}: no job",
            m.name
        );
        let now = store
            .monitor_get(WorkspaceId::DEFAULT, m.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now.next_due_at, at(60), "{}: the due time stays", m.name);
    }
    let moved = store
        .monitor_get(WorkspaceId::DEFAULT, fresh.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.next_due_at, fresh.next_slot_after(at(61)).unwrap());
    // An empty batch is no error.
    assert!(store.monitor_runs_start(&[]).await.unwrap().is_empty());
}

async fn a_completion_records_the_outcome_and_moves_the_baseline(store: Arc<dyn Store>) {
    let m = monitor(WorkspaceId::DEFAULT, "m", &[], at(60));
    store.monitor_insert(&m).await.unwrap();
    let (run, _) = started(store.monitor_run_start(&manual(&m, at(1))).await.unwrap());
    let context = store
        .monitor_run_context(run.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(context.monitor, m);
    assert_eq!(context.run, run);
    assert_eq!(context.baseline, None);
    let lease = claim(&*store, "w", 1, at(2)).await.remove(0);

    // Computed against a baseline that is not the monitor's: refused, and
    // the job is still leased.
    let wrong = completion(&m, run.id, lease, Some(999), "one", at(3));
    assert_eq!(
        store.monitor_run_complete(&wrong).await.unwrap(),
        CompleteRunOutcome::BaselineMoved
    );
    assert_eq!(state_of(&*store, run.job_id).await, JobState::Running);
    // Another worker's lease: stale, nothing recorded.
    let mut stolen = completion(&m, run.id, lease, None, "one", at(3));
    stolen.worker = worker("other");
    assert_eq!(
        store.monitor_run_complete(&stolen).await.unwrap(),
        CompleteRunOutcome::Stale
    );

    let done = completion(&m, run.id, lease, None, "one", at(3));
    assert!(matches!(
        store.monitor_run_complete(&done).await.unwrap(),
        CompleteRunOutcome::Applied(t) if t.to == JobState::Succeeded
    ));
    assert_eq!(state_of(&*store, run.job_id).await, JobState::Succeeded);
    let (recorded, snapshot) = store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.state, RunState::Succeeded);
    assert_eq!(
        recorded.outcome,
        Some(json!({"changed": true, "text": "one"}))
    );
    assert!(recorded.has_snapshot);
    assert_eq!(recorded.finished_at, Some(at(3)));
    assert_eq!(snapshot, Some(json!({"text": "one"})));
    // The run is no longer in progress; the same completion again is stale.
    assert!(store
        .monitor_run_context(run.job_id)
        .await
        .unwrap()
        .is_none());
    // (Whichever fence it meets first: nothing changes.)
    assert!(matches!(
        store.monitor_run_complete(&done).await.unwrap(),
        CompleteRunOutcome::Stale | CompleteRunOutcome::BaselineMoved
    ));

    // The next run is computed against this one's snapshot.
    let (second, _) = started(store.monitor_run_start(&manual(&m, at(10))).await.unwrap());
    let context = store
        .monitor_run_context(second.job_id)
        .await
        .unwrap()
        .unwrap();
    let baseline = context.baseline.unwrap();
    assert_eq!(baseline.run_id, run.id);
    assert_eq!(baseline.snapshot, json!({"text": "one"}));
    let lease = claim(&*store, "w", 1, at(11)).await.remove(0);
    // Computed against no baseline (as if read before the first finished):
    // refused, so the two can never both become the baseline.
    assert_eq!(
        store
            .monitor_run_complete(&completion(&m, second.id, lease, None, "two", at(12)))
            .await
            .unwrap(),
        CompleteRunOutcome::BaselineMoved
    );
    assert!(matches!(
        store
            .monitor_run_complete(&completion(
                &m,
                second.id,
                lease,
                Some(run.id),
                "two",
                at(12)
            ))
            .await
            .unwrap(),
        CompleteRunOutcome::Applied(_)
    ));

    // A run whose workflow could not run ends in error, and the baseline
    // stays where it was.
    let (third, _) = started(store.monitor_run_start(&manual(&m, at(20))).await.unwrap());
    let lease = claim(&*store, "w", 1, at(21)).await.remove(0);
    let mut broken = completion(&m, third.id, lease, Some(second.id), "three", at(22));
    broken.record = RunRecord::Error("the page is too complex".into());
    assert!(matches!(
        store.monitor_run_complete(&broken).await.unwrap(),
        CompleteRunOutcome::Applied(t) if t.to == JobState::Succeeded
    ));
    let (errored, snapshot) = store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, third.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(errored.state, RunState::Error);
    assert_eq!(errored.error.as_deref(), Some("the page is too complex"));
    assert_eq!(snapshot, None);
    let (fourth, _) = started(store.monitor_run_start(&manual(&m, at(30))).await.unwrap());
    let context = store
        .monitor_run_context(fourth.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(context.baseline.unwrap().run_id, second.id);

    let series = store
        .monitor_series(WorkspaceId::DEFAULT, m.id, Some("price"), 10)
        .await
        .unwrap();
    assert_eq!(
        series
            .iter()
            .map(|p| (p.run_id, p.value, p.at))
            .collect::<Vec<_>>(),
        vec![(run.id, 12.5, at(3)), (second.id, 12.5, at(12))]
    );
    assert!(store
        .monitor_series(WorkspaceId::DEFAULT, m.id, Some("other"), 10)
        .await
        .unwrap()
        .is_empty());
    let runs = store
        .monitor_runs(WorkspaceId::DEFAULT, m.id, None, 10)
        .await
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [fourth.id, third.id, second.id, run.id]
    );
    let older = store
        .monitor_runs(WorkspaceId::DEFAULT, m.id, Some(second.id), 10)
        .await
        .unwrap();
    assert_eq!(older.iter().map(|r| r.id).collect::<Vec<_>>(), [run.id]);
    // Another workspace sees none of it.
    let other = other_workspace(&*store).await;
    assert!(store
        .monitor_runs(other, m.id, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .monitor_run_get(other, m.id, run.id)
        .await
        .unwrap()
        .is_none());
}

async fn a_failed_smoke_check_job_fails_its_run(store: Arc<dyn Store>) {
    let m = Monitor {
        workflow: WorkflowKind::SmokeCheck,
        input: json!({}),
        ..monitor(WorkspaceId::DEFAULT, "smoke", &[], at(60))
    };
    store.monitor_insert(&m).await.unwrap();
    let mut start = manual(&m, at(1));
    start.job.job = new_job(r#","max_attempts":2"#);
    let (run, _) = started(store.monitor_run_start(&start).await.unwrap());
    // A retryable failure with attempts left does not finish the run.
    let lease = claim(&*store, "w", 1, at(2)).await.remove(0);
    fail(&*store, "w", lease, ErrorKind::Retryable, at(2)).await;
    let runs = store
        .monitor_runs(WorkspaceId::DEFAULT, m.id, None, 10)
        .await
        .unwrap();
    assert_eq!(runs[0].state, RunState::Running);
    let lease = claim(&*store, "w", 1, at(1_000)).await.remove(0);
    fail(&*store, "w", lease, ErrorKind::Retryable, at(1_000)).await;
    let (failed, snapshot) = store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(failed.error.as_deref(), Some("boom"));
    assert_eq!(snapshot, None);
}

async fn a_run_whose_job_dies_or_is_cancelled_ends_in_error(store: Arc<dyn Store>) {
    let m = monitor(WorkspaceId::DEFAULT, "dies", &[], at(60));
    store.monitor_insert(&m).await.unwrap();
    // The worker dies on the job's only attempt: the reaper ends the run.
    let mut start = manual(&m, at(1));
    start.job.job = new_job(r#","max_attempts":1"#);
    let (run, _) = started(store.monitor_run_start(&start).await.unwrap());
    claim(&*store, "w", 1, at(2)).await.remove(0);
    let reaped = store.job_reap_expired(at(100_000), 10).await.unwrap();
    assert_eq!(reaped.len(), 1);
    let (died, _) = store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(died.state, RunState::Error);
    assert!(died.error.as_deref().unwrap().contains("lease"), "{died:?}");
    assert_eq!(died.finished_at, Some(at(100_000)));
    // A cancelled job ends its run too.
    let (run, job) = started(
        store
            .monitor_run_start(&manual(&m, at(100_001)))
            .await
            .unwrap(),
    );
    store
        .job_cancel(WorkspaceId::DEFAULT, job.id, at(100_002))
        .await
        .unwrap();
    let (cancelled, _) = store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.state, RunState::Error);
    assert_eq!(
        cancelled.error.as_deref(),
        Some("the run's job was cancelled")
    );
}

/// Completes a manual run of `m` started at second `start` with the
/// snapshot `record` (or in error when none), against `baseline`; returns
/// the run's id.
async fn run_to_end(
    store: &dyn Store,
    m: &Monitor,
    start: i64,
    baseline: Option<i64>,
    record: Option<&str>,
) -> i64 {
    let (run, _) = started(
        store
            .monitor_run_start(&manual(m, at(start)))
            .await
            .unwrap(),
    );
    let lease = claim(store, "w", 1, at(start + 1)).await.remove(0);
    let mut done = completion(
        m,
        run.id,
        lease,
        baseline,
        record.unwrap_or(""),
        at(start + 2),
    );
    if record.is_none() {
        done.record = RunRecord::Error("broken".into());
    }
    assert!(matches!(
        store.monitor_run_complete(&done).await.unwrap(),
        CompleteRunOutcome::Applied(_)
    ));
    run.id
}

async fn snapshots_are_read_newest_or_oldest_first(store: Arc<dyn Store>) {
    let m = monitor(WorkspaceId::DEFAULT, "m", &[], at(1_000_000));
    store.monitor_insert(&m).await.unwrap();
    let one = run_to_end(&*store, &m, 10, None, Some("one")).await;
    // A run that kept no snapshot is not listed.
    run_to_end(&*store, &m, 20, Some(one), None).await;
    let two = run_to_end(&*store, &m, 30, Some(one), Some("two")).await;
    let three = run_to_end(&*store, &m, 40, Some(two), Some("three")).await;
    // Another monitor's snapshots are not this one's.
    let other_monitor = monitor(WorkspaceId::DEFAULT, "n", &[], at(1_000_000));
    store.monitor_insert(&other_monitor).await.unwrap();
    run_to_end(&*store, &other_monitor, 50, None, Some("other")).await;

    let read = |order, limit| {
        let store = store.clone();
        async move {
            store
                .monitor_snapshots(WorkspaceId::DEFAULT, m.id, order, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|s| {
                    (
                        s.run_id,
                        s.at,
                        s.snapshot["text"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let row = |id: i64, ms: i64, text: &str| (id, at(ms), text.to_owned());
    assert_eq!(
        read(SnapshotOrder::NewestFirst { before: None }, 10).await,
        [
            row(three, 42, "three"),
            row(two, 32, "two"),
            row(one, 12, "one")
        ]
    );
    assert_eq!(
        read(
            SnapshotOrder::NewestFirst {
                before: Some(three)
            },
            1
        )
        .await,
        [row(two, 32, "two")]
    );
    assert_eq!(
        read(SnapshotOrder::OldestFirst { after: None }, 2).await,
        [row(one, 12, "one"), row(two, 32, "two")]
    );
    assert_eq!(
        read(SnapshotOrder::OldestFirst { after: Some(two) }, 10).await,
        [row(three, 42, "three")]
    );
    // Another workspace sees none of them.
    let other = other_workspace(&*store).await;
    assert!(store
        .monitor_snapshots(other, m.id, SnapshotOrder::NewestFirst { before: None }, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn gauges_read_each_monitors_newest_run_and_latest_values(store: Arc<dyn Store>) {
    let idle = monitor(WorkspaceId::DEFAULT, "idle", &[], at(1_000_000));
    store.monitor_insert(&idle).await.unwrap();
    let m = monitor(WorkspaceId::DEFAULT, "priced", &[], at(1_000_000));
    store.monitor_insert(&m).await.unwrap();
    let one = run_to_end(&*store, &m, 10, None, Some("one")).await;
    // A run in error after it: the newest run, while the values stay the
    // last recorded ones.
    run_to_end(&*store, &m, 20, Some(one), None).await;
    let other = other_workspace(&*store).await;
    let theirs = monitor(other, "theirs", &[], at(1_000_000));
    store.monitor_insert(&theirs).await.unwrap();

    let gauges = store.monitor_gauges(10).await.unwrap();
    let got: Vec<_> = gauges
        .iter()
        .map(|g| (g.name.as_str(), g.last_run, g.values.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("idle", None, vec![]),
            (
                "priced",
                Some((RunState::Error, at(22))),
                vec![("price".to_owned(), 12.5)]
            ),
            ("theirs", None, vec![]),
        ]
    );
    // Bounded: the oldest monitors first.
    let first = store.monitor_gauges(1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].monitor_id, idle.id);
    // A run in progress shows as running, from when it started.
    let (_, _) = started(store.monitor_run_start(&manual(&m, at(30))).await.unwrap());
    let gauges = store.monitor_gauges(10).await.unwrap();
    assert_eq!(gauges[1].last_run, Some((RunState::Running, at(30))));
    assert_eq!(gauges[1].values, [("price".to_owned(), 12.5)]);
}

/// The control plane's artifact for a run (a visual diff) is recorded in
/// the completion's transaction, for the completing attempt, counted in
/// the workspace's usage; a refused completion records nothing.
async fn a_completion_records_the_runs_artifacts_with_its_outcome(store: Arc<dyn Store>) {
    let m = monitor(WorkspaceId::DEFAULT, "m", &[], at(60));
    store.monitor_insert(&m).await.unwrap();
    let (run, _) = started(store.monitor_run_start(&manual(&m, at(1))).await.unwrap());
    let lease = claim(&*store, "w", 1, at(2)).await.remove(0);
    let highlight = accord_model::ArtifactRef {
        name: accord_model::ArtifactName::new("visual-diff.png").unwrap(),
        content_type: "image/png".to_owned(),
        size: 1_234,
        sha256: accord_model::Sha256Digest::of(b"highlight"),
    };
    let with_artifact = |mut complete: CompleteRun| {
        if let RunRecord::Outcome { artifacts, .. } = &mut complete.record {
            artifacts.push(highlight.clone());
        }
        complete
    };
    let usage = store.artifact_usage(WorkspaceId::DEFAULT).await.unwrap();

    // Refused on the baseline fence, then on the lease: no row.
    let wrong = with_artifact(completion(&m, run.id, lease, Some(999), "one", at(3)));
    assert_eq!(
        store.monitor_run_complete(&wrong).await.unwrap(),
        CompleteRunOutcome::BaselineMoved
    );
    let mut stolen = with_artifact(completion(&m, run.id, lease, None, "one", at(3)));
    stolen.worker = worker("other");
    assert_eq!(
        store.monitor_run_complete(&stolen).await.unwrap(),
        CompleteRunOutcome::Stale
    );
    let listed = store
        .artifact_list(WorkspaceId::DEFAULT, run.job_id)
        .await
        .unwrap()
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    let done = with_artifact(completion(&m, run.id, lease, None, "one", at(3)));
    assert!(matches!(
        store.monitor_run_complete(&done).await.unwrap(),
        CompleteRunOutcome::Applied(_)
    ));
    let row = store
        .artifact_get(WorkspaceId::DEFAULT, run.job_id, &highlight.name)
        .await
        .unwrap()
        .expect("the highlight's row");
    assert_eq!(row.reference(), highlight);
    assert_eq!(row.attempt, lease.attempt);
    assert_eq!(row.created_at, at(3));
    assert_eq!(
        store.artifact_usage(WorkspaceId::DEFAULT).await.unwrap(),
        usage + 1_234
    );
    // The manifest written after the completion lists it.
    let evidence = store.artifact_evidence(&[lease]).await.unwrap();
    let names: Vec<&str> = evidence[0]
        .artifacts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["visual-diff.png"]);
    // Another workspace sees nothing.
    let other = store
        .artifact_get(WorkspaceId::new(), run.job_id, &highlight.name)
        .await
        .unwrap();
    assert_eq!(other, None);
}

async fn a_batch_completes_each_run_on_its_own(store: Arc<dyn Store>) {
    let names = ["fresh", "moved", "stale", "broken", "second"];
    let mut monitors = Vec::new();
    for name in names {
        let m = monitor(WorkspaceId::DEFAULT, name, &[], at(600));
        store.monitor_insert(&m).await.unwrap();
        monitors.push(m);
    }
    // "second" has a baseline already.
    let first = run_to_end(&*store, &monitors[4], 1, None, Some("before")).await;
    let plain = store
        .job_insert(
            InsertJob {
                id: JobId::new(),
                workspace_id: WorkspaceId::DEFAULT,
                job: new_job(""),
                run_on: accord_model::RunEngine::Http,
                engine_reason: None,
                idempotency: None,
            },
            at(9),
        )
        .await
        .unwrap();
    let accord_store::InsertOutcome::Created(plain) = plain else {
        panic!("the plain job was not created");
    };
    // One batch starts them all; a monitor named twice starts once.
    let mut starts: Vec<StartRun> = monitors.iter().map(|m| manual(m, at(10))).collect();
    starts.push(manual(&monitors[0], at(10)));
    let outcomes = store.monitor_runs_start(&starts).await.unwrap();
    assert!(matches!(outcomes[5], StartOutcome::Busy));
    let runs: Vec<accord_model::MonitorRun> =
        outcomes.into_iter().take(5).map(|o| started(o).0).collect();
    let leases = claim(&*store, "w", 10, at(11)).await;
    assert_eq!(leases.len(), 6, "five runs' jobs and the plain one");
    let lease_of = |job: JobId| *leases.iter().find(|l| l.job_id == job).unwrap();

    // The contexts come in the order asked, none for a job that is no run.
    let asked = [runs[1].job_id, plain.id, runs[4].job_id, runs[0].job_id];
    let contexts = store.monitor_run_contexts(&asked).await.unwrap();
    assert_eq!(contexts.len(), 4);
    assert_eq!(contexts[0].as_ref().unwrap().run, runs[1]);
    assert!(contexts[1].is_none());
    let second = contexts[2].as_ref().unwrap();
    assert_eq!(second.monitor, monitors[4]);
    assert_eq!(second.baseline.as_ref().unwrap().run_id, first);
    assert_eq!(
        second.baseline.as_ref().unwrap().snapshot,
        json!({"text": "before"})
    );
    assert_eq!(contexts[3].as_ref().unwrap().baseline, None);
    assert!(store.monitor_run_contexts(&[]).await.unwrap().is_empty());

    let mut batch = Vec::new();
    batch.push(completion(
        &monitors[0],
        runs[0].id,
        lease_of(runs[0].job_id),
        None,
        "fresh",
        at(12),
    ));
    batch.push(completion(
        &monitors[1],
        runs[1].id,
        lease_of(runs[1].job_id),
        Some(999),
        "moved",
        at(12),
    ));
    let mut stale = lease_of(runs[2].job_id);
    stale.attempt += 1;
    batch.push(completion(
        &monitors[2],
        runs[2].id,
        stale,
        None,
        "stale",
        at(12),
    ));
    let mut broken = completion(
        &monitors[3],
        runs[3].id,
        lease_of(runs[3].job_id),
        None,
        "",
        at(12),
    );
    broken.record = RunRecord::Error("the page is too complex".into());
    batch.push(broken);
    batch.push(completion(
        &monitors[4],
        runs[4].id,
        lease_of(runs[4].job_id),
        Some(first),
        "after",
        at(12),
    ));
    let outcomes = store.monitor_runs_complete(&batch).await.unwrap();
    assert_eq!(outcomes.len(), 5);
    assert!(
        matches!(&outcomes[0], CompleteRunOutcome::Applied(t) if t.job_id == runs[0].job_id && t.to == JobState::Succeeded)
    );
    assert_eq!(outcomes[1], CompleteRunOutcome::BaselineMoved);
    assert_eq!(outcomes[2], CompleteRunOutcome::Stale);
    assert!(matches!(&outcomes[3], CompleteRunOutcome::Applied(t) if t.job_id == runs[3].job_id));
    assert!(matches!(&outcomes[4], CompleteRunOutcome::Applied(t) if t.job_id == runs[4].job_id));

    // What each run recorded.
    let read = |i: usize| {
        let store = store.clone();
        let (m, run) = (monitors[i].id, runs[i].id);
        async move {
            store
                .monitor_run_get(WorkspaceId::DEFAULT, m, run)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (fresh, snapshot) = read(0).await;
    assert_eq!(
        (fresh.state, fresh.finished_at),
        (RunState::Succeeded, Some(at(12)))
    );
    assert_eq!(snapshot, Some(json!({"text": "fresh"})));
    for i in [1, 2] {
        let (run, snapshot) = read(i).await;
        assert_eq!(
            (run.state, snapshot),
            (RunState::Running, None),
            "{}",
            names[i]
        );
        assert_eq!(state_of(&*store, runs[i].job_id).await, JobState::Running);
    }
    let (broken, snapshot) = read(3).await;
    assert_eq!(broken.state, RunState::Error);
    assert_eq!(broken.error.as_deref(), Some("the page is too complex"));
    assert_eq!(snapshot, None);
    let (after, _) = read(4).await;
    assert_eq!(after.state, RunState::Succeeded);
    // Baselines moved for the runs that recorded an outcome only; the
    // next runs read them.
    let next: Vec<StartRun> = monitors.iter().map(|m| manual(m, at(20))).collect();
    let restarted = store.monitor_runs_start(&next).await.unwrap();
    assert!(matches!(restarted[0], StartOutcome::Started { .. }));
    assert!(matches!(restarted[1], StartOutcome::Busy));
    assert!(matches!(restarted[3], StartOutcome::Started { .. }));
    let jobs: Vec<JobId> = [0, 3, 4]
        .into_iter()
        .map(|i| match &restarted[i] {
            StartOutcome::Started { job, .. } => job.id,
            other => panic!("{}: expected a start, got {other:?}", names[i]),
        })
        .collect();
    let contexts = store.monitor_run_contexts(&jobs).await.unwrap();
    let baseline = |i: usize| {
        contexts[i]
            .as_ref()
            .unwrap()
            .baseline
            .as_ref()
            .map(|b| b.run_id)
    };
    assert_eq!(baseline(0), Some(runs[0].id));
    assert_eq!(baseline(1), None, "an error keeps the baseline");
    assert_eq!(baseline(2), Some(runs[4].id));
    // Values and events of both outcomes, none of the others.
    let series = store
        .monitor_series(WorkspaceId::DEFAULT, monitors[4].id, Some("price"), 10)
        .await
        .unwrap();
    assert_eq!(
        series.iter().map(|p| (p.run_id, p.at)).collect::<Vec<_>>(),
        vec![(first, at(3)), (runs[4].id, at(12))]
    );
    assert!(store
        .monitor_series(WorkspaceId::DEFAULT, monitors[3].id, Some("price"), 10)
        .await
        .unwrap()
        .is_empty());
    // An empty batch is no error.
    assert!(store.monitor_runs_complete(&[]).await.unwrap().is_empty());
}

conformance!(
    a_completion_records_the_runs_artifacts_with_its_outcome,
    gauges_read_each_monitors_newest_run_and_latest_values,
    snapshots_are_read_newest_or_oldest_first,
    a_run_whose_job_dies_or_is_cancelled_ends_in_error,
    monitors_are_scoped_listed_by_tag_and_paged,
    updates_are_fenced_and_deletion_takes_the_history,
    a_slot_starts_once_with_its_job_and_moves_the_due_time,
    a_stale_read_starts_nothing,
    a_completion_records_the_outcome_and_moves_the_baseline,
    a_failed_smoke_check_job_fails_its_run,
    a_batch_starts_each_run_on_its_own,
    a_batch_completes_each_run_on_its_own,
);
