//! [`ArtifactStore`] for PostgreSQL. An upload's row is written in one
//! transaction that locks the leased job row (`FOR SHARE`: a completion of
//! the job waits until the artifact is in, so its manifest lists it) and
//! takes a transaction-scoped advisory lock on the workspace, so two
//! uploads of one workspace cannot both pass the quota on the same sum.

use std::collections::HashSet;

use accord_model::{
    ArtifactName, ArtifactRef, EvidenceManifest, JobId, LeaseRef, Sha256Digest, StoredArtifact,
    WorkerId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::rows::{column, job_from_row};
use super::PostgresStore;
use crate::schema::{parse_artifact_name, parse_digest, JOB_COLUMNS};
use crate::{
    ArtifactInsert, ArtifactInsertOutcome, ArtifactRecord, ArtifactStore, AttemptEvidence,
    StoreError,
};

const ARTIFACT_COLUMNS: &str = "job_id, name, attempt, content_type, size, sha256, created_at";

/// The first key of the advisory locks taken per workspace: "ARTF" in
/// ASCII, apart from the maintenance leadership's key.
const QUOTA_LOCK_CLASS: i32 = 0x4152_5446;

fn artifact_from_row(row: &PgRow) -> Result<StoredArtifact, StoreError> {
    Ok(StoredArtifact {
        name: parse_artifact_name(column(row, "name", "artifact name")?)?,
        content_type: column(row, "content_type", "content type")?,
        size: column::<i64>(row, "size", "artifact size")?.unsigned_abs(),
        sha256: parse_digest(&column::<String>(row, "sha256", "artifact digest")?)?,
        attempt: column::<i32>(row, "attempt", "attempt")?.unsigned_abs(),
        created_at: column(row, "created_at", "timestamp")?,
    })
}

async fn existing(
    conn: &mut PgConnection,
    job_id: Uuid,
    name: &str,
) -> Result<Option<StoredArtifact>, StoreError> {
    sqlx::query(&format!(
        "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = $1 AND name = $2"
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
    conn: &mut PgConnection,
    job_id: Uuid,
    workspace: Uuid,
    attempt: u32,
    artifact: &ArtifactRef,
    now: DateTime<Utc>,
) -> Result<StoredArtifact, StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO artifacts (job_id, name, workspace_id, attempt, content_type, size, sha256, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (job_id, name) DO UPDATE SET attempt = EXCLUDED.attempt, \
           content_type = EXCLUDED.content_type, size = EXCLUDED.size, sha256 = EXCLUDED.sha256, \
           created_at = EXCLUDED.created_at \
         RETURNING {ARTIFACT_COLUMNS}"
    ))
    .bind(job_id)
    .bind(artifact.name.as_str())
    .bind(workspace)
    .bind(attempt as i32)
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
    conn: &mut PgConnection,
    job_id: Uuid,
    attempt: u32,
    artifact: &ArtifactRef,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO artifacts (job_id, name, workspace_id, attempt, content_type, size, sha256, created_at) \
         SELECT id, $1, workspace_id, $2, $3, $4, $5, $6 FROM jobs WHERE id = $7 \
         ON CONFLICT (job_id, name) DO UPDATE SET attempt = EXCLUDED.attempt, \
           content_type = EXCLUDED.content_type, size = EXCLUDED.size, sha256 = EXCLUDED.sha256, \
           created_at = EXCLUDED.created_at",
    )
    .bind(artifact.name.as_str())
    .bind(attempt as i32)
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
impl ArtifactStore for PostgresStore {
    async fn artifact_lease_workspace(
        &self,
        worker: &WorkerId,
        lease: LeaseRef,
        now: DateTime<Utc>,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        let workspace: Option<Uuid> = sqlx::query_scalar(
            "SELECT workspace_id FROM jobs WHERE id = $1 AND state = 'running' AND attempt = $2 \
             AND worker_id = $3 AND lease_expires_at > $4",
        )
        .bind(lease.job_id.as_uuid())
        .bind(lease.attempt as i32)
        .bind(worker.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(workspace.map(WorkspaceId::from_uuid))
    }

    async fn artifact_insert_if_leased(
        &self,
        insert: &ArtifactInsert,
    ) -> Result<ArtifactInsertOutcome, StoreError> {
        let job_id = insert.lease.job_id.as_uuid();
        let mut tx = self.pool.begin().await?;
        let workspace: Option<Uuid> = sqlx::query_scalar(
            "SELECT workspace_id FROM jobs WHERE id = $1 AND state = 'running' AND attempt = $2 \
             AND worker_id = $3 AND lease_expires_at > $4 FOR SHARE",
        )
        .bind(job_id)
        .bind(insert.lease.attempt as i32)
        .bind(insert.worker_id.as_str())
        .bind(insert.now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(workspace) = workspace else {
            return Ok(ArtifactInsertOutcome::StaleLease);
        };
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(QUOTA_LOCK_CLASS)
            .bind(workspace.to_string())
            .execute(&mut *tx)
            .await?;
        let replaced = existing(&mut tx, job_id, insert.artifact.name.as_str()).await?;
        if replaced.is_none() {
            let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM artifacts WHERE job_id = $1")
                .bind(job_id)
                .fetch_one(&mut *tx)
                .await?;
            if held >= i64::from(insert.limits.max_per_job) {
                return Ok(ArtifactInsertOutcome::TooMany {
                    max: insert.limits.max_per_job,
                });
            }
        }
        let usage: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0)::int8 FROM artifacts WHERE workspace_id = $1",
        )
        .bind(workspace)
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
            job_id,
            workspace,
            insert.lease.attempt,
            &insert.artifact,
            insert.now,
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
        // One statement for the batch: each row takes its job's workspace,
        // and a job that is gone contributes no row.
        let mut ids = Vec::with_capacity(records.len());
        let mut names = Vec::with_capacity(records.len());
        let mut attempts = Vec::with_capacity(records.len());
        let mut types = Vec::with_capacity(records.len());
        let mut sizes = Vec::with_capacity(records.len());
        let mut digests = Vec::with_capacity(records.len());
        for record in records {
            ids.push(record.job_id.as_uuid());
            names.push(record.artifact.name.as_str());
            attempts.push(record.attempt as i32);
            types.push(record.artifact.content_type.as_str());
            sizes.push(record.artifact.size as i64);
            digests.push(record.artifact.sha256.to_hex());
        }
        let recorded = sqlx::query(
            "INSERT INTO artifacts (job_id, name, workspace_id, attempt, content_type, size, sha256, created_at) \
             SELECT r.job_id, r.name, j.workspace_id, r.attempt, r.content_type, r.size, r.sha256, $7 \
             FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::text[], $5::int8[], $6::text[]) \
               AS r(job_id, name, attempt, content_type, size, sha256) \
             JOIN jobs j ON j.id = r.job_id \
             ON CONFLICT (job_id, name) DO UPDATE SET attempt = EXCLUDED.attempt, \
               content_type = EXCLUDED.content_type, size = EXCLUDED.size, sha256 = EXCLUDED.sha256, \
               created_at = EXCLUDED.created_at",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&attempts)
        .bind(&types)
        .bind(&sizes)
        .bind(&digests)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(recorded)
    }

    async fn artifact_list(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
    ) -> Result<Option<Vec<StoredArtifact>>, StoreError> {
        // One statement: the job's existence and its rows in one snapshot.
        let rows = sqlx::query(&format!(
            "SELECT j.id AS found, a.* FROM jobs j \
             LEFT JOIN LATERAL (SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = j.id) a ON true \
             WHERE j.id = $1 AND j.workspace_id = $2 ORDER BY a.name"
        ))
        .bind(job_id.as_uuid())
        .bind(workspace.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<String>, _>("name")?.is_some() {
                items.push(artifact_from_row(row)?);
            }
        }
        Ok(Some(items))
    }

    async fn artifact_get(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
        name: &ArtifactName,
    ) -> Result<Option<StoredArtifact>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = $1 AND name = $2 AND workspace_id = $3"
        ))
        .bind(job_id.as_uuid())
        .bind(name.as_str())
        .bind(workspace.as_uuid())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(artifact_from_row)
        .transpose()
    }

    async fn artifact_usage(&self, workspace: WorkspaceId) -> Result<u64, StoreError> {
        let usage: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0)::int8 FROM artifacts WHERE workspace_id = $1",
        )
        .bind(workspace.as_uuid())
        .fetch_one(&self.pool)
        .await?;
        Ok(usage.unsigned_abs())
    }

    async fn artifact_referenced(
        &self,
        digests: &[Sha256Digest],
    ) -> Result<HashSet<Sha256Digest>, StoreError> {
        let hexes: Vec<String> = digests.iter().map(Sha256Digest::to_hex).collect();
        let found: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT sha256 FROM artifacts WHERE sha256 = ANY($1)")
                .bind(&hexes)
                .fetch_all(&self.pool)
                .await?;
        found.iter().map(|hex| parse_digest(hex)).collect()
    }

    async fn artifact_evidence(
        &self,
        leases: &[LeaseRef],
    ) -> Result<Vec<AttemptEvidence>, StoreError> {
        let ids: Vec<Uuid> = leases.iter().map(|lease| lease.job_id.as_uuid()).collect();
        let mut conn = self.pool.acquire().await?;
        let jobs = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = ANY($1) ORDER BY name"
        ))
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let mut by_job: std::collections::HashMap<Uuid, Vec<StoredArtifact>> = Default::default();
        for row in &rows {
            let artifact = artifact_from_row(row)?;
            if !EvidenceManifest::is_manifest_name(&artifact.name) {
                by_job
                    .entry(column(row, "job_id", "job id")?)
                    .or_default()
                    .push(artifact);
            }
        }
        let mut jobs_by_id = std::collections::HashMap::new();
        for row in &jobs {
            let job = job_from_row(row)?;
            jobs_by_id.insert(job.id, job);
        }
        Ok(leases
            .iter()
            .filter_map(|lease| {
                let job = jobs_by_id.get(&lease.job_id)?.clone();
                let artifacts = by_job
                    .get(&lease.job_id.as_uuid())
                    .map(|all| {
                        all.iter()
                            .filter(|a| a.attempt == lease.attempt)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                Some(AttemptEvidence {
                    job,
                    attempt: lease.attempt,
                    artifacts,
                })
            })
            .collect())
    }
}
