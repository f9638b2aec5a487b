//! [`accord_store::FeedStore`]: feed tokens found by their hash only while
//! the key that made them is active (not revoked, not expired), listed and
//! deleted within their workspace; feed entries are the newest runs that
//! reported events, of the workspace (or one monitor), newest first and
//! bounded, with the run's events and outcome.

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_model::{
    ApiKey, CompleteItem, FeedToken, FeedTokenId, JobId, Monitor, MonitorId, NotifyEvent, Role,
    RunTrigger, Schedule, ScheduleSpec, WorkflowKind, WorkspaceId,
};
use accord_store::{
    CompleteRun, CompleteRunOutcome, InsertJob, RunRecord, StartOutcome, StartRun, Store,
    StoredApiKey,
};
use serde_json::json;

use crate::fixtures::*;
use crate::harness::conformance;

conformance!(
    a_token_works_while_its_key_does,
    tokens_are_listed_and_deleted_within_their_workspace,
    entries_are_the_newest_runs_with_events,
);

async fn key(store: &dyn Store, id: &str, workspace: WorkspaceId, expires: Option<i64>) {
    store
        .api_key_insert(&StoredApiKey {
            key: ApiKey {
                id: id.parse().unwrap(),
                workspace_id: workspace,
                name: "reader".to_owned(),
                role: Role::Viewer,
                rate_limit: None,
                created_at: at(1),
                expires_at: expires.map(at),
                revoked_at: None,
                last_used_at: None,
            },
            secret_hash: format!("hash-of-{id}"),
        })
        .await
        .unwrap();
}

fn token(workspace: WorkspaceId, key: &str, name: &str, created: i64) -> FeedToken {
    FeedToken {
        id: FeedTokenId::new(),
        workspace_id: workspace,
        key_id: key.parse().unwrap(),
        name: name.to_owned(),
        created_at: at(created),
    }
}

async fn a_token_works_while_its_key_does(store: Arc<dyn Store>) {
    key(&*store, "aaaaaaaaaaaaaaaa", WorkspaceId::DEFAULT, None).await;
    key(&*store, "bbbbbbbbbbbbbbbb", WorkspaceId::DEFAULT, Some(100)).await;
    let live = token(WorkspaceId::DEFAULT, "aaaaaaaaaaaaaaaa", "live", 2);
    let expiring = token(WorkspaceId::DEFAULT, "bbbbbbbbbbbbbbbb", "expiring", 2);
    store.feed_token_insert(&live, "hash-live").await.unwrap();
    store
        .feed_token_insert(&expiring, "hash-expiring")
        .await
        .unwrap();

    assert_eq!(
        store.feed_token_resolve("hash-live", at(10)).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        store.feed_token_resolve("hash-nope", at(10)).await.unwrap(),
        None
    );
    // A hash is unique: a second token with it is refused.
    assert!(store
        .feed_token_insert(
            &token(WorkspaceId::DEFAULT, "aaaaaaaaaaaaaaaa", "x", 3),
            "hash-live"
        )
        .await
        .is_err());

    // Its key expires: the token stops working.
    assert!(store
        .feed_token_resolve("hash-expiring", at(99))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .feed_token_resolve("hash-expiring", at(100))
            .await
            .unwrap(),
        None
    );
    // Its key is revoked: likewise.
    store
        .api_key_revoke(
            WorkspaceId::DEFAULT,
            &"aaaaaaaaaaaaaaaa".parse().unwrap(),
            at(20),
        )
        .await
        .unwrap();
    assert_eq!(
        store.feed_token_resolve("hash-live", at(21)).await.unwrap(),
        None
    );
}

async fn tokens_are_listed_and_deleted_within_their_workspace(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    key(&*store, "aaaaaaaaaaaaaaaa", WorkspaceId::DEFAULT, None).await;
    key(&*store, "cccccccccccccccc", other, None).await;
    let older = token(WorkspaceId::DEFAULT, "aaaaaaaaaaaaaaaa", "older", 2);
    let newer = token(WorkspaceId::DEFAULT, "aaaaaaaaaaaaaaaa", "newer", 3);
    let theirs = token(other, "cccccccccccccccc", "theirs", 4);
    for (t, hash) in [(&older, "h1"), (&newer, "h2"), (&theirs, "h3")] {
        store.feed_token_insert(t, hash).await.unwrap();
    }
    assert_eq!(
        store
            .feed_token_list(WorkspaceId::DEFAULT, 10)
            .await
            .unwrap(),
        [newer.clone(), older.clone()]
    );
    assert_eq!(
        store
            .feed_token_list(WorkspaceId::DEFAULT, 1)
            .await
            .unwrap(),
        std::slice::from_ref(&newer)
    );
    // Another workspace's token is not this workspace's to delete.
    assert!(!store
        .feed_token_delete(WorkspaceId::DEFAULT, theirs.id)
        .await
        .unwrap());
    assert!(store
        .feed_token_delete(WorkspaceId::DEFAULT, newer.id)
        .await
        .unwrap());
    assert!(!store
        .feed_token_delete(WorkspaceId::DEFAULT, newer.id)
        .await
        .unwrap());
    assert_eq!(store.feed_token_resolve("h2", at(5)).await.unwrap(), None);
    assert_eq!(
        store.feed_token_list(other, 10).await.unwrap(),
        std::slice::from_ref(&theirs)
    );
}

fn monitor(workspace: WorkspaceId, name: &str) -> Monitor {
    let spec = ScheduleSpec {
        every: Some("1h".to_owned()),
        cron: None,
        time_zone: None,
    };
    Monitor {
        id: MonitorId::new(),
        workspace_id: workspace,
        name: name.to_owned(),
        workflow: WorkflowKind::PageChange,
        url: "https://example.com/".parse().unwrap(),
        engine: accord_model::Engine::Http,
        input: json!({}),
        schedule: Schedule::parse(&spec, "schedule", 0).unwrap(),
        tags: BTreeSet::new(),
        paused: false,
        notify: Vec::new(),
        created_at: at(0),
        updated_at: at(0),
        next_due_at: at(1_000_000),
    }
}

/// Runs `m` by hand at second `start` to an outcome with `events`; returns
/// the run's id.
async fn run_with(
    store: &dyn Store,
    m: &Monitor,
    start: i64,
    baseline: Option<i64>,
    events: &[NotifyEvent],
) -> i64 {
    let outcome = store
        .monitor_run_start(&StartRun {
            workspace_id: m.workspace_id,
            monitor_id: m.id,
            trigger: RunTrigger::Manual,
            slot: at(start),
            advance: None,
            job: InsertJob {
                id: JobId::new(),
                workspace_id: m.workspace_id,
                job: new_job(r#","max_attempts":1"#),
                run_on: accord_model::RunEngine::Http,
                engine_reason: None,
                idempotency: None,
            },
            now: at(start),
        })
        .await
        .unwrap();
    let StartOutcome::Started { run, .. } = outcome else {
        panic!("the run should start: {outcome:?}");
    };
    let lease = claim(store, "w", 1, at(start + 1)).await.remove(0);
    let done = store
        .monitor_run_complete(&CompleteRun {
            worker: worker("w"),
            item: CompleteItem {
                job_id: lease.job_id,
                attempt: lease.attempt,
                result: result(),
            },
            now: at(start + 2),
            monitor_id: m.id,
            run_id: run.id,
            baseline_run_id: baseline,
            record: RunRecord::Outcome {
                outcome: json!({"run": start}),
                snapshot: json!({"text": start}),
                values: Vec::new(),
                events: events.iter().copied().collect(),
                artifacts: Vec::new(),
                items: None,
            },
            notice: None,
        })
        .await
        .unwrap();
    assert!(matches!(done, CompleteRunOutcome::Applied(_)), "{done:?}");
    run.id
}

async fn entries_are_the_newest_runs_with_events(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let a = monitor(WorkspaceId::DEFAULT, "a");
    let b = monitor(WorkspaceId::DEFAULT, "b");
    let hidden = monitor(other, "hidden");
    for m in [&a, &b, &hidden] {
        store.monitor_insert(m).await.unwrap();
    }
    use NotifyEvent::*;
    let quiet = run_with(&*store, &a, 10, None, &[]).await;
    let a1 = run_with(&*store, &a, 20, Some(quiet), &[Changed, NewItems]).await;
    let b1 = run_with(&*store, &b, 30, None, &[Failed]).await;
    let a2 = run_with(&*store, &a, 40, Some(a1), &[Changed]).await;
    run_with(&*store, &hidden, 50, None, &[Changed]).await;

    let all = store
        .feed_entries(WorkspaceId::DEFAULT, None, 50)
        .await
        .unwrap();
    let listed: Vec<(i64, &str, Vec<NotifyEvent>)> = all
        .iter()
        .map(|e| {
            (
                e.run_id,
                e.monitor_name.as_str(),
                e.events.iter().copied().collect(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (a2, "a", vec![Changed]),
            (b1, "b", vec![Failed]),
            (a1, "a", vec![Changed, NewItems]),
        ]
    );
    let newest = &all[0];
    assert_eq!(newest.monitor_id, a.id);
    assert_eq!(newest.workflow, WorkflowKind::PageChange);
    assert_eq!(newest.monitor_url, "https://example.com/");
    assert_eq!(newest.finished_at, at(42));
    assert_eq!(newest.outcome, json!({"run": 40}));

    let only_a: Vec<i64> = store
        .feed_entries(WorkspaceId::DEFAULT, Some(a.id), 50)
        .await
        .unwrap()
        .iter()
        .map(|e| e.run_id)
        .collect();
    assert_eq!(only_a, [a2, a1]);
    let bounded = store
        .feed_entries(WorkspaceId::DEFAULT, None, 2)
        .await
        .unwrap();
    assert_eq!(bounded.len(), 2);
    // Another workspace's monitor lists nothing here.
    assert!(store
        .feed_entries(WorkspaceId::DEFAULT, Some(hidden.id), 50)
        .await
        .unwrap()
        .is_empty());
}
