//! [`PolicyStore`] for PostgreSQL: one row per policy, its rules as
//! `jsonb`; a duplicate pattern is caught by the unique index.

use accord_model::{DomainPolicy, JobId, PolicyId, PolicyRules, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::rows::{column, json};
use super::PostgresStore;
use crate::{PolicyStore, PolicyWrite, StoreError};

const COLUMNS: &str = "p.id, p.workspace_id, p.pattern, p.rules, p.created_at, p.updated_at";

fn policy_from_row(row: &PgRow) -> Result<DomainPolicy, StoreError> {
    let pattern: String = column(row, "pattern", "policy pattern")?;
    Ok(DomainPolicy {
        id: PolicyId::from_uuid(column(row, "id", "policy id")?),
        workspace_id: WorkspaceId::from_uuid(column(row, "workspace_id", "workspace id")?),
        pattern: pattern
            .parse()
            .map_err(|err| StoreError::corrupt("policy pattern", err))?,
        rules: json::<PolicyRules>(row, "rules", "policy rules")?,
        created_at: column(row, "created_at", "timestamp")?,
        updated_at: column(row, "updated_at", "timestamp")?,
    })
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl PolicyStore for PostgresStore {
    async fn policy_insert(&self, policy: &DomainPolicy) -> Result<PolicyWrite, StoreError> {
        let done = sqlx::query(
            "INSERT INTO domain_policies (id, workspace_id, pattern, rules, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, pattern) DO NOTHING",
        )
        .bind(policy.id.as_uuid())
        .bind(policy.workspace_id.as_uuid())
        .bind(policy.pattern.to_string())
        .bind(Json(&policy.rules))
        .bind(policy.created_at)
        .bind(policy.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(if done.rows_affected() == 1 {
            PolicyWrite::Written
        } else {
            PolicyWrite::Duplicate
        })
    }

    async fn policy_get(
        &self,
        workspace: WorkspaceId,
        id: PolicyId,
    ) -> Result<Option<DomainPolicy>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM domain_policies p WHERE p.workspace_id = $1 AND p.id = $2"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn policy_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<DomainPolicy>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM domain_policies p WHERE p.workspace_id = $1 \
             ORDER BY p.id LIMIT $2"
        ))
        .bind(workspace.as_uuid())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn policy_update(
        &self,
        policy: &DomainPolicy,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<PolicyWrite, StoreError> {
        let done = sqlx::query(
            "UPDATE domain_policies SET pattern = $1, rules = $2, updated_at = $3 \
             WHERE workspace_id = $4 AND id = $5 AND updated_at = $6",
        )
        .bind(policy.pattern.to_string())
        .bind(Json(&policy.rules))
        .bind(policy.updated_at)
        .bind(policy.workspace_id.as_uuid())
        .bind(policy.id.as_uuid())
        .bind(expected_updated_at)
        .execute(&self.pool)
        .await;
        match done {
            Ok(done) if done.rows_affected() == 1 => Ok(PolicyWrite::Written),
            Ok(_) => Ok(PolicyWrite::Missing),
            Err(err) if is_unique_violation(&err) => Ok(PolicyWrite::Duplicate),
            Err(err) => Err(err.into()),
        }
    }

    async fn policy_delete(
        &self,
        workspace: WorkspaceId,
        id: PolicyId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM domain_policies WHERE workspace_id = $1 AND id = $2")
            .bind(workspace.as_uuid())
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn policies_of_jobs(
        &self,
        jobs: &[JobId],
    ) -> Result<Vec<(JobId, DomainPolicy)>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = jobs.iter().map(JobId::as_uuid).collect();
        let rows = sqlx::query(&format!(
            "SELECT j.id AS job_id, {COLUMNS} FROM jobs j \
             JOIN domain_policies p ON p.workspace_id = j.workspace_id \
             WHERE j.id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let job = JobId::from_uuid(column(row, "job_id", "job id")?);
                Ok((job, policy_from_row(row)?))
            })
            .collect()
    }
}
