//! `accord bench engine`, jobs under domain policies: what a worker does
//! around a job of a workspace that has policies, so the bench can show
//! each engine's throughput with them next to its throughput without.
//!
//! Around each job, as the worker does (see the worker's `job.rs`): the
//! policies' check of the job, robots.txt for every URL it names (the
//! bench page's site serves one that allows everything; the first job
//! fetches it, the rest are answered from the gate's cache), a politeness
//! permit for each host from an in-process [`Cluster`]'s domain gate (the
//! control plane's side of the worker protocol, without its HTTP round
//! trip), the run under the job's egress rules
//! ([`accord_worker::job_egress`]), and the permit's end with the site's
//! answer recorded in the domain statistics.
//!
//! The policy set allows the bench page's host with caps that do not bind
//! (1,000 requests in flight, no rate, no gap) and obeys robots.txt, and
//! denies a tracker domain, so every hop a job makes is asked about as
//! well. Deliberately measures nothing itself: the callers time the jobs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accord_cluster::{Cluster, Sample};
use accord_egress::robots::{RobotsConfig, RobotsDecision};
use accord_egress::{DomainLimits, Finish, Guard, PoliteDecision, RobotsGate, RobotsGateConfig};
use accord_engine::{Executor, RunFailure, RunOutput};
use accord_model::{JobSpec, PolicySet, RunEngine, SystemClock};
use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;

/// A permit is held at most this long (as a job of 30 s would ask).
const HOLD_MS: u64 = 90_000;
/// The bench site's robots.txt: everything allowed.
pub const ROBOTS_TXT: &str = "User-agent: *\nAllow: /\n";

/// The policies, the robots.txt gate and the politeness state of the
/// bench's workspace. Cheap to clone; clones share all three.
#[derive(Debug, Clone)]
pub struct Policies {
    set: Arc<PolicySet>,
    robots: RobotsGate,
    cluster: Cluster,
    /// The server's default limits (a policy's numbers replace them).
    defaults: DomainLimits,
    permits: Arc<AtomicU64>,
    /// Times a job had to wait for its permit (0 when the caps do not bind).
    waits: Arc<AtomicUsize>,
}

impl Policies {
    /// The bench's policies for a page on `host`, fetching robots.txt
    /// through `guard` as the worker's gate does.
    pub fn new(guard: Guard, user_agent: &str) -> Result<Self> {
        let set: PolicySet = serde_json::from_value(serde_json::json!({"policies": [
            {"pattern": "127.0.0.1", "rules": {
                "allowed": true, "obey_robots": true, "max_concurrent": 1000}},
            {"pattern": "*.tracker.example", "rules": {"allowed": false, "obey_robots": true}}
        ]}))
        .context("the bench's policy set")?;
        let robots = RobotsGate::new(
            RobotsGateConfig {
                robots: RobotsConfig::new("accord"),
                user_agent: user_agent.to_owned(),
                timeout: Duration::from_secs(10),
            },
            guard,
            Arc::new(SystemClock),
        )
        .context("the bench's robots.txt gate")?;
        Ok(Self {
            set: Arc::new(set),
            robots,
            cluster: Cluster::local(),
            defaults: DomainLimits::default(),
            permits: Arc::new(AtomicU64::new(0)),
            waits: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// How many times a job waited for its permit so far.
    pub fn waits(&self) -> usize {
        self.waits.load(Ordering::Relaxed)
    }

    /// Runs `spec` on `engine` (which runs on `run_on`) as the worker runs
    /// a job of a workspace with these policies.
    pub async fn run(
        &self,
        engine: &dyn Executor,
        spec: &JobSpec,
        run_on: RunEngine,
        stop: &CancellationToken,
    ) -> Result<Result<RunOutput, RunFailure>> {
        if let Err(denial) = self.set.check_job(&spec.steps, &[run_on]) {
            bail!("the bench's policies refused the job: {denial}");
        }
        let mut hosts = Vec::new();
        for step in &spec.steps {
            let Some(url) = step.target_url() else {
                continue;
            };
            let url = url.as_url();
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            let policy = self.set.effective(&host);
            let mut limits = self.defaults;
            if let Some(n) = policy.requests_per_minute {
                limits.per_minute = Some(n);
            }
            if let Some(n) = policy.max_concurrent {
                limits.max_concurrent = Some(n);
            }
            if let Some(n) = policy.min_gap_ms {
                limits.min_gap_ms = u64::from(n);
            }
            if policy.obey_robots {
                match self.robots.check(url).await {
                    RobotsDecision::Allowed { min_gap } => {
                        let gap = min_gap.map_or(0, |gap| gap.num_milliseconds());
                        limits.min_gap_ms = limits.min_gap_ms.max(u64::try_from(gap).unwrap_or(0));
                    }
                    RobotsDecision::Disallowed(why) => {
                        bail!("robots.txt refused the bench page: {why:?}")
                    }
                }
            }
            if !hosts.iter().any(|(known, _)| *known == host) {
                hosts.push((host, limits));
            }
        }
        let permit = format!("bench/{}", self.permits.fetch_add(1, Ordering::Relaxed));
        let gate = self.cluster.domain_gate();
        for (host, limits) in &hosts {
            loop {
                match gate.acquire(host, limits, &permit, HOLD_MS).await {
                    PoliteDecision::Go { .. } => break,
                    PoliteDecision::Wait { until_ms, .. } => {
                        self.waits.fetch_add(1, Ordering::Relaxed);
                        self.cluster.domain_stats().record(host, Sample::Wait).await;
                        let now = chrono::Utc::now().timestamp_millis();
                        let wait = u64::try_from(until_ms.saturating_sub(now)).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(wait.clamp(1, 50))).await;
                    }
                }
            }
        }
        let egress = accord_worker::job_egress(Some(&self.set), run_on);
        let outcome = engine.run_with(spec, &egress, stop).await;
        let (finish, sample) = match &outcome {
            Ok(output) => (
                Finish::Success,
                Sample::Status {
                    status: output.result.status,
                    latency_ms: output.result.timings.total_ms,
                },
            ),
            Err(_) => (Finish::Failure, Sample::Error),
        };
        for (host, limits) in &hosts {
            gate.finish(host, limits, &permit, finish, None).await;
            self.cluster.domain_stats().record(host, sample).await;
        }
        Ok(outcome)
    }
}
