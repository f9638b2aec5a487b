//! The worker's main loop. It owns all its state (the running jobs and
//! what is in flight) and reacts to one closed set of events; claims,
//! heartbeats and jobs run as tasks that report back through a channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use accord_egress::RobotsGate;
use accord_engine::Executor;
use accord_model::{
    Backoff, ClaimRequest, ClaimedJob, HeartbeatRequest, JobId, LeaseRef, ReleaseRequest, RunEngine,
};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::control::ControlPlane;
use crate::event::Event;
use crate::job::{Ended, JobTask};
use crate::polite::Politeness;
use crate::report::Reporter;
use crate::upload::Uploader;

/// The pauses between claims while claiming fails.
const CLAIM_RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));

#[derive(Debug)]
struct Running {
    lease: LeaseRef,
    stop: CancellationToken,
    engine: RunEngine,
}

/// The engines a worker runs jobs on. Each has its own slots, so a burst
/// of browser jobs never starves HTTP jobs of the same worker, and the
/// reverse.
#[derive(Debug, Clone)]
pub struct Engines {
    http: Arc<dyn Executor>,
    browser: Option<Arc<dyn Executor>>,
}

impl Engines {
    /// A worker that runs HTTP jobs only (no usable browser).
    pub fn http_only(http: Arc<dyn Executor>) -> Self {
        Self {
            http,
            browser: None,
        }
    }

    /// A worker that runs both HTTP and browser jobs.
    pub fn with_browser(http: Arc<dyn Executor>, browser: Arc<dyn Executor>) -> Self {
        Self {
            http,
            browser: Some(browser),
        }
    }

    fn get(&self, engine: RunEngine) -> Option<&Arc<dyn Executor>> {
        match engine {
            RunEngine::Http => Some(&self.http),
            RunEngine::Browser => self.browser.as_ref(),
        }
    }
}

/// The claim of one engine's slots.
#[derive(Debug)]
struct ClaimSlot {
    /// The claim under way, if any; aborted on shutdown so an idle worker
    /// stops at once instead of waiting out its long-poll.
    claiming: Option<AbortHandle>,
    /// Wait this long before the next claim (zero after a success).
    delay: Duration,
    backoff: Backoff,
}

impl ClaimSlot {
    fn new() -> Self {
        Self {
            claiming: None,
            delay: Duration::ZERO,
            backoff: CLAIM_RETRY,
        }
    }
}

/// Where the worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Claiming and running jobs.
    Working,
    /// Shutdown was asked for: no new claims; running jobs may finish until
    /// `grace_over`.
    Draining { grace_over: Instant },
    /// The grace period is over: the jobs still running were stopped and
    /// their leases given back; the loop ends once their tasks have ended.
    Released,
}

/// Everything the loop owns between events.
#[derive(Debug)]
struct State {
    phase: Phase,
    running: HashMap<JobId, Running>,
    /// One claim per engine the worker runs.
    claims: BTreeMap<RunEngine, ClaimSlot>,
    /// The heartbeat under way, if any: one at a time.
    heartbeating: Option<AbortHandle>,
}

impl State {
    fn new(engines: &Engines) -> Self {
        let claims = RunEngine::ALL
            .into_iter()
            .filter(|engine| engines.get(*engine).is_some())
            .map(|engine| (engine, ClaimSlot::new()))
            .collect();
        Self {
            phase: Phase::Working,
            running: HashMap::new(),
            claims,
            heartbeating: None,
        }
    }

    fn running_on(&self, engine: RunEngine) -> usize {
        self.running
            .values()
            .filter(|job| job.engine == engine)
            .count()
    }

    fn claiming(&self) -> bool {
        self.claims.values().any(|claim| claim.claiming.is_some())
    }

    fn leases(&self) -> Vec<LeaseRef> {
        self.running.values().map(|job| job.lease).collect()
    }
}

/// A worker bound to one control plane and one executor.
#[derive(Debug)]
pub struct Worker {
    client: Arc<dyn ControlPlane>,
    engines: Engines,
    config: WorkerConfig,
    robots: Option<RobotsGate>,
}

impl Worker {
    /// `client` is usually an [`AccordClient`](accord_client::AccordClient).
    pub fn new(
        client: impl ControlPlane + 'static,
        engines: Engines,
        config: WorkerConfig,
    ) -> Self {
        Self {
            client: Arc::new(client),
            engines,
            config,
            robots: None,
        }
    }

    /// Asks `gate` before each job's pages are fetched: a page the site's
    /// robots.txt refuses fails its job without a request to it. The gate
    /// shares its answers with every other worker through the control
    /// plane.
    pub fn with_robots(mut self, gate: RobotsGate) -> Self {
        let share = crate::robots::ControlPlaneRobots {
            client: self.client.clone(),
            worker_id: self.config.worker_id.clone(),
        };
        self.robots = Some(gate.shared_through(Arc::new(share)));
        self
    }

    /// Slots of `engine`: jobs of it that may run at the same time.
    fn slots(&self, engine: RunEngine) -> usize {
        match engine {
            RunEngine::Http => self.config.concurrency,
            RunEngine::Browser => self.config.browser_slots,
        }
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets running
    /// jobs finish within the grace period, and gives back the leases of
    /// those that did not.
    pub async fn run(self, shutdown: CancellationToken) {
        let config = &self.config;
        let browser_slots = if self.engines.browser.is_some() {
            config.browser_slots
        } else {
            0
        };
        tracing::info!(worker_id = %config.worker_id, http_slots = config.concurrency, browser_slots, server = %self.client.describe(), "worker started");
        let (events, mut inbox) = mpsc::unbounded_channel();
        let reporter = Reporter::spawn(
            self.client.clone(),
            config.worker_id.clone(),
            events.clone(),
        );
        let uploader = Uploader::new(self.client.clone(), config.worker_id.clone());
        let mut state = State::new(&self.engines);
        let mut ticker = tokio::time::interval(config.heartbeat_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            match state.phase {
                Phase::Working => {
                    let engines: Vec<RunEngine> = state.claims.keys().copied().collect();
                    for engine in engines {
                        let free = self.slots(engine).saturating_sub(state.running_on(engine));
                        let claim = state.claims.get_mut(&engine).expect("a claim per engine");
                        if claim.claiming.is_none() && free > 0 {
                            claim.claiming =
                                Some(self.spawn_claim(engine, free, claim.delay, events.clone()));
                        }
                    }
                }
                Phase::Draining { .. } | Phase::Released
                    if !state.claiming() && state.running.is_empty() =>
                {
                    break;
                }
                _ => {}
            }
            let grace_over = match state.phase {
                Phase::Draining { grace_over } if !state.running.is_empty() => Some(grace_over),
                _ => None,
            };
            tokio::select! {
                () = shutdown.cancelled(), if state.phase == Phase::Working => {
                    tracing::info!(running = state.running.len(), "worker stopping: no new claims");
                    state.phase = Phase::Draining { grace_over: Instant::now() + config.shutdown_grace };
                    // A claim dropped between the server's commit and its
                    // answer leaves jobs leased to nobody until the lease
                    // expires; the reaper then requeues them. Rare, and
                    // nothing is lost.
                    for claim in state.claims.values_mut() {
                        if let Some(claiming) = claim.claiming.take() {
                            claiming.abort();
                        }
                    }
                }
                () = sleep_until(grace_over), if grace_over.is_some() => {
                    state.phase = Phase::Released;
                    let leases = state.leases();
                    tracing::warn!(jobs = leases.len(), "grace period over: stopping jobs and giving their leases back");
                    for job in state.running.values() {
                        job.stop.cancel();
                    }
                    self.release(leases).await;
                }
                _ = ticker.tick() => {
                    if state.heartbeating.is_none() && !state.running.is_empty() {
                        state.heartbeating = Some(self.spawn_heartbeat(state.leases(), events.clone()));
                    }
                }
                Some(event) = inbox.recv() => {
                    self.on_event(&mut state, event, &reporter, &uploader, &events).await;
                    // Take in whatever else has arrived before deciding what
                    // to claim: slots freed together make one claim for all
                    // of them rather than one claim each.
                    while let Ok(event) = inbox.try_recv() {
                        self.on_event(&mut state, event, &reporter, &uploader, &events).await;
                    }
                }
            }
        }
        if let Some(heartbeat) = state.heartbeating.take() {
            heartbeat.abort();
        }
        tracing::info!(worker_id = %config.worker_id, "worker stopped");
    }

    async fn on_event(
        &self,
        state: &mut State,
        event: Event,
        reporter: &Reporter,
        uploader: &Uploader,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        match event {
            Event::Claimed(engine, Ok(jobs)) => {
                if let Some(claim) = state.claims.get_mut(&engine) {
                    claim.claiming = None;
                    claim.delay = Duration::ZERO;
                    claim.backoff.reset();
                }
                if state.phase != Phase::Working {
                    self.release(jobs.iter().map(ClaimedJob::lease).collect())
                        .await;
                    return;
                }
                let mut unrunnable = Vec::new();
                for job in jobs {
                    // The server hands out only jobs of the claimed engine;
                    // one that is not runnable here goes straight back.
                    let Some(executor) = self.engines.get(job.run_on).cloned() else {
                        tracing::warn!(job_id = %job.job_id, engine = %job.run_on, "claimed a job for an engine this worker does not run; giving it back");
                        unrunnable.push(job.lease());
                        continue;
                    };
                    let stop = CancellationToken::new();
                    state.running.insert(
                        job.job_id,
                        Running {
                            lease: job.lease(),
                            stop: stop.clone(),
                            engine: job.run_on,
                        },
                    );
                    self.spawn_job(
                        executor,
                        job,
                        stop,
                        reporter.clone(),
                        uploader.clone(),
                        events.clone(),
                    );
                }
                self.release(unrunnable).await;
            }
            Event::Claimed(engine, Err(err)) => {
                if let Some(claim) = state.claims.get_mut(&engine) {
                    claim.claiming = None;
                    claim.delay = claim.backoff.next_delay(rand::random());
                    tracing::warn!(error = %err, engine = %engine, retry_in_ms = claim.delay.as_millis() as u64, "claim failed");
                }
            }
            Event::Heartbeat(Ok(answer)) => {
                state.heartbeating = None;
                for id in answer.cancelled.iter().chain(&answer.lost) {
                    if let Some(job) = state.running.get(id) {
                        let why = if answer.cancelled.contains(id) {
                            "cancelled"
                        } else {
                            "lease lost"
                        };
                        tracing::info!(job_id = %id, why, "stopping job");
                        job.stop.cancel();
                    }
                }
            }
            Event::Heartbeat(Err(err)) => {
                state.heartbeating = None;
                tracing::warn!(error = %err, "heartbeat failed; leases may expire if this goes on");
            }
            Event::Reported(ids) => {
                for id in ids {
                    state.running.remove(&id);
                }
            }
            Event::Stopped(id) => {
                state.running.remove(&id);
            }
        }
    }

    fn spawn_claim(
        &self,
        engine: RunEngine,
        free: usize,
        backoff: Duration,
        events: mpsc::UnboundedSender<Event>,
    ) -> AbortHandle {
        let client = self.client.clone();
        let request = ClaimRequest {
            worker_id: self.config.worker_id.clone(),
            queues: self.config.queues.clone(),
            limit: free as u32,
            wait_ms: self.config.claim_wait.as_millis() as u64,
            engines: vec![engine],
        };
        tokio::spawn(async move {
            if !backoff.is_zero() {
                tokio::time::sleep(backoff).await;
            }
            let answer = client.claim(&request).await.map(|answer| answer.jobs);
            let _ = events.send(Event::Claimed(engine, answer));
        })
        .abort_handle()
    }

    fn spawn_heartbeat(
        &self,
        leases: Vec<LeaseRef>,
        events: mpsc::UnboundedSender<Event>,
    ) -> AbortHandle {
        let client = self.client.clone();
        let request = HeartbeatRequest {
            worker_id: self.config.worker_id.clone(),
            leases,
        };
        tokio::spawn(async move {
            let answer = client.heartbeat(&request).await;
            let _ = events.send(Event::Heartbeat(answer));
        })
        .abort_handle()
    }

    fn spawn_job(
        &self,
        executor: Arc<dyn Executor>,
        job: ClaimedJob,
        stop: CancellationToken,
        reporter: Reporter,
        uploader: Uploader,
        events: mpsc::UnboundedSender<Event>,
    ) {
        let id = job.job_id;
        let task = JobTask {
            reporter,
            uploader,
            executor,
            job,
            stop,
            robots: self.robots.clone(),
            politeness: self.config.politeness.then(|| Politeness {
                client: self.client.clone(),
                worker_id: self.config.worker_id.clone(),
            }),
        };
        tokio::spawn(async move {
            if task.run().await == Ended::Stopped {
                let _ = events.send(Event::Stopped(id));
            }
        });
    }

    async fn release(&self, leases: Vec<LeaseRef>) {
        if leases.is_empty() {
            return;
        }
        let request = ReleaseRequest {
            worker_id: self.config.worker_id.clone(),
            leases,
        };
        match self.client.release(&request).await {
            Ok(answer) => {
                tracing::info!(
                    released = answer.accepted.len(),
                    refused = answer.rejected.len(),
                    "leases given back (refused ones had already finished or expired)"
                )
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not give leases back; they will expire")
            }
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
