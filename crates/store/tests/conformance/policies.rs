//! [`accord_store::PolicyStore`]: policies kept within their workspace,
//! one per pattern (created or renamed into), updated without lost
//! updates, and handed out per claimed job by the job's workspace.

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_model::{
    Cidr, DomainPolicy, OnOpenBreaker, PolicyId, PolicyRules, RunEngine, StepKind, WorkspaceId,
};
use accord_store::{PolicyWrite, Store};

use crate::fixtures::*;
use crate::harness::conformance;

conformance!(
    policies_are_scoped_unique_and_updated_without_lost_updates,
    claimed_jobs_get_their_workspace_policies,
);

fn policy(workspace: WorkspaceId, pattern: &str) -> DomainPolicy {
    DomainPolicy {
        id: PolicyId::new(),
        workspace_id: workspace,
        pattern: pattern.parse().unwrap(),
        rules: PolicyRules {
            allowed: true,
            requests_per_minute: Some(60),
            max_concurrent: Some(2),
            min_gap_ms: Some(250),
            engines: Some(BTreeSet::from([RunEngine::Http])),
            steps: Some(BTreeSet::from([StepKind::Navigate, StepKind::Evaluate])),
            obey_robots: false,
            allow_cidrs: vec!["10.1.0.0/16".parse::<Cidr>().unwrap()],
            on_open_breaker: OnOpenBreaker::Fail,
        },
        created_at: at(0),
        updated_at: at(0),
    }
}

async fn policies_are_scoped_unique_and_updated_without_lost_updates(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let exact = policy(WorkspaceId::DEFAULT, "example.com");
    let wild = policy(WorkspaceId::DEFAULT, "*.example.com");
    let hidden = policy(other, "example.com");
    for p in [&exact, &wild, &hidden] {
        assert_eq!(store.policy_insert(p).await.unwrap(), PolicyWrite::Written);
    }
    // The same pattern twice in a workspace: refused, nothing written.
    let twin = policy(WorkspaceId::DEFAULT, "example.com");
    assert_eq!(
        store.policy_insert(&twin).await.unwrap(),
        PolicyWrite::Duplicate
    );
    assert_eq!(
        store
            .policy_get(WorkspaceId::DEFAULT, twin.id)
            .await
            .unwrap(),
        None
    );

    assert_eq!(
        store
            .policy_get(WorkspaceId::DEFAULT, exact.id)
            .await
            .unwrap(),
        Some(exact.clone())
    );
    assert_eq!(store.policy_get(other, exact.id).await.unwrap(), None);
    let mut listed = store.policy_list(WorkspaceId::DEFAULT, 100).await.unwrap();
    listed.sort_by_key(|p| p.id);
    assert_eq!(listed, vec![exact.clone(), wild.clone()]);
    assert_eq!(
        store.policy_list(other, 100).await.unwrap(),
        vec![hidden.clone()]
    );
    assert_eq!(
        store
            .policy_list(WorkspaceId::DEFAULT, 1)
            .await
            .unwrap()
            .len(),
        1
    );

    // An update from a stale read loses; a fresh one wins.
    let mut changed = exact.clone();
    changed.rules.allowed = false;
    changed.rules.requests_per_minute = None;
    changed.updated_at = at(10);
    assert_eq!(
        store.policy_update(&changed, at(0)).await.unwrap(),
        PolicyWrite::Written
    );
    let mut stale = exact.clone();
    stale.updated_at = at(20);
    assert_eq!(
        store.policy_update(&stale, at(0)).await.unwrap(),
        PolicyWrite::Missing
    );
    assert_eq!(
        store
            .policy_get(WorkspaceId::DEFAULT, exact.id)
            .await
            .unwrap(),
        Some(changed.clone())
    );

    // Renaming into a pattern the workspace has is refused; into another
    // workspace's pattern is fine.
    let mut renamed = wild.clone();
    renamed.pattern = "example.com".parse().unwrap();
    renamed.updated_at = at(30);
    assert_eq!(
        store.policy_update(&renamed, at(0)).await.unwrap(),
        PolicyWrite::Duplicate
    );
    assert_eq!(
        store
            .policy_get(WorkspaceId::DEFAULT, wild.id)
            .await
            .unwrap(),
        Some(wild.clone())
    );
    renamed.pattern = "*".parse().unwrap();
    assert_eq!(
        store.policy_update(&renamed, at(0)).await.unwrap(),
        PolicyWrite::Written
    );

    // Deleting is scoped too.
    assert!(!store.policy_delete(other, exact.id).await.unwrap());
    assert!(store
        .policy_delete(WorkspaceId::DEFAULT, exact.id)
        .await
        .unwrap());
    assert!(!store
        .policy_delete(WorkspaceId::DEFAULT, exact.id)
        .await
        .unwrap());
    assert_eq!(
        store
            .policy_get(WorkspaceId::DEFAULT, exact.id)
            .await
            .unwrap(),
        None
    );
    // The pattern is free again.
    assert_eq!(
        store.policy_insert(&twin).await.unwrap(),
        PolicyWrite::Written
    );
}

async fn claimed_jobs_get_their_workspace_policies(store: Arc<dyn Store>) {
    let other = other_workspace(&*store).await;
    let mine = policy(WorkspaceId::DEFAULT, "*");
    let theirs = policy(other, "example.com");
    let theirs_too = policy(other, "*.example.com");
    for p in [&mine, &theirs, &theirs_too] {
        store.policy_insert(p).await.unwrap();
    }
    let a = insert(&*store, "", at(0)).await;
    let b = insert(&*store, "", at(0)).await;
    assert_eq!(store.policies_of_jobs(&[]).await.unwrap(), vec![]);
    let mut found = store.policies_of_jobs(&[a, b]).await.unwrap();
    found.sort_by_key(|(job, _)| *job);
    assert_eq!(found, vec![(a, mine.clone()), (b, mine.clone())]);

    // A job in a workspace without policies gets none.
    store
        .policy_delete(WorkspaceId::DEFAULT, mine.id)
        .await
        .unwrap();
    assert_eq!(store.policies_of_jobs(&[a]).await.unwrap(), vec![]);
}
