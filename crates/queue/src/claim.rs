//! The worker protocol's side of the queue: claim (long-polling), heartbeat,
//! complete, fail and release, each fenced by the lease's token.

use std::time::Duration;

use std::collections::HashMap;

use accord_model::{
    ClaimRequest, ClaimedJob, CompleteItem, EscalateItem, FailItem, HeartbeatResponse, JobError,
    JobId, JobState, LeaseRef, ManifestOutcome, ReportResponse, WorkerId, WorkerScope,
};
use accord_store::{ClaimParams, EscalateParams, FailParams, ReportOutcome, Transition};
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::manifest::finished;
use crate::metrics::{EngineLabels, OutcomeLabels, QueueLabels};
use crate::{Queue, QueueError};

/// Counts a claim as waiting for as long as it lives (a claim may be
/// dropped while it waits, when its caller goes away).
struct WaitingClaim<'a>(&'a watch::Sender<usize>);

impl<'a> WaitingClaim<'a> {
    fn new(waiting: &'a watch::Sender<usize>) -> Self {
        waiting.send_modify(|n| *n += 1);
        Self(waiting)
    }
}

impl Drop for WaitingClaim<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Why a transition happened, for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A worker reported it (complete, fail, release).
    Reported,
    /// The reaper took an expired lease back.
    LeaseExpired,
}

impl Queue {
    /// Leases up to `limit` due jobs, waiting up to `wait_ms` (capped by the
    /// configuration) for one to appear. An insert wakes waiting claims at
    /// once; scheduled jobs are picked up when they fall due; a periodic look
    /// at the store backs both up. Only jobs of the scope's workspaces are leased.
    pub async fn claim(
        &self,
        scope: WorkerScope,
        request: &ClaimRequest,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        self.saw_worker(&request.worker_id);
        let config = &self.inner.config;
        let wait = Duration::from_millis(request.wait_ms).min(config.max_claim_wait);
        let deadline = Instant::now() + wait;
        loop {
            // Register for wake-ups before looking, so an insert that lands
            // between the look and the wait is not missed.
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let params = ClaimParams {
                worker_id: request.worker_id.clone(),
                workspace: scope.workspace(),
                queues: request.queues.clone(),
                limit: request.limit,
                engines: request.engines.clone(),
                now: self.now(),
                lease_ttl: config.lease_ttl,
            };
            let mut claimed = self.inner.store.job_claim_available(&params).await?;
            if !claimed.is_empty() {
                self.attach_policies(&mut claimed).await?;
                self.record_claims(&claimed, params.now);
                return Ok(claimed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut nap = (deadline - now).min(config.claim_poll_interval);
            if let Some(due) = self.inner.store.job_next_due_at(&request.queues).await? {
                let until_due = (due - self.now()).to_std().unwrap_or(Duration::ZERO);
                nap = nap.min(until_due.max(Duration::from_millis(1)));
            }
            let _waiting = WaitingClaim::new(&self.inner.waiting);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    fn record_claims(&self, claimed: &[ClaimedJob], now: chrono::DateTime<chrono::Utc>) {
        let metrics = &self.inner.metrics;
        for job in claimed {
            self.announce(job.job_id, JobState::Running);
            let labels = QueueLabels {
                queue: job.queue.to_string(),
            };
            metrics.claimed.get_or_create(&labels).inc();
            let waited = (now - job.due_at).to_std().unwrap_or(Duration::ZERO);
            metrics
                .claim_latency
                .get_or_create(&labels)
                .observe(waited.as_secs_f64());
            tracing::debug!(job_id = %job.job_id, attempt = job.attempt, "job claimed");
        }
    }

    pub async fn heartbeat(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
    ) -> Result<HeartbeatResponse, QueueError> {
        self.saw_worker(worker);
        let outcome = self
            .inner
            .store
            .job_heartbeat_leased(worker, leases, self.now(), self.inner.config.lease_ttl)
            .await?;
        Ok(HeartbeatResponse {
            extended: outcome.extended,
            cancelled: outcome.cancelled,
            lost: outcome.lost,
        })
    }

    pub async fn complete(
        &self,
        worker: &WorkerId,
        items: &[CompleteItem],
    ) -> Result<ReportResponse, QueueError> {
        self.saw_worker(worker);
        // A monitor run's job completes with its outcome, in one
        // transaction each; the other jobs complete as one batch.
        let (plain, monitored) = self.complete_monitor_items(worker, items).await?;
        let mut plain_outcomes = if plain.is_empty() {
            Vec::new()
        } else {
            self.inner
                .store
                .job_complete_if_leased(worker, &plain, self.now())
                .await?
        }
        .into_iter();
        let mut monitored = monitored.into_iter().peekable();
        let mut outcomes = Vec::with_capacity(items.len());
        for index in 0..items.len() {
            match monitored.next_if(|(at, _)| *at == index) {
                Some((_, outcome)) => outcomes.push(outcome),
                None => outcomes.extend(plain_outcomes.next()),
            }
        }
        let finished = finished(&outcomes, |transition| {
            let item = items.iter().find(|item| item.job_id == transition.job_id)?;
            Some(ManifestOutcome::Succeeded {
                result: item.result.clone(),
            })
        });
        let answer = self.settle(outcomes);
        self.record_manifests(worker, finished).await;
        Ok(answer)
    }

    pub async fn fail(
        &self,
        worker: &WorkerId,
        items: Vec<FailItem>,
    ) -> Result<ReportResponse, QueueError> {
        self.saw_worker(worker);
        let jitter = {
            let mut rng = rand::thread_rng();
            items.iter().map(|_| rng.gen::<f64>()).collect()
        };
        let errors: HashMap<JobId, JobError> = items
            .iter()
            .map(|item| (item.job_id, item.error.clone()))
            .collect();
        let now = self.now();
        let verdicts = self.dead_run_verdicts(&items, now).await?;
        let params = FailParams {
            worker_id: worker.clone(),
            items,
            now,
            jitter,
            verdicts,
        };
        let outcomes = self.inner.store.job_fail_if_leased(&params).await?;
        // Waiting claims recompute when the next job falls due, so a short
        // retry delay is honoured instead of the polling backstop.
        self.wake_claimers();
        self.audit_run_refusals(worker, &outcomes, &errors).await;
        let finished = finished(&outcomes, |transition| {
            Some(ManifestOutcome::Failed {
                error: errors.get(&transition.job_id)?.clone(),
                next: transition.to,
            })
        });
        let answer = self.settle(outcomes);
        self.record_manifests(worker, finished).await;
        Ok(answer)
    }

    pub async fn release(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
    ) -> Result<ReportResponse, QueueError> {
        let outcomes = self
            .inner
            .store
            .job_release_if_leased(worker, leases, self.now())
            .await?;
        let released = self.settle(outcomes);
        self.wake_claimers();
        Ok(released)
    }

    /// Puts leased jobs back unrun until their domain may be visited again;
    /// the attempt is not counted.
    pub async fn defer(
        &self,
        worker: &WorkerId,
        items: &[accord_model::DeferItem],
    ) -> Result<ReportResponse, QueueError> {
        let now = self.now();
        let leases: Vec<accord_store::DeferLease> = items
            .iter()
            .map(|item| accord_store::DeferLease {
                lease: LeaseRef {
                    job_id: item.job_id,
                    attempt: item.attempt,
                },
                run_at: now
                    + chrono::TimeDelta::milliseconds(
                        i64::try_from(item.delay_ms).unwrap_or(i64::MAX / 2),
                    ),
                message: item.reason.clone(),
            })
            .collect();
        let outcomes = self
            .inner
            .store
            .job_defer_if_leased(worker, &leases, now)
            .await?;
        Ok(self.settle(outcomes))
    }

    /// Moves `auto` jobs whose HTTP attempt found that the page needs a
    /// browser back to the queue for a browser worker (the attempt is not
    /// counted), remembering the job's domain for `auto_memory`.
    pub async fn escalate(
        &self,
        worker: &WorkerId,
        items: Vec<EscalateItem>,
    ) -> Result<ReportResponse, QueueError> {
        self.saw_worker(worker);
        let params = EscalateParams {
            worker_id: worker.clone(),
            items,
            now: self.now(),
            remember_for: self.inner.config.auto_memory,
        };
        let outcomes = self.inner.store.job_escalate_if_leased(&params).await?;
        let moved = self.settle(outcomes);
        self.wake_claimers();
        Ok(moved)
    }

    /// Records metrics for applied transitions and sorts the items into
    /// accepted and rejected: a stale item is part of the answer, not an error.
    fn settle(&self, outcomes: Vec<ReportOutcome>) -> ReportResponse {
        let now = self.now();
        let mut accepted = Vec::with_capacity(outcomes.len());
        let mut rejected = Vec::new();
        for outcome in outcomes {
            match outcome {
                ReportOutcome::Applied(transition) => {
                    self.record_transition(&transition, now, Cause::Reported);
                    accepted.push(transition.job_id);
                }
                ReportOutcome::Stale(id) => {
                    tracing::warn!(job_id = %id, "report for a lease the worker does not hold was refused");
                    rejected.push(id);
                }
            }
        }
        ReportResponse::new(accepted, rejected)
    }

    pub(crate) fn record_transition(
        &self,
        transition: &Transition,
        now: chrono::DateTime<chrono::Utc>,
        cause: Cause,
    ) {
        self.announce(transition.job_id, transition.to);
        let metrics = &self.inner.metrics;
        let queue = transition.queue.to_string();
        let engine = transition.engine.as_str().to_owned();
        let engine_labels = EngineLabels {
            queue: queue.clone(),
            engine: engine.clone(),
        };
        let outcome = match (cause, transition.to) {
            (Cause::LeaseExpired, _) => "lease_expired",
            (Cause::Reported, JobState::Succeeded) => {
                metrics.succeeded.get_or_create(&engine_labels).inc();
                "succeeded"
            }
            (Cause::Reported, JobState::Retrying | JobState::Dead) => {
                metrics.failed.get_or_create(&engine_labels).inc();
                "failed"
            }
            (Cause::Reported, _) => "released",
        };
        if transition.to == JobState::Dead {
            metrics.dead.get_or_create(&QueueLabels { queue }).inc();
        }
        if let Some(started) = transition.started_at {
            let ran = (now - started).to_std().unwrap_or(Duration::ZERO);
            metrics
                .execution
                .get_or_create(&OutcomeLabels {
                    engine,
                    outcome: outcome.to_owned(),
                })
                .observe(ran.as_secs_f64());
        }
        tracing::info!(job_id = %transition.job_id, attempt = transition.attempt, state = %transition.to, outcome, "job transition");
    }
}
