//! [`ArtifactStore`]: the index of artifacts (which job holds which blob
//! under which name), the per-workspace usage its quota is checked
//! against, and what the evidence manifest and the blob sweep read.
//! Implemented in each backend's `artifacts.rs`. Rows go when their job is
//! pruned (`MaintenanceStore::job_prune_finished`).
//!
//! A job's artifact names are unique: a later attempt that uploads a name
//! again replaces the row (the job shows its newest evidence; an earlier
//! attempt's manifest keeps the digest it recorded). Not the bytes: those
//! are the blob store's, addressed by the digest a row holds, and shared by
//! every row that holds it.

use std::collections::HashSet;

use accord_model::{
    ArtifactName, ArtifactRef, Job, JobId, LeaseRef, Sha256Digest, StoredArtifact, WorkerId,
    WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// The limits an upload is held to, checked in the statement that records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// Most bytes all artifacts of a workspace may hold together.
    pub quota_bytes: u64,
    /// Most artifacts one job may hold (manifests included).
    pub max_per_job: u32,
}

/// A worker's upload to record, fenced by its lease.
#[derive(Debug, Clone)]
pub struct ArtifactInsert {
    /// The worker as stored with the lease (bound to its key).
    pub worker_id: WorkerId,
    pub lease: LeaseRef,
    pub artifact: ArtifactRef,
    pub now: DateTime<Utc>,
    pub limits: ArtifactLimits,
}

/// An artifact the control plane records for an attempt (not fenced by a
/// lease, not held to the quota: its own evidence is never refused).
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    pub job_id: JobId,
    pub attempt: u32,
    pub artifact: ArtifactRef,
}

/// What became of an upload's row.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactInsertOutcome {
    /// Recorded; `replaced` is the row it took the place of (same job, same name).
    Stored {
        artifact: StoredArtifact,
        replaced: Option<StoredArtifact>,
    },
    /// The worker does not hold this lease (any more), or it has expired.
    StaleLease,
    /// The workspace's artifacts would pass its quota.
    QuotaExceeded { usage: u64, quota: u64 },
    /// The job already holds as many artifacts as it may.
    TooMany { max: u32 },
}

/// A finished attempt and what it uploaded: what its manifest is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEvidence {
    pub job: Job,
    pub attempt: u32,
    /// The artifacts whose rows this attempt wrote, by name, manifests left out.
    pub artifacts: Vec<StoredArtifact>,
}

/// The artifact index.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// The job's workspace when `worker` holds this lease and it has not
    /// expired at `now`: the cheap check made before an upload's bytes are
    /// read. The insert checks again.
    async fn artifact_lease_workspace(
        &self,
        worker: &WorkerId,
        lease: LeaseRef,
        now: DateTime<Utc>,
    ) -> Result<Option<WorkspaceId>, StoreError>;

    /// Records an upload if the worker still holds the lease, the job stays
    /// within its count and the workspace within its quota (the replaced
    /// row's bytes no longer count). The lease row is locked until the
    /// insert commits, so a completion applied meanwhile waits and its
    /// manifest sees the artifact.
    async fn artifact_insert_if_leased(
        &self,
        insert: &ArtifactInsert,
    ) -> Result<ArtifactInsertOutcome, StoreError>;

    /// Records artifacts the control plane made (evidence manifests), each
    /// replacing one of the same name of its job, in one transaction; jobs
    /// that are gone are skipped. Returns how many were recorded.
    async fn artifact_record(
        &self,
        records: &[ArtifactRecord],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// A job's artifacts by name; `None` when the job does not exist (in this workspace).
    async fn artifact_list(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
    ) -> Result<Option<Vec<StoredArtifact>>, StoreError>;

    async fn artifact_get(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
        name: &ArtifactName,
    ) -> Result<Option<StoredArtifact>, StoreError>;

    /// Bytes held by all artifacts of the workspace.
    async fn artifact_usage(&self, workspace: WorkspaceId) -> Result<u64, StoreError>;

    /// Which of these digests a row still holds.
    async fn artifact_referenced(
        &self,
        digests: &[Sha256Digest],
    ) -> Result<HashSet<Sha256Digest>, StoreError>;

    /// For each lease, its job and what that attempt uploaded; jobs that
    /// are gone are left out.
    async fn artifact_evidence(
        &self,
        leases: &[LeaseRef],
    ) -> Result<Vec<AttemptEvidence>, StoreError>;
}
