//! [`accord_store::AuditStore`]: the audit log, scoped, filtered, paged and pruned.

use std::sync::Arc;

use accord_model::{AuditOutcome, NewAuditEntry, Role, WorkspaceId};
use accord_store::{AuditFilter, Store};

use crate::fixtures::{at, workspace};
use crate::harness::conformance;

fn entry(workspace: WorkspaceId, seconds: i64, action: &str, status: u16) -> NewAuditEntry {
    NewAuditEntry {
        workspace_id: workspace,
        at: at(seconds),
        key_id: Some("aaaaaaaaaaaaaaaa".parse().unwrap()),
        role: Some(Role::Operator),
        action: action.to_owned(),
        route: "POST /api/v1/jobs".to_owned(),
        target: Some("0192f0c0-0000-7000-8000-000000000000".to_owned()),
        outcome: AuditOutcome::from_status(status),
        status,
        client_addr: Some("127.0.0.1".to_owned()),
        detail: None,
    }
}

async fn audit_is_scoped_filtered_paged_and_pruned(store: Arc<dyn Store>) {
    let team = workspace("team");
    store.workspace_create(&team).await.unwrap();
    let mut entries = vec![
        entry(WorkspaceId::DEFAULT, 1, "create_job", 201),
        entry(WorkspaceId::DEFAULT, 2, "cancel_job", 409),
        entry(WorkspaceId::DEFAULT, 3, "create_job", 401),
        entry(team.id, 4, "create_job", 201),
    ];
    entries[2].key_id = None;
    entries[2].role = None;
    store.audit_insert(&entries).await.unwrap();
    store.audit_insert(&[]).await.unwrap();

    let all = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .audit_list(WorkspaceId::DEFAULT, &filter)
                .await
                .unwrap()
        }
    };
    let every = all(AuditFilter {
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        every.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["create_job", "cancel_job", "create_job"],
        "newest first, only this workspace"
    );
    assert_eq!(every[0].outcome, AuditOutcome::Unauthenticated);
    assert_eq!(every[0].key_id, None);
    assert_eq!(every[1].status, 409);
    assert_eq!(every[2].client_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(every[2].role, Some(Role::Operator));

    let created = all(AuditFilter {
        action: Some("create_job".to_owned()),
        outcome: Some(AuditOutcome::Success),
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].at, at(1));

    let by_key = all(AuditFilter {
        key_id: Some("aaaaaaaaaaaaaaaa".parse().unwrap()),
        since: Some(at(2)),
        until: Some(at(3)),
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].action, "cancel_job");

    let first = all(AuditFilter {
        limit: 2,
        ..AuditFilter::default()
    })
    .await;
    let rest = all(AuditFilter {
        before: Some(first[1].id),
        limit: 2,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].at, at(1));

    assert_eq!(store.audit_prune(at(3), 1).await.unwrap(), 1, "bounded");
    assert_eq!(store.audit_prune(at(3), 10).await.unwrap(), 1);
    assert_eq!(store.audit_prune(at(3), 10).await.unwrap(), 0);
    let left = all(AuditFilter {
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].at, at(3));
}

conformance!(audit_is_scoped_filtered_paged_and_pruned);
