//! Uploading what a run captured: every artifact of a finished run
//! (succeeded or failed) goes to the control plane over the worker
//! protocol, fenced by the job's lease, before the outcome is reported, so
//! the attempt's evidence manifest (written when the report is applied)
//! lists them.
//!
//! A failed upload is logged and does not change the outcome: the result
//! the engine produced is still true, and retrying the attempt would run
//! the whole job again (with whatever it does to the site) only to regain a
//! file. The manifest lists exactly what arrived, so a gap shows there.
//! Uploads retry, briefly, while the control plane is unreachable or
//! overloaded; once the lease is stale, the rest are not tried.

use std::sync::Arc;
use std::time::Duration;

use accord_client::{ArtifactUpload, ClientError};
use accord_engine::Artifact;
use accord_model::{Backoff, LeaseRef, WorkerId};
use tokio_util::sync::CancellationToken;

use crate::control::ControlPlane;

/// Tries of one upload while the server is unreachable or overloaded.
const TRIES: usize = 5;
/// The pauses between them.
const RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// Sends a job's artifacts; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Uploader {
    client: Arc<dyn ControlPlane>,
    worker_id: WorkerId,
}

impl Uploader {
    pub(crate) fn new(client: Arc<dyn ControlPlane>, worker_id: WorkerId) -> Self {
        Self { client, worker_id }
    }

    /// Uploads each artifact in turn; stops early when the job is stopped
    /// (cancelled, lease lost, shutdown) or its lease turns out stale.
    /// Returns how many arrived.
    pub(crate) async fn upload_all(
        &self,
        lease: LeaseRef,
        artifacts: Vec<Artifact>,
        stop: &CancellationToken,
    ) -> usize {
        let mut stored = 0;
        for artifact in artifacts {
            let outcome = tokio::select! {
                outcome = self.upload_one(lease, &artifact) => outcome,
                () = stop.cancelled() => {
                    tracing::info!("job stopped while uploading its artifacts; the rest are not sent");
                    return stored;
                }
            };
            match outcome {
                Ok(()) => stored += 1,
                Err(err) if err.code() == Some("stale_lease") => {
                    tracing::info!(name = %artifact.name, "artifact refused: this worker no longer holds the lease; the rest are not sent");
                    return stored;
                }
                Err(err) => {
                    tracing::warn!(name = %artifact.name, size = artifact.bytes.len(), error = %err, "artifact not stored; the job still reports its outcome, and its manifest lists what arrived");
                }
            }
        }
        stored
    }

    async fn upload_one(&self, lease: LeaseRef, artifact: &Artifact) -> Result<(), ClientError> {
        let mut backoff = RETRY;
        let mut tries = 0;
        loop {
            let upload = ArtifactUpload {
                worker_id: &self.worker_id,
                lease,
                name: &artifact.name,
                content_type: &artifact.content_type,
                bytes: artifact.bytes.clone(),
            };
            match self.client.upload_artifact(upload).await {
                Ok(stored) => {
                    tracing::debug!(name = %stored.name, size = stored.size, sha256 = %stored.sha256, "artifact stored");
                    return Ok(());
                }
                Err(err) if err.is_retryable() && tries + 1 < TRIES => {
                    tries += 1;
                    let delay = backoff.next_delay(rand::random());
                    tracing::warn!(name = %artifact.name, error = %err, retry_in_ms = delay.as_millis() as u64, "artifact upload failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
}
