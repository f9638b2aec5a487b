//! Reporting outcomes in batches: job tasks hand their outcome to one
//! reporter task, which sends everything that has piled up in one
//! `complete` and one `fail` call. While one batch is in flight the next
//! one gathers, so batches grow with load and cost nothing when idle.

use std::future::Future;
use std::time::Duration;

use accord_client::{AccordClient, ClientError};
use accord_model::{CompleteItem, CompleteRequest, FailItem, FailRequest, WorkerId};
use tokio::sync::{mpsc, oneshot};

/// The most outcomes sent in one call.
const MAX_BATCH: usize = 500;

/// A finished attempt to report.
#[derive(Debug)]
pub(crate) enum Outcome {
    Complete(CompleteItem),
    Fail(FailItem),
}

type Pending = (Outcome, oneshot::Sender<()>);

/// A handle to the reporter task; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Reporter {
    /// Starts the reporter task; it ends when every handle is dropped.
    pub(crate) fn spawn(client: AccordClient, worker_id: WorkerId) -> Self {
        let (queue, inbox) = mpsc::unbounded_channel();
        tokio::spawn(run(client, worker_id, inbox));
        Self { queue }
    }

    /// Hands an outcome over and waits until it was delivered, refused, or
    /// given up on (the lease then expires and the job runs again).
    pub(crate) async fn report(&self, outcome: Outcome) {
        let (done, delivered) = oneshot::channel();
        if self.queue.send((outcome, done)).is_ok() {
            let _ = delivered.await;
        }
    }
}

async fn run(
    client: AccordClient,
    worker_id: WorkerId,
    mut inbox: mpsc::UnboundedReceiver<Pending>,
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
        let mut waiters = Vec::with_capacity(batch.len());
        for (outcome, done) in batch {
            match outcome {
                Outcome::Complete(item) => completes.push(item),
                Outcome::Fail(item) => fails.push(item),
            }
            waiters.push(done);
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
        for done in waiters {
            let _ = done.send(());
        }
    }
}

/// Sends a report, retrying while the server is unreachable or overloaded,
/// for about a minute; after that the leases have expired and the reaper
/// will run the jobs again, so giving up loses nothing.
async fn send<F, Fut, T>(call: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..15 {
        match call().await {
            Ok(_) => return,
            Err(err) if err.code() == Some("stale_lease") => {
                let stale = err.stale_jobs().unwrap_or_default();
                for job_id in stale {
                    tracing::info!(%job_id, "report refused: this worker no longer holds the lease");
                }
                return;
            }
            Err(err) if err.is_retryable() => {
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "report failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => {
                tracing::error!(error = %err, "report refused by the server");
                return;
            }
        }
    }
    tracing::warn!("gave up reporting; the leases will expire and the jobs will run again");
}
