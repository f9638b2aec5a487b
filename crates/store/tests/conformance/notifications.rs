//! [`accord_store::NotificationStore`]: targets kept within their
//! workspace and updated without lost updates; a run's messages written in
//! its completion's transaction, one per subscribed, unpaused target of the
//! workspace whose events match (nothing on a stale completion); claims
//! that lease a message to one claimer at a time, fenced on the attempt
//! number; retries, final failure and the automatic pause of a target that
//! keeps failing; redelivery; the delivery log by target and by monitor.

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_model::{
    CompleteItem, DeliveryState, Monitor, MonitorId, Notice, NoticeMonitor, NotifyEvent,
    RunTrigger, Schedule, ScheduleSpec, Subscription, Target, TargetAddress, TargetId, TargetKind,
    WebhookSecret, WorkflowKind, WorkspaceId,
};
use accord_store::{
    AttemptNext, AttemptRecord, ClaimedMessage, CompleteRun, CompleteRunOutcome, DeadRunVerdict,
    DeliveryFilter, FailParams, InsertJob, NewMessage, RecordOutcome, RunNotice, RunRecord,
    StartOutcome, StartRun, Store,
};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::fixtures::*;
use crate::harness::conformance;

conformance!(
    targets_are_scoped_and_updated_without_lost_updates,
    a_completion_writes_the_messages_its_subscriptions_ask_for,
    a_claim_leases_each_message_to_one_claimer,
    failures_retry_then_fail_and_pause_the_target,
    a_message_can_be_delivered_again,
    concurrent_claims_never_share_a_message,
    a_dead_smoke_check_records_its_verdict_and_notifies,
);

fn target(workspace: WorkspaceId, name: &str) -> Target {
    Target {
        id: TargetId::new(),
        workspace_id: workspace,
        name: name.to_owned(),
        kind: TargetKind::Webhook,
        address: TargetAddress::Url("https://hooks.example.com/in".parse().unwrap()),
        secret: Some(WebhookSecret::from_key(b"0123456789")),
        previous_secret: None,
        paused: false,
        paused_reason: None,
        consecutive_failures: 0,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn events(list: &[NotifyEvent]) -> BTreeSet<NotifyEvent> {
    list.iter().copied().collect()
}

fn notice(monitor: MonitorId, test: bool) -> Notice {
    Notice {
        version: 1,
        monitor: NoticeMonitor {
            id: monitor,
            name: "m".to_owned(),
            workflow: WorkflowKind::PageChange,
            url: "https://example.com/".to_owned(),
        },
        run: None,
        outcome: Some(json!({"changed": true})),
        test,
    }
}

fn monitor(workspace: WorkspaceId, notify: Vec<Subscription>) -> Monitor {
    let spec = ScheduleSpec {
        every: Some("1h".to_owned()),
        cron: None,
        time_zone: None,
    };
    Monitor {
        id: MonitorId::new(),
        workspace_id: workspace,
        name: "m".to_owned(),
        workflow: WorkflowKind::PageChange,
        url: "https://example.com/".parse().unwrap(),
        engine: accord_model::Engine::Http,
        input: json!({}),
        schedule: Schedule::parse(&spec, "schedule", 0).unwrap(),
        tags: BTreeSet::new(),
        paused: false,
        notify,
        created_at: at(0),
        updated_at: at(0),
        next_due_at: at(3_600),
    }
}

/// Puts `count` test messages for `target` in the outbox at `now`.
async fn enqueue(store: &dyn Store, target: &Target, count: usize, now: DateTime<Utc>) {
    for _ in 0..count {
        store
            .notification_enqueue(&NewMessage {
                id: accord_model::MessageId::new(),
                workspace_id: target.workspace_id,
                target_id: target.id,
                notice: notice(MonitorId::new(), true),
                now,
            })
            .await
            .unwrap();
    }
}

fn record(message: &ClaimedMessage, next: AttemptNext, at: DateTime<Utc>) -> AttemptRecord {
    AttemptRecord {
        message_id: message.id,
        attempt: message.attempt,
        at,
        status: Some(if next == AttemptNext::Delivered {
            200
        } else {
            500
        }),
        latency_ms: 12,
        error: (next != AttemptNext::Delivered).then(|| "the receiver answered 500".to_owned()),
        excerpt: Some("ok".to_owned()),
        next,
        pause_after: 3,
    }
}

async fn targets_are_scoped_and_updated_without_lost_updates(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let a = target(WorkspaceId::DEFAULT, "a");
    let b = target(WorkspaceId::DEFAULT, "b");
    let hidden = target(other, "hidden");
    for t in [&a, &b, &hidden] {
        store.target_insert(t).await.unwrap();
    }
    assert_eq!(
        store.target_get(WorkspaceId::DEFAULT, a.id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.target_get(other, a.id).await.unwrap(), None);
    let names: Vec<String> = store
        .target_list(WorkspaceId::DEFAULT, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(
        store
            .targets_existing(WorkspaceId::DEFAULT, &[a.id, hidden.id, TargetId::new()])
            .await
            .unwrap(),
        BTreeSet::from([a.id])
    );

    let mut rotated = a.clone();
    rotated.previous_secret = Some(accord_model::PreviousSecret {
        secret: a.secret.clone().unwrap(),
        until: at(100),
    });
    rotated.secret = Some(WebhookSecret::from_key(b"new key"));
    rotated.updated_at = at(5);
    assert!(store.target_update(&rotated, a.updated_at).await.unwrap());
    let mut stale = a.clone();
    stale.name = "stale".to_owned();
    stale.updated_at = at(6);
    assert!(!store.target_update(&stale, a.updated_at).await.unwrap());
    assert_eq!(
        store.target_get(WorkspaceId::DEFAULT, a.id).await.unwrap(),
        Some(rotated)
    );

    assert!(!store.target_delete(other, a.id).await.unwrap());
    assert!(store
        .target_delete(WorkspaceId::DEFAULT, a.id)
        .await
        .unwrap());
    assert_eq!(
        store.target_get(WorkspaceId::DEFAULT, a.id).await.unwrap(),
        None
    );
}

async fn a_completion_writes_the_messages_its_subscriptions_ask_for(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let changes = target(WorkspaceId::DEFAULT, "changes");
    let failures = target(WorkspaceId::DEFAULT, "failures");
    let paused = Target {
        paused: true,
        ..target(WorkspaceId::DEFAULT, "paused")
    };
    let foreign = target(other, "foreign");
    for t in [&changes, &failures, &paused, &foreign] {
        store.target_insert(t).await.unwrap();
    }
    let sub = |t: &Target, list: &[NotifyEvent]| Subscription {
        target: t.id,
        events: events(list),
    };
    let m = monitor(
        WorkspaceId::DEFAULT,
        vec![
            sub(&changes, &[NotifyEvent::Changed, NotifyEvent::NewItems]),
            sub(&failures, &[NotifyEvent::Failed]),
            sub(&paused, &[NotifyEvent::Changed]),
            // Refused by the queue; the store still sends nothing there.
            sub(&foreign, &[NotifyEvent::Changed]),
        ],
    );
    store.monitor_insert(&m).await.unwrap();
    assert_eq!(
        store.monitor_get(WorkspaceId::DEFAULT, m.id).await.unwrap(),
        Some(m.clone())
    );
    let start = StartRun {
        workspace_id: m.workspace_id,
        monitor_id: m.id,
        trigger: RunTrigger::Manual,
        slot: at(1),
        advance: None,
        job: InsertJob {
            id: accord_model::JobId::new(),
            workspace_id: m.workspace_id,
            job: new_job(r#","max_attempts":1"#),
            run_on: accord_model::RunEngine::Http,
            engine_reason: None,
            idempotency: None,
        },
        now: at(1),
    };
    let StartOutcome::Started { run, .. } = store.monitor_run_start(&start).await.unwrap() else {
        panic!("the run should start");
    };
    let lease = claim(&*store, "w", 1, at(2)).await.remove(0);
    let completion = |who: &str| CompleteRun {
        worker: worker(who),
        item: CompleteItem {
            job_id: lease.job_id,
            attempt: lease.attempt,
            result: result(),
        },
        now: at(3),
        monitor_id: m.id,
        run_id: run.id,
        baseline_run_id: None,
        record: RunRecord::Outcome {
            outcome: json!({"changed": true}),
            snapshot: json!({"text": "t"}),
            values: Vec::new(),
            events: events(&[NotifyEvent::Changed]),
            artifacts: Vec::new(),
            items: None,
        },
        notice: Some(RunNotice {
            events: events(&[NotifyEvent::Changed]),
            notice: notice(m.id, false),
        }),
    };
    // A stale completion writes no message.
    assert_eq!(
        store
            .monitor_run_complete(&completion("intruder"))
            .await
            .unwrap(),
        CompleteRunOutcome::Stale
    );
    assert!(store
        .deliveries(
            WorkspaceId::DEFAULT,
            &DeliveryFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.monitor_run_complete(&completion("w")).await.unwrap(),
        CompleteRunOutcome::Applied(_)
    ));
    let by_monitor = store
        .deliveries(
            WorkspaceId::DEFAULT,
            &DeliveryFilter {
                monitor: Some(m.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_monitor.len(), 1, "{by_monitor:?}");
    let delivery = &by_monitor[0];
    assert_eq!(delivery.target_id, changes.id);
    assert_eq!(delivery.run_id, Some(run.id));
    assert_eq!(delivery.events, events(&[NotifyEvent::Changed]));
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!(delivery.next_attempt_at, Some(at(3)));
    assert!(delivery.attempts.is_empty());
    assert!(store
        .deliveries(
            other,
            &DeliveryFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty());
    // The claimed message carries what the sender needs.
    let claimed = store.notification_claim(at(4), at(64), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, delivery.id);
    assert_eq!(claimed[0].target, changes);
    assert_eq!(claimed[0].notice, notice(m.id, false));
    assert_eq!(claimed[0].monitor_id, Some(m.id));
}

async fn a_claim_leases_each_message_to_one_claimer(store: Arc<dyn Store>) {
    let t = target(WorkspaceId::DEFAULT, "t");
    store.target_insert(&t).await.unwrap();
    enqueue(&*store, &t, 1, at(0)).await;
    // Not due before it was queued.
    assert!(store
        .notification_claim(at(-1), at(59), 10)
        .await
        .unwrap()
        .is_empty());
    let first = store.notification_claim(at(0), at(60), 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].attempt, first[0].round_attempt), (1, 1));
    // Leased: nobody else gets it until the lease ends.
    assert!(store
        .notification_claim(at(30), at(90), 10)
        .await
        .unwrap()
        .is_empty());
    // The first claimer died; the lease ran out and the message is claimed again.
    let second = store.notification_claim(at(61), at(121), 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].attempt, 2);
    // The first claimer's late record is refused; the second's is kept.
    assert_eq!(
        store
            .notification_record(&record(&first[0], AttemptNext::Delivered, at(62)))
            .await
            .unwrap(),
        RecordOutcome::Stale
    );
    assert_eq!(
        store
            .notification_record(&record(&second[0], AttemptNext::Delivered, at(63)))
            .await
            .unwrap(),
        RecordOutcome::Recorded {
            target_paused: false
        }
    );
    let delivery = store
        .delivery_get(WorkspaceId::DEFAULT, first[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(delivery.finished_at, Some(at(63)));
    assert_eq!(delivery.attempts.len(), 1);
    let attempt = &delivery.attempts[0];
    assert_eq!(
        (
            attempt.attempt,
            attempt.status,
            attempt.latency_ms,
            attempt.delivered
        ),
        (2, Some(200), 12, true)
    );
    assert_eq!(attempt.excerpt.as_deref(), Some("ok"));
    // Delivered: never claimed again.
    assert!(store
        .notification_claim(at(1_000), at(1_060), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn failures_retry_then_fail_and_pause_the_target(store: Arc<dyn Store>) {
    let t = target(WorkspaceId::DEFAULT, "t");
    store.target_insert(&t).await.unwrap();
    enqueue(&*store, &t, 1, at(0)).await;
    let claimed = store.notification_claim(at(0), at(60), 10).await.unwrap();
    store
        .notification_record(&record(&claimed[0], AttemptNext::RetryAt(at(10)), at(1)))
        .await
        .unwrap();
    assert!(store
        .notification_claim(at(9), at(69), 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = store.notification_claim(at(10), at(70), 10).await.unwrap();
    assert_eq!(claimed[0].attempt, 2);
    store
        .notification_record(&record(&claimed[0], AttemptNext::Failed, at(11)))
        .await
        .unwrap();
    let delivery = store
        .delivery_get(WorkspaceId::DEFAULT, claimed[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Failed);
    assert_eq!(delivery.attempts.len(), 2);
    assert_eq!(
        store
            .target_get(WorkspaceId::DEFAULT, t.id)
            .await
            .unwrap()
            .unwrap()
            .consecutive_failures,
        2
    );

    // The third failure in a row (pause_after = 3) pauses the target, once.
    enqueue(&*store, &t, 2, at(20)).await;
    let claimed = store.notification_claim(at(20), at(80), 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        store
            .notification_record(&record(&claimed[0], AttemptNext::RetryAt(at(30)), at(21)))
            .await
            .unwrap(),
        RecordOutcome::Recorded {
            target_paused: true
        }
    );
    assert_eq!(
        store
            .notification_record(&record(&claimed[1], AttemptNext::RetryAt(at(30)), at(21)))
            .await
            .unwrap(),
        RecordOutcome::Recorded {
            target_paused: false
        }
    );
    let paused = store
        .target_get(WorkspaceId::DEFAULT, t.id)
        .await
        .unwrap()
        .unwrap();
    assert!(paused.paused);
    assert_eq!(
        paused.paused_reason.as_deref(),
        Some("paused after 3 failed attempts in a row")
    );
    // A paused target's messages wait.
    assert!(store
        .notification_claim(at(100), at(160), 10)
        .await
        .unwrap()
        .is_empty());
    // Resumed: they go again, and a delivery clears the count.
    let mut resumed = paused.clone();
    resumed.paused = false;
    resumed.paused_reason = None;
    resumed.consecutive_failures = 0;
    resumed.updated_at = paused.updated_at + chrono::Duration::milliseconds(1);
    assert!(store
        .target_update(&resumed, paused.updated_at)
        .await
        .unwrap());
    let claimed = store
        .notification_claim(at(100), at(160), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
}

async fn a_message_can_be_delivered_again(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let t = target(WorkspaceId::DEFAULT, "t");
    store.target_insert(&t).await.unwrap();
    enqueue(&*store, &t, 1, at(0)).await;
    let claimed = store.notification_claim(at(0), at(60), 10).await.unwrap();
    store
        .notification_record(&record(&claimed[0], AttemptNext::Failed, at(1)))
        .await
        .unwrap();
    let id = claimed[0].id;
    assert!(!store
        .notification_redeliver(other, id, at(5))
        .await
        .unwrap());
    assert!(store
        .notification_redeliver(WorkspaceId::DEFAULT, id, at(5))
        .await
        .unwrap());
    let delivery = store
        .delivery_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!(delivery.finished_at, None);
    // A fresh round: the attempt number goes on, the round starts over.
    let again = store.notification_claim(at(5), at(65), 10).await.unwrap();
    assert_eq!((again[0].attempt, again[0].round_attempt), (2, 1));
    let by_target = store
        .deliveries(
            WorkspaceId::DEFAULT,
            &DeliveryFilter {
                target: Some(t.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_target.len(), 1);
    assert!(by_target[0].test);
}

async fn concurrent_claims_never_share_a_message(store: Arc<dyn Store>) {
    let t = target(WorkspaceId::DEFAULT, "t");
    store.target_insert(&t).await.unwrap();
    enqueue(&*store, &t, 40, at(0)).await;
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.notification_claim(at(1), at(61), 15).await.unwrap() })
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for claimer in claimers {
        for message in claimer.await.unwrap() {
            total += 1;
            assert!(seen.insert(message.id), "{} was claimed twice", message.id);
        }
    }
    assert_eq!(total, 40);
}

/// Starts a manual run of `m` at `second` whose job allows `attempts`.
async fn start_run(
    store: &dyn Store,
    m: &Monitor,
    second: i64,
    attempts: u32,
) -> accord_model::MonitorRun {
    let start = StartRun {
        workspace_id: m.workspace_id,
        monitor_id: m.id,
        trigger: RunTrigger::Manual,
        slot: at(second),
        advance: None,
        job: InsertJob {
            id: accord_model::JobId::new(),
            workspace_id: m.workspace_id,
            job: new_job(&format!(r#","max_attempts":{attempts}"#)),
            run_on: accord_model::RunEngine::Http,
            engine_reason: None,
            idempotency: None,
        },
        now: at(second),
    };
    match store.monitor_run_start(&start).await.unwrap() {
        StartOutcome::Started { run, .. } => run,
        other => panic!("the run should start: {other:?}"),
    }
}

/// Fails the leased job with `verdicts`, as the queue does.
async fn fail_with(
    store: &dyn Store,
    lease: accord_model::LeaseRef,
    verdicts: Vec<DeadRunVerdict>,
    now: DateTime<Utc>,
) -> accord_model::JobState {
    let params = FailParams {
        worker_id: worker("w"),
        items: vec![accord_model::FailItem {
            job_id: lease.job_id,
            attempt: lease.attempt,
            error: accord_model::JobError::new(
                accord_model::ErrorKind::Retryable,
                "connection refused",
            ),
        }],
        now,
        jitter: vec![0.0],
        verdicts,
    };
    match store.job_fail_if_leased(&params).await.unwrap().remove(0) {
        accord_store::ReportOutcome::Applied(transition) => transition.to,
        other => panic!("the failure should apply: {other:?}"),
    }
}

fn verdict(m: &Monitor, run: &accord_model::MonitorRun, baseline: Option<i64>) -> DeadRunVerdict {
    DeadRunVerdict {
        job_id: run.job_id,
        monitor_id: m.id,
        run_id: run.id,
        baseline_run_id: baseline,
        outcome: json!({"passed": false}),
        snapshot: json!({"passed": false}),
        events: events(&[NotifyEvent::Failed]),
        notice: Some(RunNotice {
            events: events(&[NotifyEvent::Failed]),
            notice: notice(m.id, false),
        }),
    }
}

async fn monitor_deliveries(store: &dyn Store, m: &Monitor) -> usize {
    store
        .deliveries(
            WorkspaceId::DEFAULT,
            &DeliveryFilter {
                monitor: Some(m.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .len()
}

/// A smoke check whose job dies (the site is down) records the verdict
/// that came with the failure, makes it the baseline and writes its
/// messages in the failure's transaction; a failure that will be retried
/// records nothing yet; a verdict judged against a baseline that has
/// since moved only fails the run.
async fn a_dead_smoke_check_records_its_verdict_and_notifies(store: Arc<dyn Store>) {
    let failures = target(WorkspaceId::DEFAULT, "failures");
    store.target_insert(&failures).await.unwrap();
    let m = Monitor {
        workflow: WorkflowKind::SmokeCheck,
        ..monitor(
            WorkspaceId::DEFAULT,
            vec![Subscription {
                target: failures.id,
                events: events(&[NotifyEvent::Failed]),
            }],
        )
    };
    store.monitor_insert(&m).await.unwrap();

    // Retried: the verdict waits for the job to die.
    let run = start_run(&*store, &m, 1, 2).await;
    let lease = claim(&*store, "w", 1, at(2)).await.remove(0);
    let to = fail_with(&*store, lease, vec![verdict(&m, &run, None)], at(3)).await;
    assert_eq!(to, accord_model::JobState::Retrying);
    let still = store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, run.id)
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(still.state, accord_model::RunState::Running);
    assert_eq!(monitor_deliveries(&*store, &m).await, 0);

    // The last attempt dies: verdict, baseline and message together.
    let lease = claim(&*store, "w", 1, at(10_000)).await.remove(0);
    let to = fail_with(&*store, lease, vec![verdict(&m, &run, None)], at(10_001)).await;
    assert_eq!(to, accord_model::JobState::Dead);
    let failed = store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, run.id)
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(failed.state, accord_model::RunState::Failed);
    assert_eq!(failed.outcome, Some(json!({"passed": false})));
    assert_eq!(failed.error.as_deref(), Some("connection refused"));
    assert!(failed.has_snapshot, "{failed:?}");
    assert_eq!(monitor_deliveries(&*store, &m).await, 1);

    // The next run is judged against it.
    let next = start_run(&*store, &m, 20_000, 1).await;
    let context = store
        .monitor_run_context(next.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(context.baseline.map(|b| b.run_id), Some(run.id));

    // A verdict judged against another baseline only fails the run.
    let lease = claim(&*store, "w", 1, at(20_001)).await.remove(0);
    let to = fail_with(&*store, lease, vec![verdict(&m, &next, None)], at(20_002)).await;
    assert_eq!(to, accord_model::JobState::Dead);
    let fenced = store
        .monitor_run_get(WorkspaceId::DEFAULT, m.id, next.id)
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(fenced.state, accord_model::RunState::Failed);
    assert_eq!(fenced.outcome, None);
    assert!(!fenced.has_snapshot);
    assert_eq!(monitor_deliveries(&*store, &m).await, 1);
}
