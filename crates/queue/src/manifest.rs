//! Evidence manifests: when a worker's completion or failure has been
//! applied, each finished attempt gets a manifest (the job spec, the
//! worker, the timings, the outcome, and every artifact the attempt
//! uploaded with its size and SHA-256), written as canonical JSON to the
//! blob store and indexed as the artifact `manifest-<attempt>.json`.
//!
//! Written right after the transition commits, in the same call, so a
//! client that sees the job finished finds its manifest (a blob store
//! cannot join the database's transaction). If writing it fails, the
//! failure is logged and the job stays finished without one: the outcome
//! is already the job's, and the artifacts it would list stay readable.
//! Uploads cannot change an attempt's artifacts once it has finished (they
//! are fenced by the lease, and the lease row is locked while an upload's
//! row goes in), so the manifest is complete.

use std::collections::HashMap;

use accord_model::{
    EvidenceManifest, JobId, LeaseRef, ManifestOutcome, StoredArtifact, WorkerId, MANIFEST_VERSION,
};
use accord_store::{ArtifactRecord, AttemptEvidence, ReportOutcome, Transition};
use bytes::Bytes;
use futures::StreamExt;

use crate::Queue;

/// Manifests written at once per call (blob puts in flight).
const PUTS_IN_FLIGHT: usize = 16;

/// An attempt whose completion or failure was just applied.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub transition: Transition,
    pub outcome: ManifestOutcome,
}

/// The applied transitions of a report, each with its outcome.
pub(crate) fn finished(
    outcomes: &[ReportOutcome],
    outcome_of: impl Fn(&Transition) -> Option<ManifestOutcome>,
) -> Vec<Finished> {
    outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            ReportOutcome::Applied(transition) => Some(Finished {
                outcome: outcome_of(transition)?,
                transition: transition.clone(),
            }),
            ReportOutcome::Stale(_) => None,
        })
        .collect()
}

impl Queue {
    /// Writes and indexes the manifest of every finished attempt. Never
    /// fails the caller: the transitions are already applied.
    pub(crate) async fn record_manifests(&self, worker: &WorkerId, finished: Vec<Finished>) {
        let Some(blobs) = self.inner.blobs.as_ref() else {
            return;
        };
        if finished.is_empty() {
            return;
        }
        let leases: Vec<LeaseRef> = finished
            .iter()
            .map(|f| LeaseRef {
                job_id: f.transition.job_id,
                attempt: f.transition.attempt,
            })
            .collect();
        let evidence = match self.inner.store.artifact_evidence(&leases).await {
            Ok(evidence) => evidence,
            Err(err) => {
                tracing::warn!(error = %err, jobs = leases.len(), "cannot read what finished attempts uploaded; their evidence manifests are not written");
                return;
            }
        };
        let mut by_lease: HashMap<(JobId, u32), AttemptEvidence> = evidence
            .into_iter()
            .map(|e| ((e.job.id, e.attempt), e))
            .collect();
        let now = self.now();
        let manifests: Vec<(LeaseRef, EvidenceManifest)> = finished
            .into_iter()
            .filter_map(|f| {
                let lease = LeaseRef {
                    job_id: f.transition.job_id,
                    attempt: f.transition.attempt,
                };
                // A job pruned or gone meanwhile has nothing to be evidence of.
                let evidence = by_lease.remove(&(lease.job_id, lease.attempt))?;
                let job = evidence.job;
                let manifest = EvidenceManifest {
                    version: MANIFEST_VERSION,
                    job_id: job.id,
                    workspace_id: job.workspace_id,
                    queue: job.queue.clone(),
                    attempt: lease.attempt,
                    worker_id: worker.clone(),
                    spec: accord_model::JobSpec {
                        engine: job.engine,
                        steps: job.steps.clone(),
                        timeout_seconds: job.timeout_seconds,
                    },
                    labels: job.labels.clone(),
                    started_at: f.transition.started_at,
                    finished_at: f.transition.finished_at.unwrap_or(now),
                    outcome: f.outcome,
                    artifacts: evidence
                        .artifacts
                        .iter()
                        .map(StoredArtifact::reference)
                        .collect(),
                };
                Some((lease, manifest))
            })
            .collect();
        let records: Vec<ArtifactRecord> = futures::stream::iter(manifests)
            .map(|(lease, manifest)| async move {
                let bytes = Bytes::from(manifest.to_canonical_json());
                let size = bytes.len() as u64;
                match blobs.put_bytes(bytes).await {
                    Ok(sha256) => Some(ArtifactRecord {
                        job_id: lease.job_id,
                        attempt: lease.attempt,
                        artifact: accord_model::ArtifactRef {
                            name: EvidenceManifest::artifact_name(lease.attempt),
                            content_type: "application/json".to_owned(),
                            size,
                            sha256,
                        },
                    }),
                    Err(err) => {
                        tracing::warn!(job_id = %lease.job_id, attempt = lease.attempt, error = %err, "cannot store an evidence manifest; the job stays finished without one");
                        None
                    }
                }
            })
            .buffer_unordered(PUTS_IN_FLIGHT)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if records.is_empty() {
            return;
        }
        if let Err(err) = self.inner.store.artifact_record(&records, now).await {
            tracing::warn!(error = %err, manifests = records.len(), "cannot index evidence manifests; the jobs stay finished without them");
        }
    }
}
