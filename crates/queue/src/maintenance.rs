//! Background duties: the reaper (expired leases back to the queue), the
//! pruner (retention of finished jobs, with their artifact rows) and the
//! blob sweep (blobs no artifact row holds any more). One loop owns them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::time::Instant;

use accord_model::Backoff;
use accord_store::StoreError;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::claim::Cause;
use crate::metrics::QueueLabels;
use crate::Queue;

/// Blobs looked up against the index per query.
const SWEEP_BATCH: usize = 1_000;
/// How often expired robots.txt answers are forgotten (a table scan).
const ROBOTS_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// What one maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub reaped: usize,
    pub pruned: u64,
    pub audit_pruned: u64,
    /// Workflow runs past the job retention deleted.
    pub workflow_runs_pruned: u64,
    /// Blobs deleted by the sweep (when it ran in this pass).
    pub blobs_swept: u64,
    /// Shared robots.txt answers (and lapsed claims) forgotten.
    pub robots_pruned: u64,
}

impl Queue {
    /// One pass: reap every expired lease, then prune one bounded batch of
    /// finished jobs, and one of audit entries, past their retention.
    pub async fn maintain_once(&self) -> Result<MaintenanceReport, StoreError> {
        let config = &self.inner.config;
        let mut report = MaintenanceReport::default();
        loop {
            let now = self.now();
            let reaped = self
                .inner
                .store
                .job_reap_expired(now, config.maintenance_batch)
                .await?;
            for transition in &reaped {
                tracing::warn!(
                    job_id = %transition.job_id,
                    attempt = transition.attempt,
                    state = %transition.to,
                    "lease expired; job returned to the queue"
                );
                self.inner
                    .metrics
                    .lease_expired
                    .get_or_create(&QueueLabels {
                        queue: transition.queue.to_string(),
                    })
                    .inc();
                self.record_transition(transition, now, Cause::LeaseExpired);
            }
            report.reaped += reaped.len();
            if reaped.len() < config.maintenance_batch as usize {
                break;
            }
        }
        if report.reaped > 0 {
            self.wake_claimers();
        }
        if let Some(retention) = config.retention {
            let cutoff =
                self.now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
            report.pruned = self
                .inner
                .store
                .job_prune_finished(cutoff, config.maintenance_batch)
                .await?;
            if report.pruned > 0 {
                tracing::info!(
                    pruned = report.pruned,
                    "finished jobs past retention deleted"
                );
            }
            report.workflow_runs_pruned = self
                .inner
                .store
                .workflow_run_prune(cutoff, config.maintenance_batch)
                .await?;
        }
        if let Some(retention) = config.audit_retention {
            let cutoff =
                self.now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
            report.audit_pruned = self
                .inner
                .store
                .audit_prune(cutoff, config.maintenance_batch)
                .await?;
        }
        if self.sweep_due() {
            report.blobs_swept = self.sweep_blobs().await?;
        }
        if self.robots_prune_due() {
            // An expired answer is never handed out again; keeping it an
            // hour more costs nothing and spares the lookups a churn.
            report.robots_pruned = self
                .inner
                .store
                .robots_prune(self.now() - chrono::Duration::hours(1))
                .await?;
        }
        Ok(report)
    }

    /// Whether [`ROBOTS_PRUNE_INTERVAL`] has passed since expired robots.txt
    /// answers were last forgotten here (and marks it as running now).
    fn robots_prune_due(&self) -> bool {
        let mut last = self
            .inner
            .last_robots_prune
            .lock()
            .expect("robots prune time lock");
        let due = last.is_none_or(|at| at.elapsed() >= ROBOTS_PRUNE_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Whether the sweep's interval has passed since it last ran here (and
    /// marks it as running now).
    fn sweep_due(&self) -> bool {
        if self.inner.blobs.is_none() {
            return false;
        }
        let interval = self.inner.config.artifacts.sweep_interval;
        let mut last = self.inner.last_sweep.lock().expect("sweep time lock");
        let due = last.is_none_or(|at| at.elapsed() >= interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Deletes every blob that no artifact row holds and that is older than
    /// the grace period (a younger one may belong to an upload whose row is
    /// about to be written). Blobs are shared between jobs, so a blob goes
    /// only when the last row holding it has gone. Returns how many went.
    ///
    /// One narrow race remains: an upload that writes the very bytes of an
    /// old, unreferenced blob between this sweep's look at the rows and its
    /// delete loses its blob (its row would then name missing bytes). It
    /// needs identical bytes to arrive within milliseconds of the sweep
    /// deciding; the grace period makes every other case safe.
    pub async fn sweep_blobs(&self) -> Result<u64, StoreError> {
        let Some(blobs) = self.inner.blobs.as_ref() else {
            return Ok(0);
        };
        let grace = chrono::Duration::from_std(self.inner.config.artifacts.sweep_grace)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = self.now() - grace;
        let mut listing = blobs.list().chunks(SWEEP_BATCH);
        let mut swept = 0;
        while let Some(batch) = listing.next().await {
            let mut old = Vec::with_capacity(batch.len());
            for meta in batch {
                match meta {
                    Ok(meta) if meta.last_modified < cutoff => old.push(meta.sha256),
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot list the blob store; the sweep stops until its next turn");
                        return Ok(swept);
                    }
                }
            }
            if old.is_empty() {
                continue;
            }
            let held = self.inner.store.artifact_referenced(&old).await?;
            for sha256 in old.iter().filter(|digest| !held.contains(digest)) {
                match blobs.delete(sha256).await {
                    Ok(()) => swept += 1,
                    Err(err) => {
                        tracing::warn!(error = %err, %sha256, "cannot delete a blob no artifact holds; the next sweep tries again");
                    }
                }
            }
        }
        if swept > 0 {
            tracing::info!(swept, "blobs no artifact holds deleted");
        }
        Ok(swept)
    }

    /// Runs [`Queue::maintain_once`] every `maintenance_interval` until
    /// cancelled, but only while this process leads: among control planes
    /// sharing a database one runs the background duties at a time, and
    /// another takes over when it dies. A store outage is logged and retried
    /// at the next tick.
    pub async fn run_maintenance(&self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.inner.config.maintenance_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leadership: Option<Box<dyn accord_store::Leadership>> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let still_leading = match leadership.as_mut() {
                Some(held) => held.still_held().await,
                None => false,
            };
            if leadership.is_some() && !still_leading {
                tracing::warn!("lost the maintenance leadership (database session ended)");
                leadership = None;
                self.inner.leading.store(false, Ordering::Relaxed);
                continue;
            }
            if leadership.is_none() {
                match self.inner.store.leadership_try_acquire().await {
                    Ok(Some(held)) => {
                        tracing::info!("leading background duties (reaper, pruner)");
                        leadership = Some(held);
                        self.inner.leading.store(true, Ordering::Relaxed);
                    }
                    Ok(None) => continue,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot contend for the maintenance leadership");
                        continue;
                    }
                }
            }
            if let Err(err) = self.maintain_once().await {
                tracing::warn!(error = %err, "maintenance pass failed; will try again");
            }
        }
    }
}

impl Queue {
    /// Wakes this process's waiting claims whenever another process sharing
    /// the database says jobs became claimable. Returns at once for a
    /// single-process store; reconnects with a pause after errors.
    pub async fn run_wakeup_listener(&self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let subscribed = tokio::select! {
                () = shutdown.cancelled() => return,
                subscribed = self.inner.store.job_wakeups() => subscribed,
            };
            let mut wakeups = match subscribed {
                Ok(Some(wakeups)) => wakeups,
                Ok(None) => return,
                Err(err) => {
                    let pause = backoff.next_delay(rand::random());
                    tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "cannot listen for wake-ups; polling meanwhile");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    continue;
                }
            };
            backoff.reset();
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = wakeups.next() => next,
                };
                match next {
                    Ok(()) => self.wake_claimers(),
                    Err(err) => {
                        tracing::warn!(error = %err, "wake-up listener lost its connection; reconnecting");
                        // A hint may have been lost: look at the store now.
                        self.wake_claimers();
                        break;
                    }
                }
            }
        }
    }
}
