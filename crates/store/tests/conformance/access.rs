//! [`accord_store::AccessStore`]: workspaces and API keys.

use std::sync::Arc;

use accord_model::{ApiKey, ApiKeyId, RateLimit, Role, WorkspaceId};
use accord_store::{Store, StoredApiKey};

use crate::fixtures::{at, workspace};
use crate::harness::conformance;

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

conformance!(
    workspaces_are_unique_by_name,
    keys_round_trip_and_revoke_within_their_workspace,
);
