//! [`DomainStore`] for PostgreSQL: the engine each domain is remembered to
//! need. (The memory is written by `job_escalate_if_leased` in `lease.rs`.)

use accord_model::WorkspaceId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PostgresStore;
use crate::schema::parse_run_engine;
use crate::{DomainEngine, DomainStore, StoreError};

const COLUMNS: &str = "domain, engine, reason, decided_at, expires_at";

fn domain_engine(row: &PgRow) -> Result<DomainEngine, StoreError> {
    Ok(DomainEngine {
        domain: row.try_get("domain")?,
        engine: parse_run_engine(row.try_get("engine")?)?,
        reason: row.try_get("reason")?,
        decided_at: row.try_get("decided_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[async_trait]
impl DomainStore for PostgresStore {
    async fn domain_engine_get(
        &self,
        workspace: WorkspaceId,
        domain: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DomainEngine>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM domain_engines \
             WHERE workspace_id = $1 AND domain = $2 AND expires_at > $3"
        ))
        .bind(workspace.as_uuid())
        .bind(domain)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(domain_engine).transpose()
    }

    async fn domain_engine_list(
        &self,
        workspace: WorkspaceId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEngine>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM domain_engines \
             WHERE workspace_id = $1 AND expires_at > $2 ORDER BY domain"
        ))
        .bind(workspace.as_uuid())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(domain_engine).collect()
    }
}
