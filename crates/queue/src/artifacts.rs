//! Artifacts in the job lifecycle: a worker's upload, checked against its
//! lease, the size cap and the workspace's quota before a byte is read and
//! again (authoritatively) when its row is written; and reading artifacts
//! and manifests back within a workspace.
//!
//! An upload writes its blob first, then its row: the row never names
//! bytes that are not there. A refused row (the lease went stale or the
//! quota filled meanwhile) leaves a blob no row holds, which the sweep
//! removes once it is past its grace period (another job may hold, or be
//! about to hold, the same bytes, so it is never deleted on the spot).

use std::ops::Range;

use accord_artifacts::{BlobRead, Declared};
use accord_model::{
    check_content_type, ArtifactName, ArtifactRef, EvidenceManifest, JobId, LeaseRef,
    StoredArtifact, WorkerId, WorkspaceId,
};
use accord_store::{ArtifactInsert, ArtifactInsertOutcome};
use bytes::Bytes;
use futures::Stream;

use crate::{Queue, QueueError};

/// A worker's upload, as the API received it.
#[derive(Debug, Clone)]
pub struct ArtifactUpload {
    /// The worker as stored with its lease (bound to its key).
    pub worker_id: WorkerId,
    pub lease: LeaseRef,
    pub name: ArtifactName,
    pub content_type: String,
    /// The digest and size the uploader declares; the bytes must match.
    pub declared: Declared,
}

impl Queue {
    /// Stores an upload's bytes and records it for the job, or refuses it:
    /// a name reserved for manifests, a content type that is not a media
    /// type, a size over the cap, a lease the worker does not hold, a full
    /// quota or job, or bytes that differ from what was declared.
    pub async fn upload_artifact<S, E>(
        &self,
        upload: ArtifactUpload,
        body: S,
    ) -> Result<StoredArtifact, QueueError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let config = &self.inner.config.artifacts;
        let blobs = self.blobs()?;
        if EvidenceManifest::is_manifest_name(&upload.name) {
            return Err(QueueError::ReservedArtifactName(upload.name));
        }
        check_content_type(&upload.content_type)?;
        let size = upload.declared.size;
        if size > config.max_bytes {
            return Err(QueueError::ArtifactTooLarge {
                size,
                max: config.max_bytes,
            });
        }
        let stale = || QueueError::StaleLease {
            job_id: upload.lease.job_id,
            attempt: upload.lease.attempt,
        };
        // Cheap checks first, so a refused upload costs no transfer.
        let store = &self.inner.store;
        let workspace = store
            .artifact_lease_workspace(&upload.worker_id, upload.lease, self.now())
            .await?
            .ok_or_else(stale)?;
        let usage = store.artifact_usage(workspace).await?;
        let freed = store
            .artifact_get(workspace, upload.lease.job_id, &upload.name)
            .await?
            .map_or(0, |old| old.size);
        let quota = config.limits.quota_bytes;
        if usage.saturating_sub(freed).saturating_add(size) > quota {
            return Err(QueueError::QuotaExceeded { usage, quota, size });
        }

        blobs.put_stream(upload.declared, body).await?;

        let insert = ArtifactInsert {
            worker_id: upload.worker_id.clone(),
            lease: upload.lease,
            artifact: ArtifactRef {
                name: upload.name.clone(),
                content_type: upload.content_type.clone(),
                size,
                sha256: upload.declared.sha256,
            },
            now: self.now(),
            limits: config.limits,
        };
        match store.artifact_insert_if_leased(&insert).await? {
            ArtifactInsertOutcome::Stored { artifact, replaced } => {
                tracing::info!(
                    job_id = %upload.lease.job_id,
                    attempt = upload.lease.attempt,
                    name = %artifact.name,
                    size = artifact.size,
                    sha256 = %artifact.sha256,
                    replaced = replaced.is_some(),
                    "artifact stored"
                );
                Ok(artifact)
            }
            ArtifactInsertOutcome::StaleLease => Err(stale()),
            ArtifactInsertOutcome::QuotaExceeded { usage, quota } => {
                Err(QueueError::QuotaExceeded { usage, quota, size })
            }
            ArtifactInsertOutcome::TooMany { max } => Err(QueueError::TooManyArtifacts { max }),
        }
    }

    /// A job's artifacts (manifests included), by name.
    pub async fn artifacts(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
    ) -> Result<Vec<StoredArtifact>, QueueError> {
        self.inner
            .store
            .artifact_list(workspace, job_id)
            .await?
            .ok_or(QueueError::JobNotFound(job_id))
    }

    /// One artifact's row; the job must exist in the workspace.
    pub async fn artifact(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
        name: &ArtifactName,
    ) -> Result<StoredArtifact, QueueError> {
        match self
            .inner
            .store
            .artifact_get(workspace, job_id, name)
            .await?
        {
            Some(artifact) => Ok(artifact),
            None => {
                // Tell a missing job from a missing artifact.
                self.get(workspace, job_id).await?;
                Err(QueueError::ArtifactNotFound {
                    job_id,
                    name: name.clone(),
                })
            }
        }
    }

    /// Opens an artifact's bytes, or `range` of them.
    pub async fn open_artifact(
        &self,
        artifact: &StoredArtifact,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, QueueError> {
        Ok(self.blobs()?.get(&artifact.sha256, range).await?)
    }

    /// The evidence manifest of `attempt`, or of the latest attempt that
    /// has one: its row and its stored bytes (whose digest is the row's).
    pub async fn manifest(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
        attempt: Option<u32>,
    ) -> Result<(StoredArtifact, Bytes), QueueError> {
        let artifacts = self.artifacts(workspace, job_id).await?;
        let row = artifacts
            .into_iter()
            .filter(|a| EvidenceManifest::is_manifest_name(&a.name))
            .filter(|a| attempt.is_none_or(|wanted| a.attempt == wanted))
            .max_by_key(|a| a.attempt)
            .ok_or(QueueError::ManifestNotFound { job_id, attempt })?;
        let bytes = self.blobs()?.read_all(&row.sha256).await?;
        Ok((row, bytes))
    }
}
