//! Background duties: the reaper (expired leases back to the queue) and
//! the pruner (retention of finished jobs). One loop owns both.

use std::sync::atomic::Ordering;
use std::time::Duration;

use accord_model::Backoff;
use accord_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::claim::Cause;
use crate::metrics::QueueLabels;
use crate::Queue;

/// What one maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub reaped: usize,
    pub pruned: u64,
    pub audit_pruned: u64,
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
        Ok(report)
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
