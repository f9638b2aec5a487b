//! [`BrowserEngine`]: the [`Executor`] that runs jobs in headless Chromium,
//! each in a fresh incognito context of a pooled browser.
//!
//! A job with domain policies ([`JobEgress`]) gets an egress proxy of its
//! own for its context, when the engine was given the guard to start one
//! from ([`BrowserEngine::with_job_proxies`]): that proxy's guard admits the
//! networks the policies grant their hosts, and its hook refuses every
//! request (documents, sub-resources, redirects, WebSockets) to a host the
//! policies deny. A run that fails after such a refusal fails with code
//! `policy_denied`.

use std::sync::{Arc, Mutex, PoisonError};

use accord_egress::proxy::{HookVerdict, ProxyOutcome, ProxyRequest, RequestKind};
use accord_egress::{EgressProxy, Guard, HopPolicy, ProxyConfig, ProxyHook};
use accord_model::{ArtifactRef, JobSpec};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::detect::Chromium;
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
    /// `None`: jobs' policies are not applied inside the browser.
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

    /// Runs each job that has domain policies behind an egress proxy of its
    /// own, started from `guard` (the one the browser's shared proxy uses).
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
        self.run_in(spec, stop, None).await
    }

    async fn run_with(
        &self,
        spec: &JobSpec,
        egress: &JobEgress,
        stop: &CancellationToken,
    ) -> Result<RunOutput, RunFailure> {
        let Some(base) = self.job_guard.as_ref().filter(|_| !egress.is_empty()) else {
            return self.run(spec, stop).await;
        };
        let guard = match &egress.hosts {
            Some(hosts) => base.with_host_allow(hosts.clone()),
            None => base.clone(),
        };
        let hook = Arc::new(PolicyHook {
            hops: egress.hops.clone(),
            denied: Mutex::new(None),
        });
        let proxy = EgressProxy::start(guard, hook.clone(), ProxyConfig::default())
            .await
            .map_err(|err| failure_at_start(spec, BrowserFailure::JobProxy(err.to_string())))?;
        // The browsers are this process's children, as for the shared proxy.
        proxy.admit_process_tree(std::process::id());
        let server = format!("http://{}", proxy.addr());
        let outcome = self.run_in(spec, stop, Some(server)).await;
        proxy.shutdown().await;
        outcome.map_err(|mut failure| {
            if let Some(denied) = hook.first_denial() {
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
        proxy_server: Option<String>,
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
        let job = Job::new(&self.config, lease, stop, spec, proxy_server);
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

/// A job's domain policies as its proxy's hook: every request's host is
/// asked about, and the first refusal is kept to say why the run failed.
#[derive(Debug)]
struct PolicyHook {
    hops: Option<Arc<dyn HopPolicy>>,
    denied: Mutex<Option<String>>,
}

impl PolicyHook {
    fn first_denial(&self) -> Option<String> {
        self.denied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ProxyHook for PolicyHook {
    fn check(&self, request: &ProxyRequest<'_>) -> HookVerdict {
        let Some(hops) = &self.hops else {
            return HookVerdict::Allow;
        };
        // A tunnel shows only its host: the policy is per host anyway.
        let url = match (request.kind, request.url) {
            (RequestKind::Forward, Some(url)) => Some(url.clone()),
            _ => Url::parse(&format!("https://{}/", request.authority)).ok(),
        };
        let Some(url) = url else {
            return HookVerdict::Deny(format!("{}: not a host", request.authority));
        };
        match hops.check(&url) {
            Ok(()) => HookVerdict::Allow,
            Err(denied) => {
                let reason = denied.to_string();
                let mut first = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
                first.get_or_insert_with(|| reason.clone());
                HookVerdict::Deny(reason)
            }
        }
    }

    fn record(&self, _request: &ProxyRequest<'_>, _outcome: &ProxyOutcome<'_>) {}
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
