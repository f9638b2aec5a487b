//! The one trait every engine implements, so the worker can hold any of them,
//! and what a run hands back: a result or an error, plus the artifacts it
//! captured either way (a failed browser run keeps its screenshot).

use std::sync::Arc;

use accord_egress::{HopPolicy, HostAllow};
use accord_model::{ArtifactName, JobResult, JobSpec, Sha256Digest};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::EngineError;

/// Runs a job's steps and reports what they produced.
///
/// The caller stops a run by cancelling `stop` (the job timed out, was
/// cancelled, or the worker is shutting down) and then awaits the run:
/// implementations must return promptly (well within a second) once `stop`
/// is cancelled, and must not return while work of the run (a parse on a
/// blocking thread, a browser page) is still going. Dropping the future is
/// still safe, but leaves such work to wind down on its own.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    async fn run(&self, spec: &JobSpec, stop: &CancellationToken) -> Result<RunOutput, RunFailure>;

    /// [`Executor::run`] under one job's own egress rules (its domain
    /// policies). Engines that cannot apply them per job run the job as
    /// [`Executor::run`] does; the HTTP engine applies both.
    async fn run_with(
        &self,
        spec: &JobSpec,
        egress: &JobEgress,
        stop: &CancellationToken,
    ) -> Result<RunOutput, RunFailure> {
        let _ = egress;
        self.run(spec, stop).await
    }
}

/// What one job's domain policies add to the engine's egress rules.
#[derive(Debug, Clone, Default)]
pub struct JobEgress {
    /// Networks a host may resolve to on top of the engine's allow-list
    /// (for the hosts whose policy grants them).
    pub hosts: Option<Arc<dyn HostAllow>>,
    /// Asked about every URL the run fetches beyond the job's own step
    /// URLs (redirect hops, links followed); a refusal fails the job
    /// permanently with code `policy_denied`.
    pub hops: Option<Arc<dyn HopPolicy>>,
}

impl JobEgress {
    /// Whether there is nothing to add (the engine's shared client will do).
    pub fn is_empty(&self) -> bool {
        self.hosts.is_none() && self.hops.is_none()
    }
}

/// A file a run captured, in memory until the worker uploads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: ArtifactName,
    /// A MIME type, e.g. `image/png`.
    pub content_type: String,
    pub bytes: Bytes,
}

impl Artifact {
    pub fn new(
        name: ArtifactName,
        content_type: impl Into<String>,
        bytes: impl Into<Bytes>,
    ) -> Self {
        Self {
            name,
            content_type: content_type.into(),
            bytes: bytes.into(),
        }
    }

    pub fn sha256(&self) -> Sha256Digest {
        Sha256Digest::of(&self.bytes)
    }
}

/// A run that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    pub result: JobResult,
    pub artifacts: Vec<Artifact>,
}

impl From<JobResult> for RunOutput {
    fn from(result: JobResult) -> Self {
        Self {
            result,
            artifacts: Vec::new(),
        }
    }
}

/// A run that failed, with whatever it captured before it did.
#[derive(Debug)]
pub struct RunFailure {
    pub error: EngineError,
    pub artifacts: Vec<Artifact>,
}

impl From<EngineError> for RunFailure {
    fn from(error: EngineError) -> Self {
        Self {
            error,
            artifacts: Vec::new(),
        }
    }
}
