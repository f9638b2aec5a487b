//! [`AccessStore`] for SQLite: workspaces and API keys.

use accord_model::{ApiKey, ApiKeyId, Workspace, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::rows::{from_ms, ms, opt_ms};
use super::SqliteStore;
use crate::schema::{parse_key_id, parse_rate_limit, parse_role};
use crate::{AccessStore, StoreError, StoredApiKey};

const KEY_COLUMNS: &str =
    "id, workspace_id, name, role, secret_hash, rate_burst, rate_per_second, \
    created_at, expires_at, revoked_at, last_used_at";

#[async_trait]
impl AccessStore for SqliteStore {
    async fn workspace_create(&self, workspace: &Workspace) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(workspace.id.to_string())
        .bind(&workspace.name)
        .bind(ms(workspace.created_at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn workspace_list(&self) -> Result<Vec<Workspace>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM workspaces ORDER BY created_at, name")
                .fetch_all(&self.reader)
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
             created_at, expires_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.as_str())
        .bind(key.workspace_id.to_string())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(&stored.secret_hash)
        .bind(key.rate_limit.map(|limit| limit.burst))
        .bind(key.rate_limit.map(|limit| limit.per_second))
        .bind(ms(key.created_at))
        .bind(key.expires_at.map(ms))
        .bind(key.revoked_at.map(ms))
        .bind(key.last_used_at.map(ms))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn api_key_get(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(stored_key_from_row).transpose()
    }

    async fn api_key_list(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE workspace_id = ? ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace.to_string())
            .fetch_all(&self.reader)
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
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) \
             WHERE workspace_id = ? AND id = ? RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(ms(now))
            .bind(workspace.to_string())
            .bind(id.as_str())
            .fetch_optional(&self.writer)
            .await?;
        row.as_ref()
            .map(|row| stored_key_from_row(row).map(|stored| stored.key))
            .transpose()
    }

    async fn api_key_touch(&self, id: &ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(ms(now))
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn api_key_count_active(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(ms(now))
        .fetch_one(&self.reader)
        .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

impl SqliteStore {
    async fn workspace_by(
        &self,
        column: &'static str,
        value: String,
    ) -> Result<Option<Workspace>, StoreError> {
        let sql = format!("SELECT id, name, created_at FROM workspaces WHERE {column} = ?");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }
}

fn workspace_from_row(row: &SqliteRow) -> Result<Workspace, StoreError> {
    let id: String = row.try_get("id")?;
    Ok(Workspace {
        id: id
            .parse()
            .map_err(|err| StoreError::corrupt("workspace id", err))?,
        name: row.try_get("name")?,
        created_at: from_ms(row.try_get("created_at")?)?,
    })
}

fn stored_key_from_row(row: &SqliteRow) -> Result<StoredApiKey, StoreError> {
    let id: String = row.try_get("id")?;
    let workspace: String = row.try_get("workspace_id")?;
    let role: String = row.try_get("role")?;
    let burst: Option<i64> = row.try_get("rate_burst")?;
    let rate_limit = parse_rate_limit(burst, row.try_get("rate_per_second")?)?;
    Ok(StoredApiKey {
        key: ApiKey {
            id: parse_key_id(&id)?,
            workspace_id: workspace
                .parse()
                .map_err(|err| StoreError::corrupt("workspace id", err))?,
            name: row.try_get("name")?,
            role: parse_role(&role)?,
            rate_limit,
            created_at: from_ms(row.try_get("created_at")?)?,
            expires_at: opt_ms(row.try_get("expires_at")?)?,
            revoked_at: opt_ms(row.try_get("revoked_at")?)?,
            last_used_at: opt_ms(row.try_get("last_used_at")?)?,
        },
        secret_hash: row.try_get("secret_hash")?,
    })
}
