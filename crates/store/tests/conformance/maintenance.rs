//! [`accord_store::MaintenanceStore`]: pruning, stats and counts, which must
//! follow every transition.

use std::sync::Arc;

use accord_model::{ErrorKind, JobId, JobState, QueueName, WorkspaceId};
use accord_store::{InsertJob, JobFilter, ReportOutcome, Store};

use crate::fixtures::*;
use crate::harness::conformance;

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
        run_on: accord_model::RunEngine::Http,
        engine_reason: None,
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
        run_on: accord_model::RunEngine::Http,
        engine_reason: None,
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

conformance!(
    prune_removes_only_old_finished_jobs,
    stats_count_by_state_and_priority,
    counts_follow_every_transition,
);
