//! The worker's main loop. It owns all its state (the running jobs and
//! what is in flight) and reacts to one closed set of events; claims,
//! heartbeats and jobs run as tasks that report back through a channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use accord_client::{AccordClient, ClientError};
use accord_engine::Executor;
use accord_model::{
    ClaimRequest, ClaimedJob, HeartbeatRequest, HeartbeatResponse, JobId, LeaseRef, ReleaseRequest,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::job::{Ended, JobTask};
use crate::report::Reporter;
use crate::WorkerConfig;

/// What the loop reacts to.
#[derive(Debug)]
pub(crate) enum Event {
    Claimed(Result<Vec<ClaimedJob>, ClientError>),
    Heartbeat(Result<HeartbeatResponse, ClientError>),
    /// The reporter is done with these jobs' outcomes (delivered, refused or
    /// given up on): their slots are free.
    Reported(Vec<JobId>),
    /// A job stopped before it finished, so nothing will be reported.
    Stopped(JobId),
}

#[derive(Debug)]
struct Running {
    lease: LeaseRef,
    stop: CancellationToken,
}

/// Everything the loop owns between events.
#[derive(Debug, Default)]
struct State {
    running: HashMap<JobId, Running>,
    /// The claim under way, if any; aborted on shutdown so an idle worker
    /// stops at once instead of waiting out its long-poll.
    claiming: Option<tokio::task::AbortHandle>,
    heartbeating: bool,
    claim_backoff: Duration,
    stopping_at: Option<Instant>,
    released_on_stop: bool,
}

/// A worker bound to one control plane and one executor.
#[derive(Debug)]
pub struct Worker {
    client: AccordClient,
    executor: Arc<dyn Executor>,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(client: AccordClient, executor: Arc<dyn Executor>, config: WorkerConfig) -> Self {
        Self {
            client,
            executor,
            config,
        }
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets running
    /// jobs finish within the grace period, and gives back the leases of
    /// those that did not.
    pub async fn run(self, shutdown: CancellationToken) {
        let config = &self.config;
        tracing::info!(worker_id = %config.worker_id, concurrency = config.concurrency, server = %self.client.base_url(), "worker started");
        let (events, mut inbox) = mpsc::unbounded_channel();
        let reporter = Reporter::spawn(
            self.client.clone(),
            config.worker_id.clone(),
            events.clone(),
        );
        let mut state = State::default();
        let mut ticker = tokio::time::interval(config.heartbeat_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let free = config.concurrency.saturating_sub(state.running.len());
            if state.stopping_at.is_none() && state.claiming.is_none() && free > 0 {
                state.claiming = Some(self.spawn_claim(free, state.claim_backoff, events.clone()));
            }
            if state.stopping_at.is_some() && state.claiming.is_none() && state.running.is_empty() {
                break;
            }
            let grace_over = state
                .stopping_at
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                () = shutdown.cancelled(), if state.stopping_at.is_none() => {
                    tracing::info!(running = state.running.len(), "worker stopping: no new claims");
                    state.stopping_at = Some(Instant::now() + config.shutdown_grace);
                    // A claim dropped between the server's commit and its
                    // answer leaves jobs leased to nobody until the lease
                    // expires; the reaper then requeues them. Rare, and
                    // nothing is lost.
                    if let Some(claim) = state.claiming.take() {
                        claim.abort();
                    }
                }
                () = tokio::time::sleep_until(grace_over), if state.stopping_at.is_some() && !state.released_on_stop && !state.running.is_empty() => {
                    state.released_on_stop = true;
                    let leases: Vec<LeaseRef> = state.running.values().map(|r| r.lease).collect();
                    tracing::warn!(jobs = leases.len(), "grace period over: stopping jobs and giving their leases back");
                    for job in state.running.values() {
                        job.stop.cancel();
                    }
                    self.release(leases).await;
                }
                _ = ticker.tick() => {
                    if !state.heartbeating && !state.running.is_empty() {
                        state.heartbeating = true;
                        self.spawn_heartbeat(state.running.values().map(|r| r.lease).collect(), events.clone());
                    }
                }
                Some(event) = inbox.recv() => {
                    self.on_event(&mut state, event, &reporter, &events).await;
                    // Take in whatever else has arrived before deciding what
                    // to claim: slots freed together make one claim for all
                    // of them rather than one claim each.
                    while let Ok(event) = inbox.try_recv() {
                        self.on_event(&mut state, event, &reporter, &events).await;
                    }
                }
            }
        }
        tracing::info!(worker_id = %config.worker_id, "worker stopped");
    }

    async fn on_event(
        &self,
        state: &mut State,
        event: Event,
        reporter: &Reporter,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        match event {
            Event::Claimed(Ok(jobs)) => {
                state.claiming = None;
                state.claim_backoff = Duration::ZERO;
                if state.stopping_at.is_some() {
                    self.release(jobs.iter().map(ClaimedJob::lease).collect())
                        .await;
                    return;
                }
                for job in jobs {
                    let stop = CancellationToken::new();
                    state.running.insert(
                        job.job_id,
                        Running {
                            lease: job.lease(),
                            stop: stop.clone(),
                        },
                    );
                    self.spawn_job(job, stop, reporter.clone(), events.clone());
                }
            }
            Event::Claimed(Err(err)) => {
                state.claiming = None;
                state.claim_backoff = (state.claim_backoff * 2)
                    .clamp(Duration::from_millis(250), Duration::from_secs(5));
                tracing::warn!(error = %err, retry_in_ms = state.claim_backoff.as_millis() as u64, "claim failed");
            }
            Event::Heartbeat(Ok(answer)) => {
                state.heartbeating = false;
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
                state.heartbeating = false;
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
        free: usize,
        backoff: Duration,
        events: mpsc::UnboundedSender<Event>,
    ) -> tokio::task::AbortHandle {
        let client = self.client.clone();
        let request = ClaimRequest {
            worker_id: self.config.worker_id.clone(),
            queues: self.config.queues.clone(),
            limit: free as u32,
            wait_ms: self.config.claim_wait.as_millis() as u64,
        };
        tokio::spawn(async move {
            if !backoff.is_zero() {
                tokio::time::sleep(backoff).await;
            }
            let answer = client.claim(&request).await.map(|answer| answer.jobs);
            let _ = events.send(Event::Claimed(answer));
        })
        .abort_handle()
    }

    fn spawn_heartbeat(&self, leases: Vec<LeaseRef>, events: mpsc::UnboundedSender<Event>) {
        let client = self.client.clone();
        let request = HeartbeatRequest {
            worker_id: self.config.worker_id.clone(),
            leases,
        };
        tokio::spawn(async move {
            let answer = client.heartbeat(&request).await;
            let _ = events.send(Event::Heartbeat(answer));
        });
    }

    fn spawn_job(
        &self,
        job: ClaimedJob,
        stop: CancellationToken,
        reporter: Reporter,
        events: mpsc::UnboundedSender<Event>,
    ) {
        let id = job.job_id;
        let task = JobTask {
            reporter,
            executor: self.executor.clone(),
            job,
            stop,
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
            Ok(answer) => tracing::info!(released = answer.accepted.len(), "leases given back"),
            Err(err) if err.code() == Some("stale_lease") => {
                tracing::info!("some leases had already finished or expired")
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not give leases back; they will expire")
            }
        }
    }
}
