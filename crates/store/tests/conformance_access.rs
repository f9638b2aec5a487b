//! Conformance of workspaces, API keys and the audit log: every backend
//! must pass every test here, each on a fresh database.

use std::sync::Arc;

use accord_model::{
    ApiKey, ApiKeyId, AuditOutcome, NewAuditEntry, RateLimit, Role, Workspace, WorkspaceId,
};
use accord_store::{AuditFilter, PostgresConfig, PostgresStore, Store, StoredApiKey};
use accord_test_support::TestDatabase;
use chrono::{DateTime, TimeZone, Utc};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn workspace(name: &str) -> Workspace {
    Workspace {
        id: WorkspaceId::new(),
        name: name.to_owned(),
        created_at: at(0),
    }
}

fn key(id: &str, workspace: WorkspaceId, role: Role) -> StoredApiKey {
    StoredApiKey {
        key: ApiKey {
            id: id.parse().unwrap(),
            workspace_id: workspace,
            name: format!("{role} key"),
            role,
            rate_limit: None,
            created_at: at(1),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        },
        secret_hash: format!("hash-of-{id}"),
    }
}

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

async fn workspaces_are_unique_by_name(store: Arc<dyn Store>) {
    let listed = store.workspace_list().await.unwrap();
    assert_eq!(listed.len(), 1, "only the default workspace at first");
    assert_eq!(listed[0].id, WorkspaceId::DEFAULT);
    assert_eq!(listed[0].name, "default");

    let team = workspace("team-a");
    assert!(store.workspace_create(&team).await.unwrap());
    assert!(
        !store.workspace_create(&workspace("team-a")).await.unwrap(),
        "a taken name is refused"
    );
    assert_eq!(
        store.workspace_get(team.id).await.unwrap(),
        Some(team.clone())
    );
    assert_eq!(
        store.workspace_find("team-a").await.unwrap(),
        Some(team.clone())
    );
    assert_eq!(store.workspace_find("team-b").await.unwrap(), None);
    assert_eq!(store.workspace_get(WorkspaceId::new()).await.unwrap(), None);
    let names: Vec<String> = store
        .workspace_list()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["default", "team-a"]);
}

async fn keys_round_trip_and_revoke_within_their_workspace(store: Arc<dyn Store>) {
    let team = workspace("team");
    store.workspace_create(&team).await.unwrap();
    let mut admin = key("aaaaaaaaaaaaaaaa", WorkspaceId::DEFAULT, Role::Admin);
    admin.key.rate_limit = Some(RateLimit {
        burst: 7,
        per_second: 0.5,
    });
    admin.key.expires_at = Some(at(100));
    let worker = key("bbbbbbbbbbbbbbbb", team.id, Role::Worker);
    store.api_key_insert(&admin).await.unwrap();
    store.api_key_insert(&worker).await.unwrap();
    assert!(
        store.api_key_insert(&admin).await.is_err(),
        "key ids are unique"
    );

    assert_eq!(
        store.api_key_get(&admin.key.id).await.unwrap(),
        Some(admin.clone())
    );
    let unknown: ApiKeyId = "cccccccccccccccc".parse().unwrap();
    assert_eq!(store.api_key_get(&unknown).await.unwrap(), None);
    assert_eq!(
        store.api_key_list(team.id).await.unwrap(),
        vec![worker.key.clone()]
    );
    assert_eq!(store.api_key_count_active(at(50)).await.unwrap(), 2);
    assert_eq!(
        store.api_key_count_active(at(100)).await.unwrap(),
        1,
        "an expired key is not active"
    );

    // Revoking needs the key's own workspace.
    assert_eq!(
        store
            .api_key_revoke(WorkspaceId::DEFAULT, &worker.key.id, at(10))
            .await
            .unwrap(),
        None
    );
    let revoked = store
        .api_key_revoke(team.id, &worker.key.id, at(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(10)));
    let again = store
        .api_key_revoke(team.id, &worker.key.id, at(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(at(10)),
        "the first revocation stands"
    );
    assert!(!again.is_active(at(11)));
    assert_eq!(store.api_key_count_active(at(50)).await.unwrap(), 1);

    store.api_key_touch(&admin.key.id, at(42)).await.unwrap();
    let touched = store.api_key_get(&admin.key.id).await.unwrap().unwrap();
    assert_eq!(touched.key.last_used_at, Some(at(42)));
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

macro_rules! conformance {
    ($backend:ident, $open:expr; $($name:ident),* $(,)?) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _guard) = $open;
                    super::$name(store).await;
                }
            )*
        }
    };
}

async fn open_sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = accord_store::SqliteConfig::new(dir.path().join("accord.db"));
    let store = accord_store::SqliteStore::open(&config).await.unwrap();
    (Arc::new(store), dir)
}

async fn open_postgres() -> (Arc<dyn Store>, TestDatabase) {
    let database = TestDatabase::create().await;
    let mut config = PostgresConfig::new(database.url());
    config.max_connections = 4;
    let store = PostgresStore::connect(&config).await.unwrap();
    (Arc::new(store), database)
}

conformance!(sqlite, open_sqlite().await;
    workspaces_are_unique_by_name,
    keys_round_trip_and_revoke_within_their_workspace,
    audit_is_scoped_filtered_paged_and_pruned,
);
conformance!(postgres, open_postgres().await;
    workspaces_are_unique_by_name,
    keys_round_trip_and_revoke_within_their_workspace,
    audit_is_scoped_filtered_paged_and_pruned,
);
