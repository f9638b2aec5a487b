//! [`BrowserEngine`]: the [`Executor`] that runs jobs in headless Chromium,
//! each in a fresh incognito context of a pooled browser.

use std::sync::Arc;

use accord_model::{ArtifactRef, JobSpec};
use tokio_util::sync::CancellationToken;

use super::detect::Chromium;
use super::error::BrowserFailure;
use super::job::Job;
use super::pool::{PoolHandle, PoolStats};
use super::BrowserConfig;
use crate::{Artifact, EngineError, Executor, RunFailure, RunOutput, StepFailure};

/// Runs jobs in Chromium. Cheap to clone; clones share one pool. The pool
/// (and its browsers) ends when the last clone is dropped and the last job
/// has given its slot back, or at [`BrowserEngine::shutdown`].
#[derive(Debug, Clone)]
pub struct BrowserEngine {
    pool: PoolHandle,
    config: Arc<BrowserConfig>,
}

impl BrowserEngine {
    /// Starts the pool; its first browser starts at once, in the background.
    /// Needs a tokio runtime.
    pub fn start(chromium: Chromium, config: BrowserConfig) -> Self {
        let config = Arc::new(config);
        Self {
            pool: PoolHandle::start(chromium, (*config).clone()),
            config,
        }
    }

    /// The pool's browsers and counters, for operators, tests and benchmarks.
    pub async fn stats(&self) -> PoolStats {
        self.pool.stats().await
    }

    /// Kills the browsers and removes their directories. Jobs still running
    /// fail as their browser goes away.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
    }
}

#[async_trait::async_trait]
impl Executor for BrowserEngine {
    async fn run(&self, spec: &JobSpec, stop: &CancellationToken) -> Result<RunOutput, RunFailure> {
        let lease = tokio::select! {
            lease = self.pool.acquire() => lease,
            () = stop.cancelled() => Err(super::pool::PoolError::Closed),
        };
        let lease = match lease {
            Ok(lease) => lease,
            Err(_) if stop.is_cancelled() => {
                return Err(failure_at_start(spec, BrowserFailure::Stopped));
            }
            Err(err) => return Err(failure_at_start(spec, BrowserFailure::Unavailable(err))),
        };
        let job = Job::new(&self.config, lease, stop, spec);
        let (outcome, artifacts) = job.run(spec).await;
        match outcome {
            Ok(mut result) => {
                result.artifacts = artifacts.iter().map(artifact_ref).collect();
                Ok(RunOutput { result, artifacts })
            }
            Err(error) => Err(RunFailure { error, artifacts }),
        }
    }
}

/// A failure before the first step ran: it is charged to the first step.
fn failure_at_start(spec: &JobSpec, failure: BrowserFailure) -> RunFailure {
    let failure = StepFailure::Browser(failure);
    RunFailure::from(match spec.steps.first() {
        Some(step) => EngineError::at(0, step, failure),
        None => EngineError::whole_job(failure),
    })
}

fn artifact_ref(artifact: &Artifact) -> ArtifactRef {
    ArtifactRef {
        name: artifact.name.clone(),
        content_type: artifact.content_type.clone(),
        size: artifact.bytes.len() as u64,
        sha256: artifact.sha256(),
    }
}
