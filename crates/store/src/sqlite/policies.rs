//! [`PolicyStore`] for SQLite: one row per policy, its rules as JSON text.
//! Writes go through the one writer connection; a duplicate pattern is
//! caught by the unique index.

use accord_model::{DomainPolicy, JobId, PolicyId, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::rows::{from_ms, ms, placeholders, to_json};
use super::SqliteStore;
use crate::{PolicyStore, PolicyWrite, StoreError};

const COLUMNS: &str = "p.id, p.workspace_id, p.pattern, p.rules, p.created_at, p.updated_at";

fn parsed<T: std::str::FromStr>(text: &str, what: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|err| StoreError::corrupt(what, err))
}

fn policy_from_row(row: &SqliteRow) -> Result<DomainPolicy, StoreError> {
    let rules: String = row.try_get("rules")?;
    Ok(DomainPolicy {
        id: parsed(row.try_get("id")?, "policy id")?,
        workspace_id: parsed(row.try_get("workspace_id")?, "workspace id")?,
        pattern: parsed(row.try_get("pattern")?, "policy pattern")?,
        rules: serde_json::from_str(&rules)
            .map_err(|err| StoreError::corrupt("policy rules", err))?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
    })
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn policy_insert(&self, policy: &DomainPolicy) -> Result<PolicyWrite, StoreError> {
        let done = sqlx::query(
            "INSERT INTO domain_policies (id, workspace_id, pattern, rules, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workspace_id, pattern) DO NOTHING",
        )
        .bind(policy.id.to_string())
        .bind(policy.workspace_id.to_string())
        .bind(policy.pattern.to_string())
        .bind(to_json(&policy.rules))
        .bind(ms(policy.created_at))
        .bind(ms(policy.updated_at))
        .execute(&self.writer)
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
            "SELECT {COLUMNS} FROM domain_policies p WHERE p.workspace_id = ? AND p.id = ?"
        ))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn policy_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<DomainPolicy>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM domain_policies p WHERE p.workspace_id = ? \
             ORDER BY p.id LIMIT ?"
        ))
        .bind(workspace.to_string())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn policy_update(
        &self,
        policy: &DomainPolicy,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<PolicyWrite, StoreError> {
        let done = sqlx::query(
            "UPDATE domain_policies SET pattern = ?, rules = ?, updated_at = ? \
             WHERE workspace_id = ? AND id = ? AND updated_at = ?",
        )
        .bind(policy.pattern.to_string())
        .bind(to_json(&policy.rules))
        .bind(ms(policy.updated_at))
        .bind(policy.workspace_id.to_string())
        .bind(policy.id.to_string())
        .bind(ms(expected_updated_at))
        .execute(&self.writer)
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
        let done = sqlx::query("DELETE FROM domain_policies WHERE workspace_id = ? AND id = ?")
            .bind(workspace.to_string())
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn policies_of_jobs(
        &self,
        jobs: &[JobId],
    ) -> Result<Vec<(JobId, DomainPolicy)>, StoreError> {
        let mut found = Vec::new();
        // SQLite binds at most 32,766 values per statement.
        for chunk in jobs.chunks(1_000) {
            let marks = placeholders(chunk.len());
            let sql = format!(
                "SELECT j.id AS job_id, {COLUMNS} FROM jobs j \
                 JOIN domain_policies p ON p.workspace_id = j.workspace_id \
                 WHERE j.id IN ({marks})"
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.reader).await? {
                let job: String = row.try_get("job_id")?;
                found.push((parsed(&job, "job id")?, policy_from_row(&row)?));
            }
        }
        Ok(found)
    }
}
