//! [`accord_store::JobStore`]: inserting, reading, cancelling and requeueing jobs.

use std::sync::Arc;

use accord_model::{ErrorKind, EventKind, JobId, JobState, LeaseRef, NewJob, WorkspaceId};
use accord_store::{
    CancelOutcome, ClaimParams, InsertJob, InsertOutcome, JobFilter, ReportOutcome, RetryOutcome,
    Store,
};

use crate::fixtures::*;
use crate::harness::conformance;

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

async fn insert_many_writes_all_jobs_and_events(store: Arc<dyn Store>) {
    let inserts: Vec<InsertJob> = (0..5)
        .map(|n| InsertJob {
            id: JobId::new(),
            workspace_id: WorkspaceId::DEFAULT,
            job: new_job(&format!(r#","labels":{{"n":"{n}"}}"#)),
            run_on: accord_model::RunEngine::Http,
            engine_reason: None,
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
        engines: accord_model::RunEngine::ALL.to_vec(),
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
        run_on: accord_model::RunEngine::Http,
        engine_reason: None,
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

/// PostgreSQL cannot store NUL in text; SQLite could. Both refuse it alike,
/// before any statement runs, and a filter holding NUL matches nothing on
/// both (it was a 500 on PostgreSQL).
async fn both_backends_refuse_nul_alike(store: Arc<dyn Store>) {
    let nav = r#"{"action":"navigate","url":"https://example.com/"}"#;
    for json in [
        format!(r#"{{"steps":[{nav}],"labels":{{"a\u0000":"b"}}}}"#),
        format!(r#"{{"steps":[{nav}],"labels":{{"a":"b\u0000"}}}}"#),
        format!(r#"{{"steps":[{nav},{{"action":"assert","text":"\u0000"}}]}}"#),
    ] {
        let extra = &json;
        let job: NewJob = serde_json::from_str(&json).unwrap();
        let insert = InsertJob {
            id: JobId::new(),
            workspace_id: WorkspaceId::DEFAULT,
            job,
            run_on: accord_model::RunEngine::Http,
            engine_reason: None,
            idempotency: None,
        };
        let one = store.job_insert(insert.clone(), t0()).await;
        assert!(
            matches!(one, Err(accord_store::StoreError::Unstorable { .. })),
            "{extra}: {one:?}"
        );
        let many = store.job_insert_many(&[insert], t0()).await;
        assert!(
            matches!(many, Err(accord_store::StoreError::Unstorable { .. })),
            "{extra}: {many:?}"
        );
    }
    let keyed = InsertJob {
        id: JobId::new(),
        workspace_id: WorkspaceId::DEFAULT,
        job: new_job(""),
        run_on: accord_model::RunEngine::Http,
        engine_reason: None,
        idempotency: Some(("k\0".to_owned(), "hash".to_owned())),
    };
    assert!(matches!(
        store.job_insert(keyed, t0()).await,
        Err(accord_store::StoreError::Unstorable { .. })
    ));
    insert(&*store, r#","labels":{"a":"b"}"#, t0()).await;
    let filter = JobFilter {
        label: Some(("a".to_owned(), "b\0".to_owned())),
        limit: 10,
        ..JobFilter::default()
    };
    let listed = store.job_list(WorkspaceId::DEFAULT, &filter).await.unwrap();
    assert!(listed.is_empty());
    let page = store
        .job_list(
            WorkspaceId::DEFAULT,
            &JobFilter {
                limit: 10,
                ..JobFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1, "nothing was stored but the clean job");
}

conformance!(
    both_backends_refuse_nul_alike,
    insert_then_get_round_trips,
    insert_many_writes_all_jobs_and_events,
    every_read_is_scoped_by_workspace,
    idempotency_key_returns_original_or_conflicts,
    list_filters_and_pages,
    cancel_handles_every_state,
    requeue_gives_fresh_attempts_and_new_tokens,
);
