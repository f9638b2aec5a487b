//! [`accord_store::WorkflowRunStore`]: a run inserted with its job and read
//! only within its workspace; its completion records the outcome in the
//! job's transaction, fenced on the lease; a job that dies leaves the run
//! without an outcome, its end read from the job.

use std::sync::Arc;

use accord_model::{CompleteItem, ErrorKind, JobId, JobState, WorkflowKind, WorkspaceId};
use accord_store::{CompleteWorkflowRun, InsertJob, StartWorkflowRun, Store, WorkflowRecord};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::fixtures::*;
use crate::harness::conformance;

fn start(max_attempts: u32, now: DateTime<Utc>) -> StartWorkflowRun {
    StartWorkflowRun {
        workflow: WorkflowKind::ExtractItems,
        url: "https://example.com/jobs".parse().unwrap(),
        engine: accord_model::Engine::Http,
        input: json!({"item_selector": "li"}),
        job: InsertJob {
            id: JobId::new(),
            workspace_id: WorkspaceId::DEFAULT,
            job: new_job(&format!(r#","max_attempts":{max_attempts}"#)),
            run_on: accord_model::RunEngine::Http,
            engine_reason: None,
            idempotency: None,
        },
        now,
    }
}

fn completion(lease: accord_model::LeaseRef, who: &str, now: DateTime<Utc>) -> CompleteWorkflowRun {
    CompleteWorkflowRun {
        worker: worker(who),
        item: CompleteItem {
            job_id: lease.job_id,
            attempt: lease.attempt,
            result: result(),
        },
        now,
        record: WorkflowRecord::Outcome {
            outcome: json!({"total": 2}),
            snapshot: json!({"items": ["a", "b"]}),
        },
    }
}

async fn a_run_completes_with_its_outcome_in_the_jobs_transaction(store: Arc<dyn Store>) {
    let started = start(1, at(0));
    let job = store.workflow_run_start(&started).await.unwrap();
    assert_eq!(job.id, started.job.id);
    assert_eq!(job.state, JobState::Available);
    let pending = store.workflow_run_pending(job.id).await.unwrap().unwrap();
    assert_eq!(pending.workflow, WorkflowKind::ExtractItems);
    assert_eq!(pending.input, json!({"item_selector": "li"}));
    assert_eq!((pending.outcome, pending.finished_at), (None, None));
    assert_eq!(pending.job_state, Some(JobState::Available));

    let lease = claim(&*store, "w", 1, at(1)).await.remove(0);
    // Another worker's lease: nothing changes.
    assert_eq!(
        store
            .workflow_run_complete(&completion(lease, "other", at(2)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(state_of(&*store, job.id).await, JobState::Running);
    let done = store
        .workflow_run_complete(&completion(lease, "w", at(2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.to, JobState::Succeeded);
    // Recorded once: no longer pending, and the same completion is stale.
    assert!(store.workflow_run_pending(job.id).await.unwrap().is_none());
    assert_eq!(
        store
            .workflow_run_complete(&completion(lease, "w", at(3)))
            .await
            .unwrap(),
        None
    );
    let read = store
        .workflow_run_get(WorkspaceId::DEFAULT, job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.outcome, Some(json!({"total": 2})));
    assert_eq!(read.snapshot, Some(json!({"items": ["a", "b"]})));
    assert_eq!(read.finished_at, Some(at(2)));
    assert_eq!(read.job_state, Some(JobState::Succeeded));
    // Another workspace does not see it.
    let other = other_workspace(&*store).await;
    assert!(store
        .workflow_run_get(other, job.id)
        .await
        .unwrap()
        .is_none());
    // A plain job is no workflow run.
    let plain = insert(&*store, "", at(4)).await;
    assert!(store.workflow_run_pending(plain).await.unwrap().is_none());
}

async fn a_run_that_could_not_compute_or_whose_job_died_keeps_no_outcome(store: Arc<dyn Store>) {
    let broken = store.workflow_run_start(&start(1, at(0))).await.unwrap();
    let lease = claim(&*store, "w", 1, at(1)).await.remove(0);
    let mut failed = completion(lease, "w", at(2));
    failed.record = WorkflowRecord::Error("the page is too complex".into());
    assert!(store
        .workflow_run_complete(&failed)
        .await
        .unwrap()
        .is_some());
    let read = store
        .workflow_run_get(WorkspaceId::DEFAULT, broken.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.error.as_deref(), Some("the page is too complex"));
    assert_eq!((read.outcome, read.snapshot), (None, None));

    let dies = store.workflow_run_start(&start(1, at(10))).await.unwrap();
    let lease = claim(&*store, "w", 1, at(11)).await.remove(0);
    fail(&*store, "w", lease, ErrorKind::Permanent, at(12)).await;
    let read = store
        .workflow_run_get(WorkspaceId::DEFAULT, dies.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.job_state, Some(JobState::Dead));
    assert!(read.job_error.is_some());
    assert_eq!((read.outcome, read.error), (None, None));
}

/// Retention deletes runs that ended before the cutoff, never one whose
/// job still has to run.
async fn runs_past_retention_are_pruned_but_not_unfinished_ones(store: Arc<dyn Store>) {
    let done = store.workflow_run_start(&start(1, at(0))).await.unwrap();
    let lease = claim(&*store, "w", 1, at(1)).await.remove(0);
    store
        .workflow_run_complete(&completion(lease, "w", at(2)))
        .await
        .unwrap()
        .unwrap();
    // Started long ago, still waiting in the queue.
    let waiting = store.workflow_run_start(&start(1, at(3))).await.unwrap();
    assert_eq!(store.workflow_run_prune(at(2), 100).await.unwrap(), 0);
    assert_eq!(store.workflow_run_prune(at(1_000), 100).await.unwrap(), 1);
    let get = |id| {
        let store = store.clone();
        async move {
            store
                .workflow_run_get(WorkspaceId::DEFAULT, id)
                .await
                .unwrap()
        }
    };
    assert!(get(done.id).await.is_none());
    assert!(get(waiting.id).await.is_some());
}

conformance!(
    runs_past_retention_are_pruned_but_not_unfinished_ones,
    a_run_completes_with_its_outcome_in_the_jobs_transaction,
    a_run_that_could_not_compute_or_whose_job_died_keeps_no_outcome,
);
