//! The verdict a smoke check's run records when its job dies: a site that
//! does not answer at all (connection refused, DNS failure, timeouts on
//! every attempt) fails the check like a page that answers wrong, and its
//! `failed` message goes out once per transition, like any other.
//!
//! Judged before the failure is reported (the store decides whether the
//! job dies and records the verdict only then, in the same transaction).

use accord_model::{FailItem, WorkflowKind};
use accord_store::DeadRunVerdict;
use accord_workflows::{capture_from_failure, Capture, Previous};
use chrono::{DateTime, Utc};

use crate::monitors::{baseline_snapshot, to_value};
use crate::notifications::{events_of, outcome_notice};
use crate::{Queue, QueueError};

impl Queue {
    /// Verdicts for the smoke-check runs among `items`, should their jobs
    /// die of these errors.
    pub(crate) async fn dead_run_verdicts(
        &self,
        items: &[FailItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<DeadRunVerdict>, QueueError> {
        let mut verdicts = Vec::new();
        for item in items {
            let Some(context) = self.inner.store.monitor_run_context(item.job_id).await? else {
                continue;
            };
            let monitor = &context.monitor;
            if monitor.workflow != WorkflowKind::SmokeCheck {
                continue;
            }
            let input = match accord_workflows::WorkflowInput::parse(
                monitor.workflow,
                &monitor.input,
            ) {
                Ok(input) => input,
                Err(err) => {
                    tracing::warn!(monitor_id = %monitor.id, error = %err, "the monitor's input is invalid; its failed run records no verdict");
                    continue;
                }
            };
            let previous = baseline_snapshot(&context);
            let capture = Capture::SmokeCheck(capture_from_failure(&item.error.message, now));
            let previous = previous.as_ref().map(|snapshot| Previous {
                snapshot,
                screenshot_png: None,
            });
            // Cheap and bounded (no page to read): judged in place.
            let run = match accord_workflows::run(&input, &capture, previous) {
                Ok(run) => run,
                Err(err) => {
                    tracing::warn!(monitor_id = %monitor.id, error = %err, "no verdict for the failed run");
                    continue;
                }
            };
            let events = events_of(&run.outcome.summary);
            let outcome = to_value(&run.outcome);
            let snapshot = to_value(&run.snapshot);
            let notice = outcome_notice(&context, &outcome, &events, now);
            verdicts.push(DeadRunVerdict {
                job_id: item.job_id,
                monitor_id: monitor.id,
                run_id: context.run.id,
                baseline_run_id: context.baseline.as_ref().map(|b| b.run_id),
                outcome,
                snapshot,
                events,
                notice,
            });
        }
        Ok(verdicts)
    }
}
