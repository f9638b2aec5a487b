//! The monitor scheduler: starts the run of every due slot, exactly once
//! across all control-plane replicas, on the injected clock.
//!
//! Every replica may run it: the store starts a slot only if the monitor's
//! due time is still the one read (and the slot has no run yet), in one
//! transaction with the run's job, so a second replica starts nothing. The
//! next due time is the first slot after now, so a monitor that missed
//! slots while the control plane was down runs once, not once per missed
//! slot. A monitor with an unfinished run is not due: it never runs
//! concurrently with itself, and runs once more when the slow run ends if
//! a slot passed meanwhile.
//!
//! Does not compute outcomes (completion does, in `monitors.rs`).

use accord_store::{Advance, StartOutcome};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::monitors::next_due;
use crate::{Queue, QueueError};

/// Runs started side by side in one look of the scheduler.
const SCHEDULER_STARTS_IN_FLIGHT: usize = 16;

/// How one due monitor's start went.
enum Started {
    Yes,
    Skipped,
    Invalid,
}

/// What one look of the scheduler did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerTick {
    /// Runs started.
    pub started: usize,
    /// Due monitors another replica (or a run in progress) got first.
    pub skipped: usize,
    /// Due monitors whose run could not be built (their input no longer
    /// passes the checks); they are moved to their next slot.
    pub invalid: usize,
}

impl Queue {
    /// Starts the runs of the monitors due now (at most the configured
    /// batch), on the injected clock.
    pub async fn scheduler_tick(&self) -> Result<SchedulerTick, QueueError> {
        let now = self.now();
        let batch = self.inner.config.monitors.scheduler_batch;
        let due = self.inner.store.monitors_due(now, batch).await?;
        // Each start is its own transaction, fenced on its own monitor, so
        // they may run side by side (on PostgreSQL, on several connections).
        let mut starts = futures::stream::iter(due)
            .map(|monitor| self.start_due(monitor, now))
            .buffer_unordered(SCHEDULER_STARTS_IN_FLIGHT);
        let mut tick = SchedulerTick::default();
        while let Some(started) = starts.next().await {
            match started? {
                Started::Yes => tick.started += 1,
                Started::Skipped => tick.skipped += 1,
                Started::Invalid => tick.invalid += 1,
            }
        }
        Ok(tick)
    }

    /// Starts the run of one due monitor's slot.
    async fn start_due(
        &self,
        monitor: accord_model::Monitor,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Started, QueueError> {
        let advance = Advance {
            due_at: monitor.next_due_at,
            updated_at: monitor.updated_at,
            next_due_at: next_due(&monitor, now),
        };
        let slot = monitor.next_due_at;
        match self
            .start_run(
                &monitor,
                accord_model::RunTrigger::Schedule,
                slot,
                Some(advance),
                now,
            )
            .await
        {
            Ok(StartOutcome::Started { .. }) => {
                let late = (now - slot).to_std().unwrap_or_default();
                self.inner
                    .metrics
                    .monitor_lateness
                    .observe(late.as_secs_f64());
                Ok(Started::Yes)
            }
            Ok(StartOutcome::Busy | StartOutcome::Moved) => Ok(Started::Skipped),
            Err(QueueError::Invalid(_) | QueueError::TargetNotAllowed(_)) => {
                // Checked when written; a policy that changed since (a
                // smaller step limit, private targets turned off) makes
                // the run impossible. Move on to the next slot so the
                // scheduler does not try it on every look.
                tracing::warn!(monitor_id = %monitor.id, "monitor's job is refused by the current policy; skipping its slot");
                let mut next = monitor.clone();
                next.next_due_at = advance.next_due_at;
                self.inner
                    .store
                    .monitor_update(&next, monitor.updated_at)
                    .await?;
                Ok(Started::Invalid)
            }
            Err(err) => Err(err),
        }
    }

    /// Runs [`Queue::scheduler_tick`] every `scheduler_interval` until
    /// `shutdown`. A failed look is logged and tried again at the next one.
    pub async fn run_scheduler(&self, shutdown: CancellationToken) {
        let interval = self.inner.config.monitors.scheduler_interval;
        loop {
            match self.scheduler_tick().await {
                Ok(tick) if tick.started > 0 => {
                    tracing::debug!(
                        started = tick.started,
                        skipped = tick.skipped,
                        "scheduler started runs"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "scheduler look failed; trying again"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
