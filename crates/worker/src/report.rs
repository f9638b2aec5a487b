//! Reporting outcomes in batches: job tasks hand their outcome to one
//! reporter task, which sends everything that has piled up in one
//! `complete`, one `fail`, one `escalate` and one `defer` call. While one batch is in flight the next
//! one gathers, so batches grow with load and cost nothing when idle.
//! After each batch it tells the run loop, in one message, which jobs are
//! done: their slots free up together, so the next claim asks for as many
//! jobs as the batch freed instead of one at a time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use accord_client::ClientError;
use accord_model::{
    Backoff, CompleteItem, CompleteRequest, DeferItem, DeferRequest, EscalateItem, EscalateRequest,
    FailItem, FailRequest, JobId, ReportResponse, WorkerId,
};
use tokio::sync::mpsc;

use crate::control::ControlPlane;
use crate::event::Event;

/// The most outcomes sent in one call.
pub(crate) const MAX_BATCH: usize = 500;
/// Tries of one report call before giving up: with [`RETRY`], about a
/// minute, after which the leases have expired anyway.
const TRIES: usize = 15;
/// The pauses between tries while the server is unreachable or overloaded.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// A finished attempt to report.
#[derive(Debug)]
pub(crate) enum Outcome {
    Complete(CompleteItem),
    Fail(FailItem),
    /// An `auto` job's HTTP attempt found that the page needs a browser.
    Escalate(EscalateItem),
    /// The job's domain must wait: back to the queue until then.
    Defer(DeferItem),
}

impl Outcome {
    fn job_id(&self) -> JobId {
        match self {
            Self::Complete(item) => item.job_id,
            Self::Fail(item) => item.job_id,
            Self::Escalate(item) => item.job_id,
            Self::Defer(item) => item.job_id,
        }
    }
}

/// A handle to the reporter task; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    queue: mpsc::UnboundedSender<Outcome>,
}

impl Reporter {
    /// Starts the reporter task; it ends when every handle is dropped. It
    /// sends [`Event::Reported`] to the run loop after each batch.
    pub(crate) fn spawn(
        client: Arc<dyn ControlPlane>,
        worker_id: WorkerId,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        let (queue, inbox) = mpsc::unbounded_channel();
        tokio::spawn(run(client, worker_id, inbox, events));
        Self { queue }
    }

    /// Hands an outcome over. The run loop learns through
    /// [`Event::Reported`] when it was delivered, refused, or given up on
    /// (the lease then expires and the job runs again); until then the job
    /// keeps its lease in the heartbeat.
    pub(crate) fn report(&self, outcome: Outcome) {
        // The task ends only when every handle is gone, so this cannot fail
        // while `self` exists.
        let _ = self.queue.send(outcome);
    }
}

async fn run(
    client: Arc<dyn ControlPlane>,
    worker_id: WorkerId,
    mut inbox: mpsc::UnboundedReceiver<Outcome>,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut completes = Vec::new();
        let mut fails = Vec::new();
        let mut escalations = Vec::new();
        let mut deferrals = Vec::new();
        let done: Vec<JobId> = batch.iter().map(Outcome::job_id).collect();
        for outcome in batch {
            match outcome {
                Outcome::Complete(item) => completes.push(item),
                Outcome::Fail(item) => fails.push(item),
                Outcome::Escalate(item) => escalations.push(item),
                Outcome::Defer(item) => deferrals.push(item),
            }
        }
        if !completes.is_empty() {
            let request = CompleteRequest {
                worker_id: worker_id.clone(),
                items: completes,
            };
            send(|| client.complete(&request)).await;
        }
        if !fails.is_empty() {
            let request = FailRequest {
                worker_id: worker_id.clone(),
                items: fails,
            };
            send(|| client.fail(&request)).await;
        }
        if !escalations.is_empty() {
            let request = EscalateRequest {
                worker_id: worker_id.clone(),
                items: escalations,
            };
            send(|| client.escalate(&request)).await;
        }
        if !deferrals.is_empty() {
            let request = DeferRequest {
                worker_id: worker_id.clone(),
                items: deferrals,
            };
            send(|| client.defer(&request)).await;
        }
        // The run loop may be gone (shutdown); nothing is left to free then.
        let _ = events.send(Event::Reported(done));
    }
}

/// Sends a report, retrying while the server is unreachable or overloaded,
/// for about a minute; after that the leases have expired and the reaper
/// will run the jobs again, so giving up loses nothing. Items the server
/// refused (their lease is no longer this worker's) are logged and dropped.
async fn send<F, Fut>(call: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<ReportResponse, ClientError>>,
{
    let mut backoff = RETRY;
    for _ in 0..TRIES {
        match call().await {
            Ok(answer) => {
                for item in answer.rejected {
                    tracing::info!(job_id = %item.job_id, reason = %item.reason, "report refused: this worker no longer holds the lease");
                }
                return;
            }
            Err(err) if err.is_retryable() => {
                let delay = backoff.next_delay(rand::random());
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "report failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "report refused by the server");
                return;
            }
        }
    }
    tracing::warn!("gave up reporting; the leases will expire and the jobs will run again");
}
