//! Workspaces, API keys and the audit log on PostgreSQL.

use accord_model::{
    ApiKey, ApiKeyId, AuditEntry, NewAuditEntry, RateLimit, Workspace, WorkspaceId,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PostgresStore;
use crate::{AuditFilter, StoreError, StoredApiKey};

const KEY_COLUMNS: &str =
    "id, workspace_id, name, role, secret_hash, rate_burst, rate_per_second, \
    created_at, expires_at, revoked_at, last_used_at";

const AUDIT_COLUMNS: &str = "id, workspace_id, at, key_id, role, action, route, target, outcome, \
    status, client_addr, detail";

impl PostgresStore {
    pub(super) async fn workspace_insert(&self, workspace: &Workspace) -> Result<bool, StoreError> {
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

    pub(super) async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM workspaces ORDER BY created_at, name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(workspace_from_row).collect()
    }

    pub(super) async fn workspace_by(
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

    pub(super) async fn key_insert(&self, stored: &StoredApiKey) -> Result<(), StoreError> {
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

    pub(super) async fn key_get(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stored_key_from_row).transpose()
    }

    pub(super) async fn keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
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

    pub(super) async fn key_revoke(
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

    pub(super) async fn key_touch(
        &self,
        id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn keys_active(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    pub(super) async fn audit_write(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut builder: QueryBuilder<'_, Postgres> = QueryBuilder::new(
            "INSERT INTO audit_log (workspace_id, at, key_id, role, action, route, target, outcome, \
             status, client_addr, detail) ",
        );
        builder.push_values(entries, |mut row, entry| {
            row.push_bind(entry.workspace_id.as_uuid())
                .push_bind(entry.at)
                .push_bind(entry.key_id.as_ref().map(|id| id.as_str().to_owned()))
                .push_bind(entry.role.map(|role| role.as_str()))
                .push_bind(&entry.action)
                .push_bind(&entry.route)
                .push_bind(&entry.target)
                .push_bind(entry.outcome.as_str())
                .push_bind(i32::from(entry.status))
                .push_bind(&entry.client_addr)
                .push_bind(&entry.detail);
        });
        builder.build().execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn audit_read(
        &self,
        workspace: WorkspaceId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut builder: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE workspace_id = "
        ));
        builder.push_bind(workspace.as_uuid());
        if let Some(action) = &filter.action {
            builder.push(" AND action = ").push_bind(action);
        }
        if let Some(outcome) = filter.outcome {
            builder.push(" AND outcome = ").push_bind(outcome.as_str());
        }
        if let Some(key) = &filter.key_id {
            builder.push(" AND key_id = ").push_bind(key.as_str());
        }
        if let Some(since) = filter.since {
            builder.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = filter.until {
            builder.push(" AND at < ").push_bind(until);
        }
        if let Some(before) = filter.before {
            builder.push(" AND id < ").push_bind(before);
        }
        builder
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = builder.build().fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }

    pub(super) async fn audit_delete_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
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
    let per_second: Option<f64> = row.try_get("rate_per_second")?;
    let rate_limit = match (burst, per_second) {
        (Some(burst), Some(per_second)) => Some(RateLimit {
            burst: u32::try_from(burst).map_err(|err| StoreError::corrupt("rate burst", err))?,
            per_second,
        }),
        _ => None,
    };
    Ok(StoredApiKey {
        key: ApiKey {
            id: id
                .parse()
                .map_err(|err| StoreError::corrupt("key id", err))?,
            workspace_id: WorkspaceId::from_uuid(workspace),
            name: row.try_get("name")?,
            role: role
                .parse()
                .map_err(|err| StoreError::corrupt("role", err))?,
            rate_limit,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            last_used_at: row.try_get("last_used_at")?,
        },
        secret_hash: row.try_get("secret_hash")?,
    })
}

fn audit_from_row(row: &PgRow) -> Result<AuditEntry, StoreError> {
    let workspace: uuid::Uuid = row.try_get("workspace_id")?;
    let key_id: Option<String> = row.try_get("key_id")?;
    let role: Option<String> = row.try_get("role")?;
    let outcome: String = row.try_get("outcome")?;
    let status: i32 = row.try_get("status")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        workspace_id: WorkspaceId::from_uuid(workspace),
        at: row.try_get("at")?,
        key_id: key_id
            .map(|id| id.parse())
            .transpose()
            .map_err(|err| StoreError::corrupt("key id", err))?,
        role: role
            .map(|role| role.parse())
            .transpose()
            .map_err(|err| StoreError::corrupt("role", err))?,
        action: row.try_get("action")?,
        route: row.try_get("route")?,
        target: row.try_get("target")?,
        outcome: outcome
            .parse()
            .map_err(|err| StoreError::corrupt("audit outcome", err))?,
        status: u16::try_from(status).map_err(|err| StoreError::corrupt("status", err))?,
        client_addr: row.try_get("client_addr")?,
        detail: row.try_get("detail")?,
    })
}
