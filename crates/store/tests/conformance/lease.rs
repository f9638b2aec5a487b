//! [`accord_store::LeaseStore`]: claims, heartbeats, reports and the reaper,
//! each fenced on the lease.

use std::sync::Arc;

use accord_model::{ErrorKind, EventKind, JobId, JobState, LeaseRef, QueueName, WorkspaceId};
use accord_store::{CancelOutcome, ClaimParams, ReportOutcome, Store};

use crate::fixtures::*;
use crate::harness::conformance;

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
        engines: accord_model::RunEngine::ALL.to_vec(),
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

/// A deferred job waits until its time without using up an attempt, and
/// its event says why; a stale lease changes nothing.
async fn defer_waits_without_using_up_an_attempt(store: Arc<dyn Store>) {
    let id = insert(&*store, r#","max_attempts":1"#, t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await;
    let item = |attempt: u32| accord_store::DeferLease {
        lease: accord_model::LeaseRef {
            job_id: id,
            attempt,
        },
        run_at: at(60),
        message: "example.com asked to wait (Retry-After)".to_owned(),
    };
    let stale = store
        .job_defer_if_leased(&worker("w"), &[item(lease[0].attempt + 1)], at(1))
        .await
        .unwrap();
    assert!(matches!(stale[0], ReportOutcome::Stale(job) if job == id));
    let outcome = store
        .job_defer_if_leased(&worker("w"), &[item(lease[0].attempt)], at(1))
        .await
        .unwrap();
    assert!(matches!(&outcome[0], ReportOutcome::Applied(t) if t.to == JobState::Available));
    assert!(claim(&*store, "w", 1, at(59)).await.is_empty());
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state, job.attempts_left), (JobState::Available, 1));
    let events = store
        .job_events(WorkspaceId::DEFAULT, id, None, 100)
        .await
        .unwrap()
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::Released);
    assert_eq!(
        last.message.as_deref(),
        Some("example.com asked to wait (Retry-After)")
    );
    let again = claim(&*store, "w", 1, at(60)).await;
    assert_eq!(again[0].attempt, 2);
}

/// Every event names the state its transition left. A transition made by
/// one statement must find that state in the same statement; a claim of
/// several jobs must still answer most urgent first.
async fn events_name_the_state_each_transition_left(store: Arc<dyn Store>) {
    let last_event = |id: JobId| {
        let store = store.clone();
        async move {
            let events = store
                .job_events(WorkspaceId::DEFAULT, id, None, 100)
                .await
                .unwrap()
                .unwrap();
            let last = events.last().unwrap();
            (last.kind, last.from_state, last.to_state)
        }
    };
    let retried = insert(&*store, r#","priority":"low""#, t0()).await;
    let lease = claim(&*store, "w", 10, t0()).await.remove(0);
    fail(&*store, "w", lease, ErrorKind::Retryable, at(1)).await;
    let run_at = at(5).to_rfc3339();
    let scheduled = insert(
        &*store,
        &format!(r#","run_at":"{run_at}","priority":"high""#),
        at(1),
    )
    .await;
    let available = insert(&*store, "", at(1)).await;

    let order: Vec<JobId> = claim(&*store, "w", 10, at(10))
        .await
        .iter()
        .map(|lease| lease.job_id)
        .collect();
    assert_eq!(order, [scheduled, available, retried], "most urgent first");
    use JobState::*;
    assert_eq!(
        last_event(scheduled).await,
        (EventKind::Claimed, Some(Scheduled), Running)
    );
    assert_eq!(
        last_event(available).await,
        (EventKind::Claimed, Some(Available), Running)
    );
    assert_eq!(
        last_event(retried).await,
        (EventKind::Claimed, Some(Retrying), Running)
    );

    store
        .job_cancel(WorkspaceId::DEFAULT, available, at(11))
        .await
        .unwrap();
    assert_eq!(
        last_event(available).await,
        (EventKind::Cancelled, Some(Running), Cancelled)
    );
    store
        .job_retry(WorkspaceId::DEFAULT, available, at(12))
        .await
        .unwrap();
    assert_eq!(
        last_event(available).await,
        (EventKind::Requeued, Some(Cancelled), Available)
    );
}

conformance!(
    claim_takes_priority_then_due_time,
    scheduled_jobs_wait_for_run_at,
    claim_respects_limit_and_queues,
    concurrent_claims_never_share_a_job,
    complete_needs_the_current_token,
    retryable_failures_back_off_then_dead_letter,
    permanent_failure_dead_letters_at_once,
    heartbeat_extends_and_reports_cancellations,
    leases_never_outlive_the_timeout,
    reaper_requeues_expired_leases_as_new_attempts,
    release_does_not_use_up_an_attempt,
    defer_waits_without_using_up_an_attempt,
    events_name_the_state_each_transition_left,
);
