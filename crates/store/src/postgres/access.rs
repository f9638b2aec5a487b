//! [`AccessStore`] for PostgreSQL: workspaces and API keys.

use accord_model::{ApiKey, ApiKeyId, Workspace, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PostgresStore;
use crate::schema::{parse_key_id, parse_rate_limit, parse_role};
use crate::{AccessStore, StoreError, StoredApiKey};

const KEY_COLUMNS: &str =
    "id, workspace_id, name, role, secret_hash, rate_burst, rate_per_second, \
    created_at, expires_at, revoked_at, last_used_at";

#[async_trait]
impl AccessStore for PostgresStore {
    async fn workspace_create(&self, workspace: &Workspace) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(workspace.id.as_uuid())
        .bind(&workspace.name)
        .bind(workspace.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn workspace_list(&self) -> Result<Vec<Workspace>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM workspaces ORDER BY created_at, name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(workspace_from_row).collect()
    }

    async fn workspace_get(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        self.workspace_by("id", id.to_string()).await
    }

    async fn workspace_find(&self, name: &str) -> Result<Option<Workspace>, StoreError> {
        self.workspace_by("name", name.to_owned()).await
    }

    async fn api_key_insert(&self, stored: &StoredApiKey) -> Result<(), StoreError> {
        let key = &stored.key;
        sqlx::query(
            "INSERT INTO api_keys (id, workspace_id, name, role, secret_hash, rate_burst, rate_per_second, \
             created_at, expires_at, revoked_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(key.id.as_str())
        .bind(key.workspace_id.as_uuid())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(&stored.secret_hash)
        .bind(key.rate_limit.map(|limit| i32::try_from(limit.burst).unwrap_or(i32::MAX)))
        .bind(key.rate_limit.map(|limit| limit.per_second))
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(key.last_used_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn api_key_get(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stored_key_from_row).transpose()
    }

    async fn api_key_list(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace.as_uuid())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| stored_key_from_row(row).map(|stored| stored.key))
            .collect()
    }

    async fn api_key_revoke(
        &self,
        workspace: WorkspaceId,
        id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) \
             WHERE workspace_id = $2 AND id = $3 RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(now)
            .bind(workspace.as_uuid())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|row| stored_key_from_row(row).map(|stored| stored.key))
            .transpose()
    }

    async fn api_key_touch(&self, id: &ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn api_key_count_active(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

impl PostgresStore {
    async fn workspace_by(
        &self,
        column: &'static str,
        value: String,
    ) -> Result<Option<Workspace>, StoreError> {
        let sql = format!("SELECT id, name, created_at FROM workspaces WHERE {column}::text = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }
}

fn workspace_from_row(row: &PgRow) -> Result<Workspace, StoreError> {
    Ok(Workspace {
        id: WorkspaceId::from_uuid(row.try_get("id")?),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn stored_key_from_row(row: &PgRow) -> Result<StoredApiKey, StoreError> {
    let id: String = row.try_get("id")?;
    let workspace: uuid::Uuid = row.try_get("workspace_id")?;
    let role: String = row.try_get("role")?;
    let burst: Option<i32> = row.try_get("rate_burst")?;
    let rate_limit = parse_rate_limit(burst.map(i64::from), row.try_get("rate_per_second")?)?;
    Ok(StoredApiKey {
        key: ApiKey {
            id: parse_key_id(&id)?,
            workspace_id: WorkspaceId::from_uuid(workspace),
            name: row.try_get("name")?,
            role: parse_role(&role)?,
            rate_limit,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            last_used_at: row.try_get("last_used_at")?,
        },
        secret_hash: row.try_get("secret_hash")?,
    })
}
