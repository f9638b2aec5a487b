//! Per-domain politeness around a job: before its requests go out the
//! worker asks the control plane for a permit covering every host the job
//! names (rate, concurrency cap, least gap, `Retry-After` pauses and the
//! circuit breaker are kept there, shared by every worker); after the run
//! it says how the site behaved. A short wait is waited out in place; a
//! long one puts the job back in the queue until then without using up an
//! attempt, so the slot serves other domains meanwhile. A host whose
//! circuit breaker is open fails the job at once instead when its domain
//! policy says `"on_open_breaker": "fail"`.
//!
//! Fails open: when the control plane cannot answer a permit request the
//! job runs (and its report will meet the same trouble); politeness never
//! loses a job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_engine::SiteSignal;
use accord_model::{
    ClaimedJob, DeferItem, EgressAcquireRequest, EgressFinishItem, EgressFinishRequest,
    EgressOutcome, EgressWait, EgressWaitReason, ErrorKind, HostLimits, JobError, JobErrorCode,
    OnOpenBreaker, Step, WorkerId, MAX_EGRESS_HOLD_MS, MAX_EGRESS_HOSTS,
};
use chrono::{SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

use crate::control::ControlPlane;

/// The longest a job waits for its permit in place, in all; beyond this
/// it is deferred and its slot serves other jobs.
const WAIT_IN_PLACE: Duration = Duration::from_secs(2);
/// How often a job waiting for a free slot asks again (a slot frees when
/// another job finishes, which the control plane cannot announce).
const SLOT_POLL: Duration = Duration::from_millis(50);
/// The least a deferral lasts, so a busy domain is not claimed in a loop.
const MIN_DEFER: Duration = Duration::from_millis(500);

/// The worker's link to the control plane's politeness state.
#[derive(Debug, Clone)]
pub(crate) struct Politeness {
    pub client: Arc<dyn ControlPlane>,
    pub worker_id: WorkerId,
}

/// A granted permit: end it with [`Politeness::finish`].
#[derive(Debug)]
pub(crate) struct Permit {
    id: String,
    hosts: Vec<String>,
}

/// What a job may do.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Run; `None` when the job names no host or the control plane could
    /// not be asked.
    Run(Option<Permit>),
    /// Put it back for later.
    Defer(DeferItem),
    /// Fail it for good: its host's breaker is open and its domain policy
    /// says not to wait.
    Fail(JobError),
    /// The job was stopped while waiting.
    Stopped,
}

impl Politeness {
    /// Asks for the job's permit, honouring each host's robots.txt
    /// `Crawl-delay` (`crawl_delay_ms`, by host).
    pub(crate) async fn admit(
        &self,
        job: &ClaimedJob,
        crawl_delay_ms: BTreeMap<String, u64>,
        stop: &CancellationToken,
    ) -> Admission {
        let hosts = job_hosts(&job.spec.steps);
        if hosts.is_empty() {
            return Admission::Run(None);
        }
        let hold = Duration::from_secs(u64::from(job.spec.timeout_seconds) + 60);
        let request = EgressAcquireRequest {
            worker_id: self.worker_id.clone(),
            job_id: job.job_id,
            hold_ms: (hold.as_millis() as u64).clamp(1_000, MAX_EGRESS_HOLD_MS),
            crawl_delay_ms,
            policy_limits: policy_limits(job, &hosts),
            hosts,
        };
        let started = Instant::now();
        loop {
            let answer = match self.client.egress_acquire(&request).await {
                Ok(answer) => answer,
                Err(err) => {
                    tracing::warn!(error = %err, "could not ask the control plane for a politeness permit; running the job without one");
                    return Admission::Run(None);
                }
            };
            if let Some(id) = answer.permit_id {
                return Admission::Run(Some(Permit {
                    id,
                    hosts: request.hosts,
                }));
            }
            let Some(wait) = answer.wait else {
                return Admission::Run(None);
            };
            if wait.reason == EgressWaitReason::BreakerOpen {
                if let Some(error) = fail_fast(job, &wait) {
                    tracing::info!(host = %wait.host, "circuit breaker open and the policy says fail: failing the job");
                    return Admission::Fail(error);
                }
            }
            let retry_in = Duration::from_millis(wait.retry_in_ms);
            let pause = match wait.reason {
                EgressWaitReason::Concurrency => retry_in.min(SLOT_POLL),
                _ => retry_in,
            };
            if started.elapsed() + pause > WAIT_IN_PLACE {
                let reason = match wait.reason {
                    EgressWaitReason::Paused => "the site asked to wait (Retry-After)",
                    EgressWaitReason::BreakerOpen => {
                        "its circuit breaker is open after repeated failures"
                    }
                    EgressWaitReason::Concurrency => "as many requests as allowed are in flight",
                    EgressWaitReason::Gap => "the least gap between requests has not passed",
                    EgressWaitReason::Rate => "its rate limit is used up",
                };
                let delay = retry_in.max(MIN_DEFER);
                tracing::info!(host = %wait.host, delay_ms = delay.as_millis() as u64, reason, "domain busy: deferring the job");
                return Admission::Defer(DeferItem {
                    job_id: job.job_id,
                    attempt: job.attempt,
                    delay_ms: (delay.as_millis() as u64).clamp(1, MAX_EGRESS_HOLD_MS),
                    reason: format!("deferred without using an attempt: {}: {reason}", wait.host),
                });
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => return Admission::Stopped,
            }
        }
    }

    /// Ends `permit` with what the run showed about the site. Sent in the
    /// background: nobody waits for it, and a lost one expires by itself.
    /// `status` and `latency_ms` (when the site answered) feed the
    /// domain's counters.
    pub(crate) fn finish(
        &self,
        permit: Permit,
        signal: SiteSignal,
        status: Option<u16>,
        latency_ms: Option<u64>,
    ) {
        let (outcome, retry_after_ms) = match signal {
            SiteSignal::Answered => (EgressOutcome::Success, None),
            SiteSignal::Trouble => (EgressOutcome::Failure, None),
            SiteSignal::RetryAfter(wait) => (EgressOutcome::Neutral, Some(wait.as_millis() as u64)),
            SiteSignal::Unknown => (EgressOutcome::Neutral, None),
        };
        let request = EgressFinishRequest {
            worker_id: self.worker_id.clone(),
            items: permit
                .hosts
                .into_iter()
                .map(|host| EgressFinishItem {
                    permit_id: permit.id.clone(),
                    host,
                    outcome,
                    retry_after_ms,
                    status,
                    latency_ms,
                })
                .collect(),
        };
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(err) = client.egress_finish(&request).await {
                tracing::warn!(error = %err, "could not end a politeness permit; it expires by itself");
            }
        });
    }
}

/// The failure of a job whose host's breaker is open, when the host's
/// domain policy says `fail` rather than wait: permanent, code
/// `domain_unavailable`, naming the host and when its breaker probes again.
fn fail_fast(job: &ClaimedJob, wait: &EgressWait) -> Option<JobError> {
    let policy = job.policies.as_ref()?.effective(&wait.host);
    if policy.on_open_breaker != OnOpenBreaker::Fail {
        return None;
    }
    let probe = wait
        .until
        .unwrap_or_else(|| Utc::now() + chrono::TimeDelta::milliseconds(wait.retry_in_ms as i64));
    let rule = policy
        .rule
        .map_or_else(|| "(none)".to_owned(), |rule| rule.to_string());
    let message = format!(
        "domain {} is unavailable: its circuit breaker is open after repeated failures and \
         probes again at {} (in {} s); domain policy `{rule}` says fail rather than wait",
        wait.host,
        probe.to_rfc3339_opts(SecondsFormat::Secs, true),
        wait.retry_in_ms.div_ceil(1_000),
    );
    Some(JobError::new(ErrorKind::Permanent, message).with_code(JobErrorCode::DomainUnavailable))
}

/// The politeness numbers the job's domain policies set for its hosts.
fn policy_limits(job: &ClaimedJob, hosts: &[String]) -> BTreeMap<String, HostLimits> {
    let Some(set) = &job.policies else {
        return BTreeMap::new();
    };
    hosts
        .iter()
        .filter_map(|host| {
            let policy = set.effective(host);
            let limits = HostLimits {
                requests_per_minute: policy.requests_per_minute,
                max_concurrent: policy.max_concurrent,
                min_gap_ms: policy.min_gap_ms,
            };
            (!limits.is_empty()).then(|| (host.clone(), limits))
        })
        .collect()
}

/// The hosts of the URLs a job names (pages and files), lowercase, each
/// once, at most [`MAX_EGRESS_HOSTS`].
pub(crate) fn job_hosts(steps: &[Step]) -> Vec<String> {
    let mut hosts: Vec<String> = steps
        .iter()
        .filter_map(Step::target_url)
        .filter_map(|url| url.as_url().host_str().map(str::to_ascii_lowercase))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts.truncate(MAX_EGRESS_HOSTS);
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_hosts_are_its_pages_and_files_once_each() {
        let steps: Vec<Step> = serde_json::from_str(
            r#"[{"action": "navigate", "url": "https://B.example/x"},
                {"action": "extract", "fields": {"t": {"selector": "title"}}},
                {"action": "navigate", "url": "https://a.example:8443/y"},
                {"action": "download", "url": "https://b.example/file.pdf"}]"#,
        )
        .expect("valid steps");
        assert_eq!(job_hosts(&steps), ["a.example", "b.example"]);
    }
}
