//! The storage conformance suite: every backend must pass every test here,
//! each test on a fresh database. Time is passed in explicitly, so nothing
//! here sleeps or reads the wall clock.

use std::sync::Arc;
use std::time::Duration;

use accord_model::{
    CompleteItem, ErrorKind, EventKind, FailItem, JobError, JobId, JobResult, JobState, LeaseRef,
    NewJob, QueueName, Timings, WorkerId, WorkspaceId,
};
use accord_store::{
    CancelOutcome, ClaimParams, FailParams, InsertJob, InsertOutcome, JobFilter, PostgresConfig,
    PostgresStore, ReportOutcome, RetryOutcome, Store,
};
use accord_test_support::TestDatabase;
use chrono::{DateTime, TimeZone, Utc};

const TTL: Duration = Duration::from_secs(30);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(seconds)
}

fn new_job(extra: &str) -> NewJob {
    let json =
        format!(r#"{{"steps":[{{"action":"navigate","url":"https://example.com/"}}]{extra}}}"#);
    serde_json::from_str(&json).unwrap()
}

fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).unwrap()
}

async fn other_workspace(store: &dyn Store) -> WorkspaceId {
    let workspace = accord_model::Workspace {
        id: WorkspaceId::new(),
        name: format!("ws-{}", WorkspaceId::new()),
        created_at: t0(),
    };
    assert!(store.workspace_create(&workspace).await.unwrap());
    workspace.id
}

async fn insert(store: &dyn Store, extra: &str, now: DateTime<Utc>) -> JobId {
    let insert = InsertJob {
        id: JobId::new(),
        workspace_id: WorkspaceId::DEFAULT,
        job: new_job(extra),
        idempotency: None,
    };
    match store.job_insert(insert, now).await.unwrap() {
        InsertOutcome::Created(job) => job.id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn claim(store: &dyn Store, who: &str, limit: u32, now: DateTime<Utc>) -> Vec<LeaseRef> {
    let params = ClaimParams {
        worker_id: worker(who),
        workspace: None,
        queues: Vec::new(),
        limit,
        now,
        lease_ttl: TTL,
    };
    store
        .job_claim_available(&params)
        .await
        .unwrap()
        .iter()
        .map(|job| job.lease())
        .collect()
}

async fn state_of(store: &dyn Store, id: JobId) -> JobState {
    store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap()
        .state
}

fn result() -> JobResult {
    JobResult {
        extracted: Default::default(),
        status: 200,
        final_url: "https://example.com/".into(),
        timings: Timings::default(),
    }
}

async fn complete(
    store: &dyn Store,
    who: &str,
    lease: LeaseRef,
    now: DateTime<Utc>,
) -> ReportOutcome {
    let item = CompleteItem {
        job_id: lease.job_id,
        attempt: lease.attempt,
        result: result(),
    };
    store
        .job_complete_if_leased(&worker(who), &[item], now)
        .await
        .unwrap()
        .remove(0)
}

async fn fail(
    store: &dyn Store,
    who: &str,
    lease: LeaseRef,
    kind: ErrorKind,
    now: DateTime<Utc>,
) -> ReportOutcome {
    let params = FailParams {
        worker_id: worker(who),
        items: vec![FailItem {
            job_id: lease.job_id,
            attempt: lease.attempt,
            error: JobError::new(kind, "boom"),
        }],
        now,
        jitter: vec![0.5],
    };
    store.job_fail_if_leased(&params).await.unwrap().remove(0)
}

async fn event_kinds(store: &dyn Store, id: JobId) -> Vec<EventKind> {
    let events = store
        .job_events(WorkspaceId::DEFAULT, id, None, 100)
        .await
        .unwrap()
        .unwrap();
    events.iter().map(|e| e.kind).collect()
}

// ---------------------------------------------------------------------------

async fn insert_then_get_round_trips(store: Arc<dyn Store>) {
    let id = insert(
        &*store,
        r#","priority":"high","labels":{"team":"web"},"queue":"q1""#,
        t0(),
    )
    .await;
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.priority, accord_model::Priority::High);
    assert_eq!(job.queue.as_str(), "q1");
    assert_eq!(job.labels.get("team").map(String::as_str), Some("web"));
    assert_eq!(
        (job.attempt, job.attempts_left, job.max_attempts),
        (0, 3, 3)
    );
    assert_eq!(job.created_at, t0());
    assert_eq!(event_kinds(&*store, id).await, [EventKind::Created]);
}

async fn every_read_is_scoped_by_workspace(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let id = insert(&*store, "", t0()).await;
    assert!(store.job_get(other, id).await.unwrap().is_none());
    assert!(store
        .job_events(other, id, None, 10)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.job_cancel(other, id, t0()).await.unwrap(),
        CancelOutcome::NotFound
    ));
    assert!(matches!(
        store.job_retry(other, id, t0()).await.unwrap(),
        RetryOutcome::NotFound
    ));
    let listed = store
        .job_list(
            other,
            &JobFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(listed.is_empty());
    assert_eq!(state_of(&*store, id).await, JobState::Available);

    // A worker scoped to another workspace leases nothing of this one.
    let scoped = ClaimParams {
        worker_id: worker("w"),
        workspace: Some(other),
        queues: Vec::new(),
        limit: 10,
        now: t0(),
        lease_ttl: TTL,
    };
    assert!(store.job_claim_available(&scoped).await.unwrap().is_empty());
    let own = ClaimParams {
        workspace: Some(WorkspaceId::DEFAULT),
        ..scoped
    };
    let claimed = store.job_claim_available(&own).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job_id, id);
}

async fn idempotency_key_returns_original_or_conflicts(store: Arc<dyn Store>) {
    let job = new_job("");
    let keyed = |job: NewJob, workspace| InsertJob {
        id: JobId::new(),
        workspace_id: workspace,
        idempotency: Some(("key-1".to_owned(), job.request_hash())),
        job,
    };
    let InsertOutcome::Created(first) = store
        .job_insert(keyed(job.clone(), WorkspaceId::DEFAULT), t0())
        .await
        .unwrap()
    else {
        panic!("first insert must create");
    };
    match store
        .job_insert(keyed(job.clone(), WorkspaceId::DEFAULT), at(1))
        .await
        .unwrap()
    {
        InsertOutcome::Existing(again) => assert_eq!(again.id, first.id),
        other => panic!("same key and body must return the original, got {other:?}"),
    }
    let different = new_job(r#","priority":"low""#);
    assert!(matches!(
        store
            .job_insert(keyed(different, WorkspaceId::DEFAULT), at(2))
            .await
            .unwrap(),
        InsertOutcome::KeyReused
    ));
    // Keys are per workspace.
    assert!(matches!(
        store
            .job_insert(keyed(job, other_workspace(&*store).await), at(3))
            .await
            .unwrap(),
        InsertOutcome::Created(_)
    ));
    let listed = store
        .job_list(
            WorkspaceId::DEFAULT,
            &JobFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "nothing but the original was stored");
}

async fn claim_takes_priority_then_due_time(store: Arc<dyn Store>) {
    let low = insert(&*store, r#","priority":"low""#, at(0)).await;
    let normal_late = insert(&*store, "", at(2)).await;
    let normal_early = insert(&*store, "", at(1)).await;
    let critical = insert(&*store, r#","priority":"critical""#, at(3)).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        order.extend(
            claim(&*store, "w", 1, at(10))
                .await
                .into_iter()
                .map(|l| l.job_id),
        );
    }
    assert_eq!(order, [critical, normal_early, normal_late, low]);
    assert!(claim(&*store, "w", 1, at(10)).await.is_empty());
}

async fn scheduled_jobs_wait_for_run_at(store: Arc<dyn Store>) {
    let run_at = at(60).to_rfc3339();
    let id = insert(&*store, &format!(r#","run_at":"{run_at}""#), t0()).await;
    assert_eq!(state_of(&*store, id).await, JobState::Scheduled);
    assert_eq!(store.job_next_due_at(&[]).await.unwrap(), Some(at(60)));
    assert!(claim(&*store, "w", 10, at(59)).await.is_empty());
    let leases = claim(&*store, "w", 10, at(60)).await;
    assert_eq!(leases.len(), 1);
    assert_eq!(store.job_next_due_at(&[]).await.unwrap(), None);
}

async fn claim_respects_limit_and_queues(store: Arc<dyn Store>) {
    for _ in 0..3 {
        insert(&*store, r#","queue":"a""#, t0()).await;
    }
    let b = insert(&*store, r#","queue":"b""#, t0()).await;
    let params = ClaimParams {
        worker_id: worker("w"),
        workspace: None,
        queues: vec![QueueName::new("b").unwrap()],
        limit: 10,
        now: at(1),
        lease_ttl: TTL,
    };
    let claimed = store.job_claim_available(&params).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.job_id).collect::<Vec<_>>(), [b]);
    assert_eq!(claim(&*store, "w", 2, at(1)).await.len(), 2);
    assert_eq!(claim(&*store, "w", 2, at(1)).await.len(), 1);
}

async fn concurrent_claims_never_share_a_job(store: Arc<dyn Store>) {
    for _ in 0..60 {
        insert(&*store, "", t0()).await;
    }
    let mut tasks = Vec::new();
    for n in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim(&*store, &format!("w{n}"), 3, at(1)).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|l| l.job_id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!((total, all.len()), (60, 60));
}

async fn complete_needs_the_current_token(store: Arc<dyn Store>) {
    let id = insert(&*store, "", t0()).await;
    let lease = claim(&*store, "w", 1, at(1)).await[0];
    assert_eq!(lease.attempt, 1);
    let stale = LeaseRef {
        attempt: 0,
        ..lease
    };
    assert_eq!(
        complete(&*store, "w", stale, at(2)).await,
        ReportOutcome::Stale(id)
    );
    assert_eq!(
        complete(&*store, "other", lease, at(2)).await,
        ReportOutcome::Stale(id)
    );
    assert_eq!(state_of(&*store, id).await, JobState::Running);
    assert!(
        matches!(complete(&*store, "w", lease, at(3)).await, ReportOutcome::Applied(t) if t.to == JobState::Succeeded)
    );
    // Nothing is completed twice.
    assert_eq!(
        complete(&*store, "w", lease, at(4)).await,
        ReportOutcome::Stale(id)
    );
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.finished_at, Some(at(3)));
    assert_eq!(job.result, Some(result()));
    assert_eq!(
        event_kinds(&*store, id).await,
        [EventKind::Created, EventKind::Claimed, EventKind::Succeeded]
    );
}

async fn retryable_failures_back_off_then_dead_letter(store: Arc<dyn Store>) {
    let id = insert(
        &*store,
        r#","retry":{"initial_delay_ms":1000,"jitter":0.0}"#,
        t0(),
    )
    .await;
    let first = claim(&*store, "w", 1, at(0)).await[0];
    assert!(
        matches!(fail(&*store, "w", first, ErrorKind::Retryable, at(0)).await, ReportOutcome::Applied(t) if t.to == JobState::Retrying)
    );
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state, job.run_at, job.attempts_left),
        (JobState::Retrying, at(1), 2)
    );
    assert!(
        claim(&*store, "w", 1, at(0)).await.is_empty(),
        "not before the backoff"
    );
    let second = claim(&*store, "w", 1, at(1)).await[0];
    assert_eq!(second.attempt, 2);
    fail(&*store, "w", second, ErrorKind::Timeout, at(1)).await;
    assert_eq!(
        store
            .job_get(WorkspaceId::DEFAULT, id)
            .await
            .unwrap()
            .unwrap()
            .run_at,
        at(3),
        "delay doubles"
    );
    let third = claim(&*store, "w", 1, at(3)).await[0];
    assert!(
        matches!(fail(&*store, "w", third, ErrorKind::Retryable, at(3)).await, ReportOutcome::Applied(t) if t.to == JobState::Dead)
    );
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state, job.attempts_left, job.finished_at),
        (JobState::Dead, 0, Some(at(3)))
    );
    assert_eq!(job.last_error.unwrap().message, "boom");
}

async fn permanent_failure_dead_letters_at_once(store: Arc<dyn Store>) {
    let id = insert(&*store, "", t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await[0];
    fail(&*store, "w", lease, ErrorKind::Permanent, at(1)).await;
    assert_eq!(state_of(&*store, id).await, JobState::Dead);
    assert_eq!(
        fail(&*store, "w", lease, ErrorKind::Permanent, at(1)).await,
        ReportOutcome::Stale(id)
    );
}

async fn requeue_gives_fresh_attempts_and_new_tokens(store: Arc<dyn Store>) {
    let id = insert(&*store, r#","max_attempts":1"#, t0()).await;
    let old = claim(&*store, "w", 1, at(0)).await[0];
    fail(&*store, "w", old, ErrorKind::Retryable, at(1)).await;
    assert_eq!(state_of(&*store, id).await, JobState::Dead);
    let RetryOutcome::Requeued(job) = store
        .job_retry(WorkspaceId::DEFAULT, id, at(2))
        .await
        .unwrap()
    else {
        panic!("a dead job can be requeued");
    };
    assert_eq!(
        (job.state, job.attempts_left, job.finished_at),
        (JobState::Available, 1, None)
    );
    let new = claim(&*store, "w", 1, at(2)).await[0];
    assert_eq!(
        new.attempt, 2,
        "tokens keep growing so the old one stays stale"
    );
    assert_eq!(
        complete(&*store, "w", old, at(3)).await,
        ReportOutcome::Stale(id)
    );
    complete(&*store, "w", new, at(3)).await;
    assert!(matches!(
        store
            .job_retry(WorkspaceId::DEFAULT, id, at(4))
            .await
            .unwrap(),
        RetryOutcome::NotRetryable(_)
    ));
    assert_eq!(
        event_kinds(&*store, id).await,
        [
            EventKind::Created,
            EventKind::Claimed,
            EventKind::Failed,
            EventKind::Requeued,
            EventKind::Claimed,
            EventKind::Succeeded
        ]
    );
}

async fn heartbeat_extends_and_reports_cancellations(store: Arc<dyn Store>) {
    let a = insert(&*store, "", t0()).await;
    let b = insert(&*store, "", t0()).await;
    let leases = claim(&*store, "w", 2, at(0)).await;
    let w = worker("w");
    let outcome = store
        .job_heartbeat_leased(&w, &leases, at(20), TTL)
        .await
        .unwrap();
    assert_eq!(outcome.extended.len(), 2);
    let job = store
        .job_get(WorkspaceId::DEFAULT, a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.lease_expires_at, Some(at(50)));
    assert!(matches!(
        store
            .job_cancel(WorkspaceId::DEFAULT, b, at(21))
            .await
            .unwrap(),
        CancelOutcome::Cancelled {
            was: JobState::Running,
            ..
        }
    ));
    let outcome = store
        .job_heartbeat_leased(&w, &leases, at(22), TTL)
        .await
        .unwrap();
    assert_eq!(
        (outcome.extended, outcome.cancelled, outcome.lost),
        (vec![a], vec![b], vec![])
    );
    // Another worker's heartbeat for the same lease extends nothing.
    let outcome = store
        .job_heartbeat_leased(&worker("x"), &leases[..1], at(22), TTL)
        .await
        .unwrap();
    assert_eq!(outcome.lost, vec![a]);
}

async fn leases_never_outlive_the_timeout(store: Arc<dyn Store>) {
    let id = insert(&*store, r#","timeout_seconds":10"#, t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await;
    let w = worker("w");
    store
        .job_heartbeat_leased(&w, &lease, at(5), TTL)
        .await
        .unwrap();
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.lease_expires_at,
        Some(at(35)),
        "capped at timeout (10s) plus one lease (30s)"
    );
    let outcome = store
        .job_heartbeat_leased(&w, &lease, at(40), TTL)
        .await
        .unwrap();
    assert_eq!(outcome.lost, vec![id]);
}

async fn reaper_requeues_expired_leases_as_new_attempts(store: Arc<dyn Store>) {
    let id = insert(&*store, r#","max_attempts":2"#, t0()).await;
    let first = claim(&*store, "dead-worker", 1, at(0)).await[0];
    assert!(
        store
            .job_reap_expired(at(30), 100)
            .await
            .unwrap()
            .is_empty(),
        "not expired yet at the exact expiry"
    );
    let reaped = store.job_reap_expired(at(31), 100).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].to, JobState::Available);
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.last_error.unwrap().kind, ErrorKind::LeaseExpired);
    let second = claim(&*store, "live-worker", 1, at(31)).await[0];
    assert_eq!(second.attempt, 2);
    assert_eq!(
        complete(&*store, "dead-worker", first, at(32)).await,
        ReportOutcome::Stale(id)
    );
    // The second attempt expires too: attempts are exhausted.
    let reaped = store.job_reap_expired(at(100), 100).await.unwrap();
    assert_eq!(reaped[0].to, JobState::Dead);
    assert_eq!(
        event_kinds(&*store, id).await,
        [
            EventKind::Created,
            EventKind::Claimed,
            EventKind::LeaseExpired,
            EventKind::Claimed,
            EventKind::LeaseExpired
        ]
    );
}

async fn release_does_not_use_up_an_attempt(store: Arc<dyn Store>) {
    let id = insert(&*store, r#","max_attempts":1"#, t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await;
    let outcome = store
        .job_release_if_leased(&worker("w"), &lease, at(1))
        .await
        .unwrap();
    assert!(matches!(&outcome[0], ReportOutcome::Applied(t) if t.to == JobState::Available));
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state, job.attempts_left), (JobState::Available, 1));
    let again = claim(&*store, "w", 1, at(1)).await;
    assert_eq!(again[0].attempt, 2);
}

async fn cancel_handles_every_state(store: Arc<dyn Store>) {
    let queued = insert(&*store, "", t0()).await;
    let done = insert(&*store, "", t0()).await;
    assert!(matches!(
        store
            .job_cancel(WorkspaceId::DEFAULT, queued, at(1))
            .await
            .unwrap(),
        CancelOutcome::Cancelled {
            was: JobState::Available,
            ..
        }
    ));
    assert!(claim(&*store, "w", 10, at(1))
        .await
        .iter()
        .all(|l| l.job_id != queued));
    let lease = store
        .job_get(WorkspaceId::DEFAULT, done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.state, JobState::Running);
    complete(
        &*store,
        "w",
        LeaseRef {
            job_id: done,
            attempt: 1,
        },
        at(2),
    )
    .await;
    assert!(matches!(
        store
            .job_cancel(WorkspaceId::DEFAULT, done, at(3))
            .await
            .unwrap(),
        CancelOutcome::Finished(_)
    ));
    assert!(matches!(
        store
            .job_cancel(WorkspaceId::DEFAULT, queued, at(3))
            .await
            .unwrap(),
        CancelOutcome::Finished(_)
    ));
    assert!(matches!(
        store
            .job_cancel(WorkspaceId::DEFAULT, JobId::new(), at(3))
            .await
            .unwrap(),
        CancelOutcome::NotFound
    ));
}

async fn prune_removes_only_old_finished_jobs(store: Arc<dyn Store>) {
    let old = insert(&*store, "", t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await[0];
    complete(&*store, "w", lease, at(1)).await;
    let recent = insert(&*store, "", at(2)).await;
    let lease = claim(&*store, "w", 1, at(2)).await[0];
    complete(&*store, "w", lease, at(100)).await;
    let queued = insert(&*store, "", at(3)).await;
    assert_eq!(store.job_prune_finished(at(50), 100).await.unwrap(), 1);
    assert!(store
        .job_get(WorkspaceId::DEFAULT, old)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .job_events(WorkspaceId::DEFAULT, old, None, 10)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .job_get(WorkspaceId::DEFAULT, recent)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .job_get(WorkspaceId::DEFAULT, queued)
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.job_prune_finished(at(50), 100).await.unwrap(), 0);
}

async fn list_filters_and_pages(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let labels = if n % 2 == 0 {
            r#","labels":{"kind":"even"}"#
        } else {
            ""
        };
        ids.push(insert(&*store, labels, at(n)).await);
    }
    let page = |before, limit| JobFilter {
        before,
        limit,
        ..Default::default()
    };
    let first = store
        .job_list(WorkspaceId::DEFAULT, &page(None, 2))
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[4], ids[3]]
    );
    let second = store
        .job_list(WorkspaceId::DEFAULT, &page(Some(ids[3]), 2))
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let even = JobFilter {
        label: Some(("kind".into(), "even".into())),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store
            .job_list(WorkspaceId::DEFAULT, &even)
            .await
            .unwrap()
            .len(),
        3
    );
    claim(&*store, "w", 1, at(10)).await;
    let running = JobFilter {
        state: Some(JobState::Running),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store
            .job_list(WorkspaceId::DEFAULT, &running)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn stats_count_by_state_and_priority(store: Arc<dyn Store>) {
    insert(&*store, r#","priority":"high""#, at(0)).await;
    insert(&*store, "", at(1)).await;
    insert(&*store, "", at(2)).await;
    let lease = claim(&*store, "w", 1, at(5)).await[0];
    complete(&*store, "w", lease, at(6)).await;
    let stats = store
        .queue_stats(WorkspaceId::DEFAULT, at(0), at(10))
        .await
        .unwrap();
    let count = |state, priority| {
        stats
            .counts
            .iter()
            .filter(|c| c.state == state && c.priority == priority)
            .map(|c| c.count)
            .sum::<u64>()
    };
    assert_eq!(count(JobState::Succeeded, accord_model::Priority::High), 1);
    assert_eq!(
        count(JobState::Available, accord_model::Priority::Normal),
        2
    );
    assert_eq!(stats.oldest_due_at, Some(at(1)));
    assert_eq!(stats.finished_since.get(&JobState::Succeeded), Some(&1));
    let other = store
        .queue_stats(other_workspace(&*store).await, at(0), at(10))
        .await
        .unwrap();
    assert!(other.counts.is_empty());
    assert_eq!(
        store
            .job_counts()
            .await
            .unwrap()
            .iter()
            .map(|c| c.count)
            .sum::<u64>(),
        3
    );
}

async fn insert_many_writes_all_jobs_and_events(store: Arc<dyn Store>) {
    let inserts: Vec<InsertJob> = (0..5)
        .map(|n| InsertJob {
            id: JobId::new(),
            workspace_id: WorkspaceId::DEFAULT,
            job: new_job(&format!(r#","labels":{{"n":"{n}"}}"#)),
            idempotency: None,
        })
        .collect();
    let created = store.job_insert_many(&inserts, t0()).await.unwrap();
    let ids: Vec<JobId> = created.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        inserts.iter().map(|i| i.id).collect::<Vec<_>>(),
        "request order"
    );
    for id in ids {
        assert_eq!(state_of(&*store, id).await, JobState::Available);
        assert_eq!(event_kinds(&*store, id).await, [EventKind::Created]);
    }
    // All or none: a job of a missing workspace fails the whole batch.
    let mut broken: Vec<InsertJob> = inserts
        .iter()
        .map(|i| InsertJob {
            id: JobId::new(),
            ..i.clone()
        })
        .collect();
    broken[3].workspace_id = WorkspaceId::new();
    assert!(store.job_insert_many(&broken, t0()).await.is_err());
    let listed = store
        .job_list(
            WorkspaceId::DEFAULT,
            &JobFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 5, "nothing of the failed batch was stored");
}

/// Counts by queue, state and priority, as queue stats (per workspace) and
/// metrics (all workspaces) report them, must match the jobs themselves.
async fn check_counts(store: &dyn Store, workspaces: &[WorkspaceId], step: &str) {
    type Counts = std::collections::BTreeMap<(String, JobState, accord_model::Priority), u64>;
    let key = |queue: &QueueName, state, priority| (queue.to_string(), state, priority);
    let mut everywhere = Counts::new();
    for &workspace in workspaces {
        let filter = JobFilter {
            limit: 10_000,
            ..Default::default()
        };
        let mut expected = Counts::new();
        for job in store.job_list(workspace, &filter).await.unwrap() {
            *expected
                .entry(key(&job.queue, job.state, job.priority))
                .or_default() += 1;
        }
        let stats = store.queue_stats(workspace, at(0), at(0)).await.unwrap();
        let counted: Counts = stats
            .counts
            .iter()
            .map(|c| (key(&c.queue, c.state, c.priority), c.count))
            .collect();
        assert_eq!(counted, expected, "queue stats after {step}");
        for (k, n) in expected {
            *everywhere.entry(k).or_default() += n;
        }
    }
    let mut counted = Counts::new();
    for c in store.job_counts().await.unwrap() {
        *counted
            .entry(key(&c.queue, c.state, c.priority))
            .or_default() += c.count;
    }
    assert_eq!(counted, everywhere, "job counts after {step}");
}

async fn counts_follow_every_transition(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let workspaces = [WorkspaceId::DEFAULT, other];
    let s = &*store;
    check_counts(s, &workspaces, "nothing").await;

    insert(s, r#","priority":"high","queue":"q1""#, t0()).await;
    insert(s, r#","max_attempts":1"#, t0()).await;
    let keyed = |workspace| InsertJob {
        id: JobId::new(),
        workspace_id: workspace,
        job: new_job(""),
        idempotency: Some(("key".to_owned(), new_job("").request_hash())),
    };
    store.job_insert(keyed(other), t0()).await.unwrap();
    store.job_insert(keyed(other), t0()).await.unwrap();
    let batch: Vec<InsertJob> = [
        r#","priority":"low""#,
        r#","run_at":"2026-01-01T01:00:00Z""#,
    ]
    .into_iter()
    .map(|extra| InsertJob {
        id: JobId::new(),
        workspace_id: WorkspaceId::DEFAULT,
        job: new_job(extra),
        idempotency: None,
    })
    .collect();
    store.job_insert_many(&batch, t0()).await.unwrap();
    check_counts(s, &workspaces, "inserts").await;

    let leases = claim(s, "w", 3, at(1)).await;
    check_counts(s, &workspaces, "claims").await;
    complete(s, "w", leases[0], at(2)).await;
    fail(s, "w", leases[1], ErrorKind::Retryable, at(2)).await;
    check_counts(s, &workspaces, "complete and fail").await;
    let released = leases[2];
    let outcomes = store
        .job_release_if_leased(&worker("w"), &[released], at(3))
        .await
        .unwrap();
    assert!(matches!(outcomes[0], ReportOutcome::Applied(_)));
    check_counts(s, &workspaces, "release").await;

    let lease = claim(s, "w", 1, at(4)).await[0];
    fail(s, "w", lease, ErrorKind::Permanent, at(5)).await;
    check_counts(s, &workspaces, "dead-lettering").await;
    store
        .job_retry(WorkspaceId::DEFAULT, lease.job_id, at(6))
        .await
        .unwrap();
    check_counts(s, &workspaces, "requeue").await;
    store
        .job_cancel(WorkspaceId::DEFAULT, batch[1].id, at(6))
        .await
        .unwrap();
    check_counts(s, &workspaces, "cancel").await;

    claim(s, "gone", 10, at(7)).await;
    store.job_reap_expired(at(1_000), 100).await.unwrap();
    check_counts(s, &workspaces, "reaping").await;
    store.job_prune_finished(at(900), 100).await.unwrap();
    check_counts(s, &workspaces, "pruning").await;

    // A maintenance pass may fold counters kept on the side; counts hold
    // across it, and after further changes.
    store.job_reap_expired(at(2_000), 100).await.unwrap();
    check_counts(s, &workspaces, "a maintenance pass").await;
    for n in 0..20 {
        insert(s, "", at(n)).await;
    }
    for lease in claim(s, "w", 10, at(2_000)).await {
        complete(s, "w", lease, at(2_001)).await;
    }
    check_counts(s, &workspaces, "more changes").await;
    store.job_reap_expired(at(2_002), 100).await.unwrap();
    check_counts(s, &workspaces, "another maintenance pass").await;
}

/// Runs every conformance test against one backend; `$open` is an async
/// expression giving a fresh `(Arc<dyn Store>, guard)` where the guard keeps
/// the database alive for the test.
macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            conformance!(@tests $open;
                insert_then_get_round_trips,
                insert_many_writes_all_jobs_and_events,
                every_read_is_scoped_by_workspace,
                idempotency_key_returns_original_or_conflicts,
                claim_takes_priority_then_due_time,
                scheduled_jobs_wait_for_run_at,
                claim_respects_limit_and_queues,
                concurrent_claims_never_share_a_job,
                complete_needs_the_current_token,
                retryable_failures_back_off_then_dead_letter,
                permanent_failure_dead_letters_at_once,
                requeue_gives_fresh_attempts_and_new_tokens,
                heartbeat_extends_and_reports_cancellations,
                leases_never_outlive_the_timeout,
                reaper_requeues_expired_leases_as_new_attempts,
                release_does_not_use_up_an_attempt,
                cancel_handles_every_state,
                prune_removes_only_old_finished_jobs,
                list_filters_and_pages,
                stats_count_by_state_and_priority,
                counts_follow_every_transition,
            );
        }
    };
    (@tests $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $open;
                super::$name(store).await;
            }
        )*
    };
}

async fn open_sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = accord_store::SqliteConfig::new(dir.path().join("accord.db"));
    let store = accord_store::SqliteStore::open(&config).await.unwrap();
    (Arc::new(store), dir)
}

conformance!(sqlite, open_sqlite().await);

async fn open_postgres() -> (Arc<dyn Store>, TestDatabase) {
    let database = TestDatabase::create().await;
    let mut config = PostgresConfig::new(database.url());
    config.max_connections = 8;
    let store = PostgresStore::connect(&config).await.unwrap();
    (Arc::new(store), database)
}

conformance!(postgres, open_postgres().await);

async fn hear(wakeups: &mut dyn accord_store::JobWakeups) {
    tokio::time::timeout(Duration::from_secs(20), wakeups.next())
        .await
        .expect("a wake-up arrives")
        .unwrap();
}

/// PostgreSQL only: a control plane hears about jobs inserted, requeued or
/// reaped by another process sharing the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakes_other_processes() {
    let database = TestDatabase::create().await;
    let one = PostgresStore::connect(&PostgresConfig::new(database.url()))
        .await
        .unwrap();
    let two = PostgresStore::connect(&PostgresConfig::new(database.url()))
        .await
        .unwrap();
    let mut wakeups = one
        .job_wakeups()
        .await
        .unwrap()
        .expect("postgres has wake-ups");
    let id = insert(&two, "", t0()).await;
    hear(&mut *wakeups).await;
    let lease = claim(&two, "w", 1, at(0)).await;
    assert_eq!(lease.len(), 1);
    two.job_reap_expired(at(100), 10).await.unwrap();
    hear(&mut *wakeups).await;
    assert_eq!(state_of(&two, id).await, JobState::Available);
    let sqlite = open_sqlite().await;
    assert!(
        sqlite.0.job_wakeups().await.unwrap().is_none(),
        "one process: no wake-ups"
    );
}

/// PostgreSQL only: one process at a time leads the background duties, and
/// another takes over when the leader's session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_elects_one_maintenance_leader() {
    let database = TestDatabase::create().await;
    let one = PostgresStore::connect(&PostgresConfig::new(database.url()))
        .await
        .unwrap();
    let two = PostgresStore::connect(&PostgresConfig::new(database.url()))
        .await
        .unwrap();
    let mut leader = one
        .leadership_try_acquire()
        .await
        .unwrap()
        .expect("the first contender leads");
    assert!(leader.still_held().await);
    assert!(
        two.leadership_try_acquire().await.unwrap().is_none(),
        "only one leader at a time"
    );
    drop(leader);
    // The lock goes with the session; the server notices the closed socket
    // promptly, but give it a few tries.
    let mut took_over = None;
    for _ in 0..100 {
        if let Some(held) = two.leadership_try_acquire().await.unwrap() {
            took_over = Some(held);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(took_over.is_some(), "the other process takes over");
    let sqlite = open_sqlite().await;
    assert!(
        sqlite.0.leadership_try_acquire().await.unwrap().is_some(),
        "one process always leads"
    );
}
