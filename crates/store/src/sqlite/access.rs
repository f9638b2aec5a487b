//! Workspaces, API keys and the audit log on SQLite.

use accord_model::{
    ApiKey, ApiKeyId, AuditEntry, NewAuditEntry, RateLimit, Workspace, WorkspaceId,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rows::{from_ms, ms, opt_ms};
use super::SqliteStore;
use crate::{AuditFilter, StoreError, StoredApiKey};

const KEY_COLUMNS: &str =
    "id, workspace_id, name, role, secret_hash, rate_burst, rate_per_second, \
    created_at, expires_at, revoked_at, last_used_at";

const AUDIT_COLUMNS: &str = "id, workspace_id, at, key_id, role, action, route, target, outcome, \
    status, client_addr, detail";

impl SqliteStore {
    pub(super) async fn workspace_insert(&self, workspace: &Workspace) -> Result<bool, StoreError> {
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

    pub(super) async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM workspaces ORDER BY created_at, name")
                .fetch_all(&self.reader)
                .await?;
        rows.iter().map(workspace_from_row).collect()
    }

    pub(super) async fn workspace_by(
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

    pub(super) async fn key_insert(&self, stored: &StoredApiKey) -> Result<(), StoreError> {
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

    pub(super) async fn key_get(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(stored_key_from_row).transpose()
    }

    pub(super) async fn keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
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

    pub(super) async fn key_revoke(
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

    pub(super) async fn key_touch(
        &self,
        id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(ms(now))
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn keys_active(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(ms(now))
        .fetch_one(&self.reader)
        .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    pub(super) async fn audit_write(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO audit_log (workspace_id, at, key_id, role, action, route, target, outcome, \
             status, client_addr, detail) ",
        );
        builder.push_values(entries, |mut row, entry| {
            row.push_bind(entry.workspace_id.to_string())
                .push_bind(ms(entry.at))
                .push_bind(entry.key_id.as_ref().map(|id| id.as_str().to_owned()))
                .push_bind(entry.role.map(|role| role.as_str()))
                .push_bind(&entry.action)
                .push_bind(&entry.route)
                .push_bind(&entry.target)
                .push_bind(entry.outcome.as_str())
                .push_bind(i64::from(entry.status))
                .push_bind(&entry.client_addr)
                .push_bind(&entry.detail);
        });
        builder.build().execute(&self.writer).await?;
        Ok(())
    }

    pub(super) async fn audit_read(
        &self,
        workspace: WorkspaceId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE workspace_id = "
        ));
        builder.push_bind(workspace.to_string());
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
            builder.push(" AND at >= ").push_bind(ms(since));
        }
        if let Some(until) = filter.until {
            builder.push(" AND at < ").push_bind(ms(until));
        }
        if let Some(before) = filter.before {
            builder.push(" AND id < ").push_bind(before);
        }
        builder
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = builder.build().fetch_all(&self.reader).await?;
        rows.iter().map(audit_from_row).collect()
    }

    pub(super) async fn audit_delete_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)",
        )
        .bind(ms(cutoff))
        .bind(limit)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
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
            workspace_id: workspace
                .parse()
                .map_err(|err| StoreError::corrupt("workspace id", err))?,
            name: row.try_get("name")?,
            role: role
                .parse()
                .map_err(|err| StoreError::corrupt("role", err))?,
            rate_limit,
            created_at: from_ms(row.try_get("created_at")?)?,
            expires_at: opt_ms(row.try_get("expires_at")?)?,
            revoked_at: opt_ms(row.try_get("revoked_at")?)?,
            last_used_at: opt_ms(row.try_get("last_used_at")?)?,
        },
        secret_hash: row.try_get("secret_hash")?,
    })
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    let workspace: String = row.try_get("workspace_id")?;
    let key_id: Option<String> = row.try_get("key_id")?;
    let role: Option<String> = row.try_get("role")?;
    let outcome: String = row.try_get("outcome")?;
    let status: i64 = row.try_get("status")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        workspace_id: workspace
            .parse()
            .map_err(|err| StoreError::corrupt("workspace id", err))?,
        at: from_ms(row.try_get("at")?)?,
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
