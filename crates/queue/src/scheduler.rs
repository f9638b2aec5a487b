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

use accord_model::Monitor;
use accord_store::{Advance, StartOutcome, StartRun};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::monitors::next_due;
use crate::{Queue, QueueError};

/// Runs started in one transaction.
const SCHEDULER_CHUNK: usize = 100;

/// Chunks started side by side in one look of the scheduler.
const SCHEDULER_CHUNKS_IN_FLIGHT: usize = 4;

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
        let mut tick = SchedulerTick::default();
        // Each run's job is built here; a monitor whose job cannot be
        // built any more is moved to its next slot.
        let mut monitors = Vec::with_capacity(due.len());
        let mut starts = Vec::with_capacity(due.len());
        for monitor in due {
            match self.scheduled_start(&monitor, now).await {
                Ok(start) => {
                    monitors.push(monitor);
                    starts.push(start);
                }
                Err(QueueError::Invalid(_) | QueueError::TargetNotAllowed(_)) => {
                    self.skip_slot(&monitor, now).await?;
                    tick.invalid += 1;
                }
                Err(err) => return Err(err),
            }
        }
        // Started in chunks, each one transaction (one commit), a few
        // chunks side by side; every start is fenced on its own monitor.
        // Chunk numbers, not slices, go through the stream: a closure over
        // borrowed slices would not be `Send` for every lifetime.
        let starts = &starts;
        let mut started = futures::stream::iter(0..starts.len().div_ceil(SCHEDULER_CHUNK))
            .map(|chunk| async move {
                let from = chunk * SCHEDULER_CHUNK;
                let range = from..(from + SCHEDULER_CHUNK).min(starts.len());
                let outcomes = self
                    .inner
                    .store
                    .monitor_runs_start(&starts[range.clone()])
                    .await?;
                Ok::<_, QueueError>((range, outcomes))
            })
            .buffer_unordered(SCHEDULER_CHUNKS_IN_FLIGHT);
        while let Some(done) = started.next().await {
            let (range, outcomes) = done?;
            for (index, outcome) in range.zip(outcomes) {
                match outcome {
                    StartOutcome::Started { run, job } => {
                        self.started_run(&monitors[index], &run, &job);
                        let late = (now - starts[index].slot).to_std().unwrap_or_default();
                        self.inner
                            .metrics
                            .monitor_lateness
                            .observe(late.as_secs_f64());
                        tick.started += 1;
                    }
                    StartOutcome::Busy | StartOutcome::Moved => tick.skipped += 1,
                }
            }
        }
        Ok(tick)
    }

    /// The start of a due monitor's slot, moving it to its next slot.
    async fn scheduled_start(
        &self,
        monitor: &Monitor,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<StartRun, QueueError> {
        let advance = Advance {
            due_at: monitor.next_due_at,
            updated_at: monitor.updated_at,
            next_due_at: next_due(monitor, now),
        };
        self.run_start(
            monitor,
            accord_model::RunTrigger::Schedule,
            monitor.next_due_at,
            Some(advance),
            now,
        )
        .await
    }

    /// Moves a monitor whose job the current checks refuse to its next
    /// slot. Checked when written; a policy that changed since (a smaller
    /// step limit, private targets turned off) makes the run impossible, and
    /// the scheduler should not try it on every look.
    async fn skip_slot(
        &self,
        monitor: &Monitor,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), QueueError> {
        tracing::warn!(monitor_id = %monitor.id, "monitor's job is refused by the current policy; skipping its slot");
        let mut next = monitor.clone();
        next.next_due_at = next_due(monitor, now);
        self.inner
            .store
            .monitor_update(&next, monitor.updated_at)
            .await?;
        Ok(())
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
