//! [`AuditStore`] for PostgreSQL: the audit log.

use accord_model::{AuditEntry, NewAuditEntry, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PostgresStore;
use crate::schema::{parse_audit_outcome, parse_key_id, parse_role, parse_status};
use crate::{AuditFilter, AuditStore, StoreError};

const AUDIT_COLUMNS: &str = "id, workspace_id, at, key_id, role, action, route, target, outcome, \
    status, client_addr, detail";

#[async_trait]
impl AuditStore for PostgresStore {
    async fn audit_insert(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
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

    async fn audit_list(
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

    async fn audit_prune(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
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
        key_id: key_id.as_deref().map(parse_key_id).transpose()?,
        role: role.as_deref().map(parse_role).transpose()?,
        action: row.try_get("action")?,
        route: row.try_get("route")?,
        target: row.try_get("target")?,
        outcome: parse_audit_outcome(&outcome)?,
        status: parse_status(i64::from(status))?,
        client_addr: row.try_get("client_addr")?,
        detail: row.try_get("detail")?,
    })
}
