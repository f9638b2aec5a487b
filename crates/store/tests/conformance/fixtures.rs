//! Values and calls the conformance cases share: a fixed clock origin,
//! jobs, workers and workspaces, and the worker calls most cases make.

use std::time::Duration;

use accord_model::{
    CompleteItem, ErrorKind, EventKind, FailItem, JobError, JobId, JobResult, JobState, LeaseRef,
    NewJob, Timings, WorkerId, Workspace, WorkspaceId,
};
use accord_store::{ClaimParams, FailParams, InsertJob, InsertOutcome, ReportOutcome, Store};
use chrono::{DateTime, TimeZone, Utc};

pub(crate) const TTL: Duration = Duration::from_secs(30);

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(seconds)
}

pub(crate) fn new_job(extra: &str) -> NewJob {
    let json =
        format!(r#"{{"steps":[{{"action":"navigate","url":"https://example.com/"}}]{extra}}}"#);
    serde_json::from_str(&json).unwrap()
}

pub(crate) fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).unwrap()
}

pub(crate) async fn other_workspace(store: &dyn Store) -> WorkspaceId {
    let workspace = accord_model::Workspace {
        id: WorkspaceId::new(),
        name: format!("ws-{}", WorkspaceId::new()),
        created_at: t0(),
    };
    assert!(store.workspace_create(&workspace).await.unwrap());
    workspace.id
}

pub(crate) async fn insert(store: &dyn Store, extra: &str, now: DateTime<Utc>) -> JobId {
    let insert = InsertJob {
        id: JobId::new(),
        workspace_id: WorkspaceId::DEFAULT,
        job: new_job(extra),
        run_on: accord_model::RunEngine::Http,
        engine_reason: None,
        idempotency: None,
    };
    match store.job_insert(insert, now).await.unwrap() {
        InsertOutcome::Created(job) => job.id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

pub(crate) async fn claim(
    store: &dyn Store,
    who: &str,
    limit: u32,
    now: DateTime<Utc>,
) -> Vec<LeaseRef> {
    let params = ClaimParams {
        worker_id: worker(who),
        workspace: None,
        queues: Vec::new(),
        limit,
        now,
        lease_ttl: TTL,
        engines: accord_model::RunEngine::ALL.to_vec(),
    };
    store
        .job_claim_available(&params)
        .await
        .unwrap()
        .iter()
        .map(|job| job.lease())
        .collect()
}

pub(crate) async fn state_of(store: &dyn Store, id: JobId) -> JobState {
    store
        .job_get(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap()
        .state
}

pub(crate) fn result() -> JobResult {
    JobResult {
        extracted: Default::default(),
        status: 200,
        final_url: "https://example.com/".into(),
        timings: Timings::default(),
        engine: accord_model::RunEngine::Http,
        engine_reason: None,
        artifacts: Vec::new(),
    }
}

pub(crate) async fn complete(
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

pub(crate) async fn fail(
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
        verdicts: Vec::new(),
    };
    store.job_fail_if_leased(&params).await.unwrap().remove(0)
}

pub(crate) async fn event_kinds(store: &dyn Store, id: JobId) -> Vec<EventKind> {
    let events = store
        .job_events(WorkspaceId::DEFAULT, id, None, 100)
        .await
        .unwrap()
        .unwrap();
    events.iter().map(|e| e.kind).collect()
}

pub(crate) fn workspace(name: &str) -> Workspace {
    Workspace {
        id: WorkspaceId::new(),
        name: name.to_owned(),
        created_at: at(0),
    }
}
