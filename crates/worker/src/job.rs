//! One job's life inside the worker: run it under its timeout, stop when
//! told, report the outcome (retrying the report while the server is
//! unreachable, giving up when the lease is gone).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use accord_client::{AccordClient, ClientError};
use accord_engine::Executor;
use accord_model::{
    ClaimedJob, CompleteItem, CompleteRequest, ErrorKind, FailItem, FailRequest, JobError, WorkerId,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Everything a job task needs.
#[derive(Debug)]
pub(crate) struct JobTask {
    pub client: AccordClient,
    pub executor: Arc<dyn Executor>,
    pub worker_id: WorkerId,
    pub job: ClaimedJob,
    pub stop: CancellationToken,
}

impl JobTask {
    pub(crate) async fn run(self) {
        let span =
            tracing::info_span!("job", job_id = %self.job.job_id, attempt = self.job.attempt);
        self.run_inner().instrument(span).await;
    }

    async fn run_inner(self) {
        let timeout = Duration::from_secs(u64::from(self.job.spec.timeout_seconds));
        tracing::info!(
            engine = self.job.spec.engine.as_str(),
            steps = self.job.spec.steps.len(),
            "job started"
        );
        let outcome = tokio::select! {
            () = self.stop.cancelled() => {
                tracing::info!("job stopped: cancelled, lease lost, or worker shutting down");
                return;
            }
            outcome = tokio::time::timeout(timeout, self.executor.run(&self.job.spec)) => outcome,
        };
        let (job_id, attempt) = (self.job.job_id, self.job.attempt);
        let worker_id = self.worker_id.clone();
        match outcome {
            Ok(Ok(result)) => {
                tracing::info!(
                    status = result.status,
                    total_ms = result.timings.total_ms,
                    "job succeeded"
                );
                let request = CompleteRequest {
                    worker_id,
                    items: vec![CompleteItem {
                        job_id,
                        attempt,
                        result,
                    }],
                };
                report(|| self.client.complete(&request)).await;
            }
            Ok(Err(err)) => {
                let error = JobError::from(err);
                tracing::info!(kind = ?error.kind, step = ?error.step, error = %error.message, "job attempt failed");
                self.report_failure(error).await;
            }
            Err(_elapsed) => {
                let error = JobError::new(
                    ErrorKind::Timeout,
                    format!(
                        "the job ran past its timeout of {} seconds",
                        timeout.as_secs()
                    ),
                );
                tracing::info!("job attempt timed out");
                self.report_failure(error).await;
            }
        }
    }

    async fn report_failure(&self, error: JobError) {
        let request = FailRequest {
            worker_id: self.worker_id.clone(),
            items: vec![FailItem {
                job_id: self.job.job_id,
                attempt: self.job.attempt,
                error,
            }],
        };
        report(|| self.client.fail(&request)).await;
    }
}

/// Sends a report, retrying while the server is unreachable or overloaded,
/// for about a minute; after that the lease has expired and the reaper
/// will run the job again, so giving up loses nothing.
async fn report<F, Fut, T>(send: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..15 {
        match send().await {
            Ok(_) => return,
            Err(err) if err.code() == Some("stale_lease") => {
                tracing::info!("report refused: this worker no longer holds the lease");
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
    tracing::warn!("gave up reporting; the lease will expire and the job will run again");
}
