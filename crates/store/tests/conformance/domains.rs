//! [`accord_store::DomainStore`] and the engine each attempt runs on: claims
//! by engine, `auto` jobs moved to the browser (fenced like every report),
//! and the per-domain memory that move leaves, with its expiry.

use std::sync::Arc;
use std::time::Duration;

use accord_model::{ClaimedJob, EscalateItem, EventKind, JobId, JobState, RunEngine, WorkspaceId};
use accord_store::{ClaimParams, EscalateParams, InsertJob, InsertOutcome, ReportOutcome, Store};
use chrono::{DateTime, Utc};

use crate::fixtures::*;
use crate::harness::conformance;

const REMEMBER: Duration = Duration::from_secs(3600);

async fn insert_on(
    store: &dyn Store,
    engine: &str,
    run_on: RunEngine,
    url: &str,
    now: DateTime<Utc>,
) -> JobId {
    let json =
        format!(r#"{{"engine":"{engine}","steps":[{{"action":"navigate","url":"{url}"}}]}}"#);
    let insert = InsertJob {
        id: JobId::new(),
        workspace_id: WorkspaceId::DEFAULT,
        job: serde_json::from_str(&json).unwrap(),
        run_on,
        engine_reason: Some(format!("chosen for {engine}")),
        idempotency: None,
    };
    match store.job_insert(insert, now).await.unwrap() {
        InsertOutcome::Created(job) => job.id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn claim_on(
    store: &dyn Store,
    engines: &[RunEngine],
    limit: u32,
    now: DateTime<Utc>,
) -> Vec<ClaimedJob> {
    let params = ClaimParams {
        worker_id: worker("w"),
        workspace: None,
        queues: Vec::new(),
        limit,
        now,
        lease_ttl: TTL,
        engines: engines.to_vec(),
    };
    store.job_claim_available(&params).await.unwrap()
}

fn escalation(job: &ClaimedJob, reason: &str, now: DateTime<Utc>) -> EscalateParams {
    EscalateParams {
        worker_id: worker("w"),
        items: vec![EscalateItem {
            job_id: job.job_id,
            attempt: job.attempt,
            reason: reason.to_owned(),
        }],
        now,
        remember_for: REMEMBER,
    }
}

async fn claims_take_only_jobs_of_their_engines(store: Arc<dyn Store>) {
    let browser = insert_on(
        &*store,
        "browser",
        RunEngine::Browser,
        "https://a.test/",
        at(0),
    )
    .await;
    let http = insert_on(&*store, "http", RunEngine::Http, "https://b.test/", at(1)).await;

    let taken = claim_on(&*store, &[RunEngine::Http], 10, at(5)).await;
    assert_eq!(taken.iter().map(|j| j.job_id).collect::<Vec<_>>(), [http]);
    assert_eq!(taken[0].run_on, RunEngine::Http);
    assert!(
        claim_on(&*store, &[RunEngine::Http], 10, at(5))
            .await
            .is_empty(),
        "an HTTP-only claim never takes the browser job, even when it is the only one left"
    );

    let taken = claim_on(&*store, &[RunEngine::Browser], 10, at(5)).await;
    assert_eq!(
        taken.iter().map(|j| j.job_id).collect::<Vec<_>>(),
        [browser]
    );
    assert_eq!(taken[0].run_on, RunEngine::Browser);
    assert_eq!(
        taken[0].engine_reason.as_deref(),
        Some("chosen for browser")
    );
}

async fn a_claim_for_every_engine_takes_any_job_in_claim_order(store: Arc<dyn Store>) {
    let first = insert_on(
        &*store,
        "browser",
        RunEngine::Browser,
        "https://a.test/",
        at(0),
    )
    .await;
    let second = insert_on(&*store, "http", RunEngine::Http, "https://b.test/", at(1)).await;
    let taken = claim_on(&*store, &RunEngine::ALL, 10, at(5)).await;
    assert_eq!(
        taken.iter().map(|j| j.job_id).collect::<Vec<_>>(),
        [first, second]
    );
}

async fn escalation_moves_an_auto_job_to_the_browser_and_remembers_its_domain(
    store: Arc<dyn Store>,
) {
    let id = insert_on(
        &*store,
        "auto",
        RunEngine::Http,
        "https://spa.test/list",
        at(0),
    )
    .await;
    let leased = claim_on(&*store, &[RunEngine::Http], 1, at(1)).await;
    assert_eq!(leased[0].job_id, id);

    let outcome = store
        .job_escalate_if_leased(&escalation(
            &leased[0],
            "the page renders on the client",
            at(2),
        ))
        .await
        .unwrap();
    assert!(matches!(outcome[..], [ReportOutcome::Applied(ref t)] if t.to == JobState::Available));
    assert!(
        claim_on(&*store, &[RunEngine::Http], 1, at(3))
            .await
            .is_empty(),
        "it no longer runs on HTTP"
    );
    let again = claim_on(&*store, &[RunEngine::Browser], 1, at(3)).await;
    assert_eq!(again[0].job_id, id);
    assert_eq!(again[0].run_on, RunEngine::Browser);
    assert_eq!(
        again[0].engine_reason.as_deref(),
        Some("the page renders on the client")
    );
    assert_eq!(
        again[0].attempt,
        leased[0].attempt + 1,
        "the fencing token still grows"
    );
    let job = store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.attempts_left,
        job.max_attempts - 1,
        "the HTTP attempt is not counted, only the browser one"
    );
    assert_eq!(
        event_kinds(&*store, id).await,
        [
            EventKind::Created,
            EventKind::Claimed,
            EventKind::Released,
            EventKind::Claimed
        ]
    );

    let memory = store
        .domain_engine_get(WorkspaceId::DEFAULT, "spa.test", at(2))
        .await
        .unwrap()
        .expect("the domain is remembered");
    assert_eq!(memory.engine, RunEngine::Browser);
    assert_eq!(memory.reason, "the page renders on the client");
    assert_eq!(memory.expires_at, at(2) + chrono::Duration::seconds(3600));
    assert_eq!(
        store
            .domain_engine_list(WorkspaceId::DEFAULT, at(2))
            .await
            .unwrap(),
        [memory]
    );
    assert!(
        store
            .domain_engine_get(WorkspaceId::DEFAULT, "spa.test", at(2 + 3600))
            .await
            .unwrap()
            .is_none(),
        "the memory expires, so HTTP is tried again"
    );
    let other = other_workspace(&*store).await;
    assert!(store
        .domain_engine_get(other, "spa.test", at(2))
        .await
        .unwrap()
        .is_none());
}

async fn escalation_is_fenced_and_only_for_auto_jobs_on_http(store: Arc<dyn Store>) {
    let plain = insert_on(&*store, "http", RunEngine::Http, "https://a.test/", at(0)).await;
    let auto = insert_on(&*store, "auto", RunEngine::Http, "https://b.test/", at(1)).await;
    let leased = claim_on(&*store, &[RunEngine::Http], 2, at(2)).await;
    assert_eq!(leased.len(), 2);
    let (plain_lease, auto_lease) = if leased[0].job_id == plain {
        (&leased[0], &leased[1])
    } else {
        (&leased[1], &leased[0])
    };

    let refused = store
        .job_escalate_if_leased(&escalation(plain_lease, "x", at(3)))
        .await
        .unwrap();
    assert_eq!(
        refused,
        [ReportOutcome::Stale(plain)],
        "an http job stays on http"
    );

    let mut stale = auto_lease.clone();
    stale.attempt += 1;
    let refused = store
        .job_escalate_if_leased(&escalation(&stale, "x", at(3)))
        .await
        .unwrap();
    assert_eq!(
        refused,
        [ReportOutcome::Stale(auto)],
        "a wrong token changes nothing"
    );

    let mut other_worker = escalation(auto_lease, "x", at(3));
    other_worker.worker_id = worker("someone-else");
    let refused = store.job_escalate_if_leased(&other_worker).await.unwrap();
    assert_eq!(refused, [ReportOutcome::Stale(auto)]);

    assert_eq!(state_of(&*store, plain).await, JobState::Running);
    assert_eq!(state_of(&*store, auto).await, JobState::Running);
    for domain in ["a.test", "b.test"] {
        assert!(store
            .domain_engine_get(WorkspaceId::DEFAULT, domain, at(3))
            .await
            .unwrap()
            .is_none());
    }
}

conformance!(
    claims_take_only_jobs_of_their_engines,
    a_claim_for_every_engine_takes_any_job_in_claim_order,
    escalation_moves_an_auto_job_to_the_browser_and_remembers_its_domain,
    escalation_is_fenced_and_only_for_auto_jobs_on_http,
);
