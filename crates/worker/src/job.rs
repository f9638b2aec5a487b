//! One job's life inside the worker: run it under its timeout, stop when
//! told, upload what the run captured, and hand the outcome to the reporter
//! (the lease stays in the heartbeat until the reporter says it was
//! delivered).

use std::sync::Arc;
use std::time::Duration;

use accord_egress::RobotsGate;
use accord_engine::{Executor, RunFailure, RunOutput, SiteSignal};
use accord_model::{
    ClaimedJob, CompleteItem, DeferItem, Engine, ErrorKind, EscalateItem, FailItem, JobError,
    RunEngine, MAX_EGRESS_HOLD_MS,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::policy::{job_egress, landed_refusal, policy_refusal};
use crate::polite::{Admission, Politeness};
use crate::report::{Outcome, Reporter};
use crate::robots::robots_answer;
use crate::upload::Uploader;

/// Everything a job task needs.
#[derive(Debug)]
pub(crate) struct JobTask {
    pub reporter: Reporter,
    pub uploader: Uploader,
    pub executor: Arc<dyn Executor>,
    pub job: ClaimedJob,
    pub stop: CancellationToken,
    /// Asked before the job's pages are fetched; `None` when robots.txt is
    /// not obeyed (tests of other things, the operator's choice).
    pub robots: Option<RobotsGate>,
    /// Per-domain permits from the control plane; `None` when the worker
    /// runs without them.
    pub politeness: Option<Politeness>,
}

/// How a job task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Its outcome went to the reporter, which frees the slot once delivered.
    Reported,
    /// It was stopped before it finished; nothing will be reported.
    Stopped,
}

impl JobTask {
    pub(crate) async fn run(self) -> Ended {
        let span =
            tracing::info_span!("job", job_id = %self.job.job_id, attempt = self.job.attempt);
        self.run_inner().instrument(span).await
    }

    async fn run_inner(self) -> Ended {
        let timeout = Duration::from_secs(u64::from(self.job.spec.timeout_seconds));
        tracing::info!(
            engine = self.job.spec.engine.as_str(),
            steps = self.job.spec.steps.len(),
            "job started"
        );
        if let Some(error) = policy_refusal(&self.job) {
            self.report_failure(error);
            return Ended::Reported;
        }
        let mut crawl_delay_ms = Default::default();
        if let Some(gate) = &self.robots {
            let answer = tokio::select! {
                answer = robots_answer(gate, &self.job.spec, self.job.policies.as_ref()) => answer,
                () = self.stop.cancelled() => return Ended::Stopped,
            };
            if let Some(error) = answer.refusal {
                self.report_failure(error);
                return Ended::Reported;
            }
            crawl_delay_ms = answer.crawl_delay_ms;
        }
        let mut permit = None;
        if let Some(politeness) = &self.politeness {
            match politeness
                .admit(&self.job, crawl_delay_ms, &self.stop)
                .await
            {
                Admission::Run(granted) => permit = granted,
                Admission::Defer(item) => {
                    self.reporter.report(Outcome::Defer(item));
                    return Ended::Reported;
                }
                Admission::Fail(error) => {
                    self.report_failure(error);
                    return Ended::Reported;
                }
                Admission::Stopped => return Ended::Stopped,
            }
        }
        // The run is stopped through its own token and then awaited, so the
        // job's slot stays taken until the engine's work has really ended.
        let halt = CancellationToken::new();
        let egress = job_egress(self.job.policies.as_ref(), self.job.run_on);
        let run = self.executor.run_with(&self.job.spec, &egress, &halt);
        tokio::pin!(run);
        let mut outcome = tokio::select! {
            outcome = &mut run => Ok(outcome),
            () = self.stop.cancelled() => {
                halt_and_wait(&halt, run).await;
                if let (Some(politeness), Some(permit)) = (&self.politeness, permit) {
                    politeness.finish(permit, SiteSignal::Unknown, None, None);
                }
                tracing::info!("job stopped: cancelled, lease lost, or worker shutting down");
                return Ended::Stopped;
            }
            () = tokio::time::sleep(timeout) => {
                halt_and_wait(&halt, run).await;
                Err(())
            }
        };
        let (signal, status, latency_ms) = match &outcome {
            Ok(Ok(output)) => (
                SiteSignal::Answered,
                Some(output.result.status).filter(|status| *status >= 100),
                Some(output.result.timings.total_ms),
            ),
            Ok(Err(failure)) => (failure.error.site_signal(), failure.error.status(), None),
            Err(()) => (SiteSignal::Trouble, None, None),
        };
        if let (Some(politeness), Some(permit)) = (&self.politeness, permit) {
            politeness.finish(permit, signal, status, latency_ms);
        }
        if let Ok(Ok(output)) = &outcome {
            // Nothing from a host the policies deny is kept: not uploaded,
            // not reported as a result.
            if let Some(error) = landed_refusal(&self.job, &output.result.final_url) {
                self.report_failure(error);
                return Ended::Reported;
            }
        }
        let (job_id, attempt) = (self.job.job_id, self.job.attempt);
        // Success or failure, what the run captured goes up before the
        // outcome, so the attempt's manifest lists it (see `upload.rs`).
        let artifacts = match &mut outcome {
            Ok(Ok(output)) => std::mem::take(&mut output.artifacts),
            Ok(Err(failure)) => std::mem::take(&mut failure.artifacts),
            Err(()) => Vec::new(),
        };
        if !artifacts.is_empty() {
            self.uploader
                .upload_all(self.job.lease(), artifacts, &self.stop)
                .await;
            if self.stop.is_cancelled() {
                return Ended::Stopped;
            }
        }
        match outcome {
            Ok(Ok(RunOutput { mut result, .. })) => {
                // The result says which engine ran, and for `auto` why.
                result.engine = self.job.run_on;
                if self.job.spec.engine == Engine::Auto {
                    result.engine_reason = self.job.engine_reason.clone();
                }
                tracing::info!(
                    status = result.status,
                    total_ms = result.timings.total_ms,
                    "job succeeded"
                );
                let item = CompleteItem {
                    job_id,
                    attempt,
                    result,
                };
                self.reporter.report(Outcome::Complete(item));
            }
            Ok(Err(RunFailure { error, .. }))
                if self.job.spec.engine == Engine::Auto && self.job.run_on == RunEngine::Http =>
            {
                match error.browser_needed() {
                    Some(reason) => {
                        tracing::info!(reason, "the page needs a browser: handing the job over");
                        let item = EscalateItem {
                            job_id,
                            attempt,
                            reason: reason.to_owned(),
                        };
                        self.reporter.report(Outcome::Escalate(item));
                    }
                    None => self.report_failure(JobError::from(error)),
                }
            }
            Ok(Err(RunFailure { error, .. }))
                if self.politeness.is_some() && matches!(signal, SiteSignal::RetryAfter(_)) =>
            {
                // The site asked everyone to wait: the domain is paused, and
                // this job waits too, without using up an attempt.
                let SiteSignal::RetryAfter(wait) = signal else {
                    unreachable!("matched above")
                };
                let wait = wait.min(Duration::from_millis(MAX_EGRESS_HOLD_MS));
                tracing::info!(wait_ms = wait.as_millis() as u64, error = %error, "the site asked to wait (Retry-After): deferring the job");
                let item = DeferItem {
                    job_id,
                    attempt,
                    delay_ms: (wait.as_millis() as u64).max(1),
                    reason: format!("deferred without using an attempt: {error} (Retry-After)"),
                };
                self.reporter.report(Outcome::Defer(item));
            }
            Ok(Err(RunFailure { error, .. })) => {
                let error = JobError::from(error);
                tracing::info!(kind = ?error.kind, step = ?error.step, error = %error.message, "job attempt failed");
                self.report_failure(error);
            }
            Err(()) => {
                let error = JobError::new(
                    ErrorKind::Timeout,
                    format!(
                        "the job ran past its timeout of {} seconds",
                        timeout.as_secs()
                    ),
                );
                tracing::info!("job attempt timed out");
                self.report_failure(error);
            }
        }
        Ended::Reported
    }

    fn report_failure(&self, error: JobError) {
        let item = FailItem {
            job_id: self.job.job_id,
            attempt: self.job.attempt,
            error,
        };
        self.reporter.report(Outcome::Fail(item));
    }
}

/// How long a stopped run may take to end before the worker says so.
const HALT_WARNING: Duration = Duration::from_secs(5);

/// Tells the run to stop and waits until it has: the slot stays taken until
/// then. An engine keeps its promise to end promptly (see `Executor`); one
/// that does not is named in the log, and still waited for.
async fn halt_and_wait<F: std::future::Future>(
    halt: &CancellationToken,
    run: std::pin::Pin<&mut F>,
) {
    halt.cancel();
    let mut run = run;
    tokio::select! {
        _ = &mut run => {}
        () = tokio::time::sleep(HALT_WARNING) => {
            tracing::warn!(waited_s = HALT_WARNING.as_secs(), "the engine has not stopped a halted run yet; its slot stays taken until it does");
            run.await;
        }
    }
}
