//! [`AccessStore`]: workspaces and API keys (only the hash of a key's
//! secret is stored). Implemented in each backend's `access.rs`.

use accord_model::{ApiKey, ApiKeyId, Workspace, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// A key as stored: its listing plus the hash of its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredApiKey {
    pub key: ApiKey,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
}

/// Who may call: workspaces and the API keys that belong to them.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Creates a workspace; `false` when the name is taken (nothing changed).
    async fn workspace_create(&self, workspace: &Workspace) -> Result<bool, StoreError>;

    /// Every workspace, oldest first.
    async fn workspace_list(&self) -> Result<Vec<Workspace>, StoreError>;

    async fn workspace_get(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError>;

    async fn workspace_find(&self, name: &str) -> Result<Option<Workspace>, StoreError>;

    /// A workspace named by its id or, failing that, by its name.
    async fn workspace_lookup(&self, reference: &str) -> Result<Option<Workspace>, StoreError> {
        match reference.parse::<WorkspaceId>() {
            Ok(id) => self.workspace_get(id).await,
            Err(_) => self.workspace_find(reference).await,
        }
    }

    async fn api_key_insert(&self, key: &StoredApiKey) -> Result<(), StoreError>;

    /// Looks a key up by id in any workspace: this is how a request is
    /// authenticated, before its workspace is known.
    async fn api_key_get(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError>;

    /// The workspace's keys, oldest first, revoked ones included.
    async fn api_key_list(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key of the workspace; revoking twice keeps the first time.
    /// `None` when the workspace has no such key.
    async fn api_key_revoke(
        &self,
        workspace: WorkspaceId,
        id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// Records that the key was used.
    async fn api_key_touch(&self, id: &ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Keys that are neither revoked nor expired at `now`, over all workspaces.
    async fn api_key_count_active(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
