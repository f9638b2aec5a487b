//! [`BrowserEngine`]: the [`Executor`] that runs jobs in headless Chromium,
//! each in a fresh incognito context of a pooled browser.
//!
//! When the engine was given the worker's guard
//! ([`BrowserEngine::with_job_proxies`]), every job gets an egress proxy of
//! its own for its context. Its guard admits the networks the job's domain
//! policies ([`JobEgress`]) grant their hosts; its hook refuses every
//! request (documents, sub-resources, redirects, WebSockets) to a host the
//! policies deny, and tells the job what the guard refused (see `egress`).
//! A run that fails after a policy's refusal fails with code
//! `policy_denied`; a page whose load the guard refused fails with
//! `target_blocked`. The browser's own proxy stays behind every context
//! as the way out of last resort.

use std::sync::Arc;

use accord_egress::{EgressProxy, Guard, ProxyConfig};
use accord_model::{ArtifactRef, JobSpec};
use tokio_util::sync::CancellationToken;

use super::detect::Chromium;
use super::egress::{JobHook, JobProxy};
use super::error::BrowserFailure;
use super::job::Job;
use super::pool::{PoolHandle, PoolStats};
use super::BrowserConfig;
use crate::{Artifact, EngineError, Executor, JobEgress, RunFailure, RunOutput, StepFailure};

/// Runs jobs in Chromium. Cheap to clone; clones share one pool. The pool
/// (and its browsers) ends when the last clone is dropped and the last job
/// has given its slot back, or at [`BrowserEngine::shutdown`].
#[derive(Debug, Clone)]
pub struct BrowserEngine {
    pool: PoolHandle,
    config: Arc<BrowserConfig>,
    /// What a job's own egress proxy starts from (the worker's guard);
    /// `None`: jobs run behind the browser's proxy alone, and their
    /// policies are not applied inside the browser.
    job_guard: Option<Guard>,
}

impl BrowserEngine {
    /// Starts the pool; its first browser starts at once, in the background.
    /// Needs a tokio runtime.
    pub fn start(chromium: Chromium, config: BrowserConfig) -> Self {
        let config = Arc::new(config);
        Self {
            pool: PoolHandle::start(chromium, (*config).clone()),
            config,
            job_guard: None,
        }
    }

    /// Runs each job behind an egress proxy of its own, started from
    /// `guard` (the one the browser's shared proxy uses), with the job's
    /// domain policies applied, and the guard's refusals of its pages
    /// reported as `target_blocked`.
    pub fn with_job_proxies(mut self, guard: Guard) -> Self {
        self.job_guard = Some(guard);
        self
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
        self.run_with(spec, &JobEgress::default(), stop).await
    }

    async fn run_with(
        &self,
        spec: &JobSpec,
        egress: &JobEgress,
        stop: &CancellationToken,
    ) -> Result<RunOutput, RunFailure> {
        let Some(base) = self.job_guard.as_ref() else {
            return self.run_in(spec, stop, None).await;
        };
        let guard = match &egress.hosts {
            Some(hosts) => base.with_host_allow(hosts.clone()),
            None => base.clone(),
        };
        let hook = Arc::new(JobHook::new(egress.hops.clone()));
        let proxy = EgressProxy::start(guard.clone(), hook.clone(), ProxyConfig::default())
            .await
            .map_err(|err| failure_at_start(spec, BrowserFailure::JobProxy(err.to_string())))?;
        // The browsers are this process's children, as for the shared proxy.
        proxy.admit_process_tree(std::process::id());
        let job_proxy = JobProxy {
            server: format!("http://{}", proxy.addr()),
            hook: hook.clone(),
            guard,
        };
        let outcome = self.run_in(spec, stop, Some(job_proxy)).await;
        proxy.shutdown().await;
        outcome.map_err(|mut failure| {
            let refused = matches!(failure.error.failure(), StepFailure::Refused(_));
            if let Some(denied) = hook.first_denial().filter(|_| !refused) {
                let denied = StepFailure::PolicyDenied(denied);
                let step = failure.error.step().unwrap_or(0);
                failure.error = match spec.steps.get(step) {
                    Some(at) => EngineError::at(step, at, denied),
                    None => EngineError::whole_job(denied),
                };
            }
            failure
        })
    }
}

impl BrowserEngine {
    async fn run_in(
        &self,
        spec: &JobSpec,
        stop: &CancellationToken,
        proxy: Option<JobProxy>,
    ) -> Result<RunOutput, RunFailure> {
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
        let job = Job::new(&self.config, lease, stop, spec, proxy);
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
