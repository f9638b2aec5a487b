//! [`ArtifactStore`] for SQLite. Writes go through the single writer
//! connection, so the lease check, the quota sum and the insert of one
//! upload form one transaction nothing else interleaves with.

use std::collections::HashSet;

use accord_model::{
    ArtifactName, ArtifactRef, EvidenceManifest, JobId, LeaseRef, Sha256Digest, StoredArtifact,
    WorkerId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::rows::{from_ms, job_from_row, ms, placeholders};
use super::SqliteStore;
use crate::schema::{parse_artifact_name, parse_digest, JOB_COLUMNS};
use crate::{
    ArtifactInsert, ArtifactInsertOutcome, ArtifactRecord, ArtifactStore, AttemptEvidence,
    StoreError,
};

const ARTIFACT_COLUMNS: &str = "job_id, name, attempt, content_type, size, sha256, created_at";

fn artifact_from_row(row: &SqliteRow) -> Result<StoredArtifact, StoreError> {
    Ok(StoredArtifact {
        name: parse_artifact_name(row.try_get("name")?)?,
        content_type: row.try_get("content_type")?,
        size: row.try_get::<i64, _>("size")?.unsigned_abs(),
        sha256: parse_digest(row.try_get("sha256")?)?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        created_at: from_ms(row.try_get("created_at")?)?,
    })
}

/// The row of `(job, name)`, if any.
async fn existing(
    conn: &mut SqliteConnection,
    job_id: &str,
    name: &str,
) -> Result<Option<StoredArtifact>, StoreError> {
    sqlx::query(&format!(
        "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = ? AND name = ?"
    ))
    .bind(job_id)
    .bind(name)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(artifact_from_row)
    .transpose()
}

/// Inserts or replaces the row of `(job, name)` and returns it.
async fn upsert(
    conn: &mut SqliteConnection,
    job_id: &str,
    workspace: &str,
    attempt: u32,
    artifact: &ArtifactRef,
    now: i64,
) -> Result<StoredArtifact, StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO artifacts (job_id, name, workspace_id, attempt, content_type, size, sha256, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (job_id, name) DO UPDATE SET attempt = excluded.attempt, \
           content_type = excluded.content_type, size = excluded.size, sha256 = excluded.sha256, \
           created_at = excluded.created_at \
         RETURNING {ARTIFACT_COLUMNS}"
    ))
    .bind(job_id)
    .bind(artifact.name.as_str())
    .bind(workspace)
    .bind(attempt)
    .bind(&artifact.content_type)
    .bind(artifact.size as i64)
    .bind(artifact.sha256.to_hex())
    .bind(now)
    .fetch_one(conn)
    .await?;
    artifact_from_row(&row)
}

/// Records `artifact` for `attempt` of the job, in its workspace, replacing
/// a row of the same name (the control plane's own artifacts, written in a
/// completion's transaction).
pub(super) async fn record_for_job(
    conn: &mut SqliteConnection,
    job_id: &str,
    attempt: u32,
    artifact: &ArtifactRef,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO artifacts (job_id, name, workspace_id, attempt, content_type, size, sha256, created_at) \
         SELECT id, ?, workspace_id, ?, ?, ?, ?, ? FROM jobs WHERE id = ? \
         ON CONFLICT (job_id, name) DO UPDATE SET attempt = excluded.attempt, \
           content_type = excluded.content_type, size = excluded.size, sha256 = excluded.sha256, \
           created_at = excluded.created_at",
    )
    .bind(artifact.name.as_str())
    .bind(attempt)
    .bind(&artifact.content_type)
    .bind(artifact.size as i64)
    .bind(artifact.sha256.to_hex())
    .bind(now)
    .bind(job_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl ArtifactStore for SqliteStore {
    async fn artifact_lease_workspace(
        &self,
        worker: &WorkerId,
        lease: LeaseRef,
        now: DateTime<Utc>,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        let workspace: Option<String> = sqlx::query_scalar(
            "SELECT workspace_id FROM jobs WHERE id = ? AND state = 'running' AND attempt = ? \
             AND worker_id = ? AND lease_expires_at > ?",
        )
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .bind(worker.as_str())
        .bind(ms(now))
        .fetch_optional(&self.reader)
        .await?;
        workspace
            .map(|w| {
                w.parse()
                    .map_err(|err| StoreError::corrupt("workspace id", err))
            })
            .transpose()
    }

    async fn artifact_insert_if_leased(
        &self,
        insert: &ArtifactInsert,
    ) -> Result<ArtifactInsertOutcome, StoreError> {
        let job_id = insert.lease.job_id.to_string();
        let now = ms(insert.now);
        let mut tx = self.writer.begin().await?;
        let workspace: Option<String> = sqlx::query_scalar(
            "SELECT workspace_id FROM jobs WHERE id = ? AND state = 'running' AND attempt = ? \
             AND worker_id = ? AND lease_expires_at > ?",
        )
        .bind(&job_id)
        .bind(insert.lease.attempt)
        .bind(insert.worker_id.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(workspace) = workspace else {
            return Ok(ArtifactInsertOutcome::StaleLease);
        };
        let replaced = existing(&mut tx, &job_id, insert.artifact.name.as_str()).await?;
        if replaced.is_none() {
            let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM artifacts WHERE job_id = ?")
                .bind(&job_id)
                .fetch_one(&mut *tx)
                .await?;
            if held >= i64::from(insert.limits.max_per_job) {
                return Ok(ArtifactInsertOutcome::TooMany {
                    max: insert.limits.max_per_job,
                });
            }
        }
        let usage: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0) FROM artifacts WHERE workspace_id = ?",
        )
        .bind(&workspace)
        .fetch_one(&mut *tx)
        .await?;
        let usage = usage.unsigned_abs();
        let freed = replaced.as_ref().map_or(0, |old| old.size);
        if usage
            .saturating_sub(freed)
            .saturating_add(insert.artifact.size)
            > insert.limits.quota_bytes
        {
            return Ok(ArtifactInsertOutcome::QuotaExceeded {
                usage,
                quota: insert.limits.quota_bytes,
            });
        }
        let artifact = upsert(
            &mut tx,
            &job_id,
            &workspace,
            insert.lease.attempt,
            &insert.artifact,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ArtifactInsertOutcome::Stored { artifact, replaced })
    }

    async fn artifact_record(
        &self,
        records: &[ArtifactRecord],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut recorded = 0;
        let mut tx = self.writer.begin().await?;
        for record in records {
            let job_id = record.job_id.to_string();
            let workspace: Option<String> =
                sqlx::query_scalar("SELECT workspace_id FROM jobs WHERE id = ?")
                    .bind(&job_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(workspace) = workspace else {
                continue;
            };
            upsert(
                &mut tx,
                &job_id,
                &workspace,
                record.attempt,
                &record.artifact,
                ms(now),
            )
            .await?;
            recorded += 1;
        }
        tx.commit().await?;
        Ok(recorded)
    }

    async fn artifact_list(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
    ) -> Result<Option<Vec<StoredArtifact>>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = ? AND workspace_id = ?")
                .bind(job_id.to_string())
                .bind(workspace.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = ? AND workspace_id = ? ORDER BY name"
        ))
        .bind(job_id.to_string())
        .bind(workspace.to_string())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(artifact_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    async fn artifact_get(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
        name: &ArtifactName,
    ) -> Result<Option<StoredArtifact>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = ? AND name = ? AND workspace_id = ?"
        ))
        .bind(job_id.to_string())
        .bind(name.as_str())
        .bind(workspace.to_string())
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(artifact_from_row)
        .transpose()
    }

    async fn artifact_usage(&self, workspace: WorkspaceId) -> Result<u64, StoreError> {
        let usage: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0) FROM artifacts WHERE workspace_id = ?",
        )
        .bind(workspace.to_string())
        .fetch_one(&self.reader)
        .await?;
        Ok(usage.unsigned_abs())
    }

    async fn artifact_referenced(
        &self,
        digests: &[Sha256Digest],
    ) -> Result<HashSet<Sha256Digest>, StoreError> {
        let mut referenced = HashSet::new();
        // SQLite binds at most 32,766 values per statement.
        for chunk in digests.chunks(1_000) {
            let sql = format!(
                "SELECT DISTINCT sha256 FROM artifacts WHERE sha256 IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for digest in chunk {
                query = query.bind(digest.to_hex());
            }
            for hex in query.fetch_all(&self.reader).await? {
                referenced.insert(parse_digest(&hex)?);
            }
        }
        Ok(referenced)
    }

    async fn artifact_evidence(
        &self,
        leases: &[LeaseRef],
    ) -> Result<Vec<AttemptEvidence>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let mut evidence = Vec::with_capacity(leases.len());
        for lease in leases {
            let id = lease.job_id.to_string();
            let Some(row) = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
                .bind(&id)
                .fetch_optional(&mut *conn)
                .await?
            else {
                continue;
            };
            let job = job_from_row(&row)?;
            let rows = sqlx::query(&format!(
                "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = ? AND attempt = ? ORDER BY name"
            ))
            .bind(&id)
            .bind(lease.attempt)
            .fetch_all(&mut *conn)
            .await?;
            let artifacts = rows
                .iter()
                .map(artifact_from_row)
                .filter(|artifact| {
                    !matches!(artifact, Ok(a) if EvidenceManifest::is_manifest_name(&a.name))
                })
                .collect::<Result<_, _>>()?;
            evidence.push(AttemptEvidence {
                job,
                attempt: lease.attempt,
                artifacts,
            });
        }
        Ok(evidence)
    }
}
