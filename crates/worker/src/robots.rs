//! robots.txt before a job runs: every page and file URL the job names is
//! asked of the worker's [`RobotsGate`] first, and a job the site's rules
//! refuse fails without a request to the page.
//!
//! A refusal by the rules is permanent (`robots_disallowed`); a robots.txt
//! that cannot be fetched (5xx, 429, no answer) refuses everything until it
//! can, so that failure is retryable. A host whose domain policy says
//! `obey_robots: false` is not asked about. Deliberately checks the URLs
//! the job names, not where they redirect or what a browser page loads
//! after them. A host's `Crawl-delay` goes with the job's politeness
//! permit request, as the least gap between requests to it.
//!
//! The gate shares answers with every other worker through the control
//! plane ([`ControlPlaneRobots`], the worker protocol's robots calls): a
//! site's file is fetched by one worker and read by the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use accord_egress::robots::{Disallowed, RobotsDecision};
use accord_egress::{RobotsGate, RobotsShare, ShareError};
use accord_model::{
    ErrorKind, JobError, JobErrorCode, JobSpec, PolicySet, RobotsLookupRequest,
    RobotsLookupResponse, RobotsPublishRequest, RobotsRecord, Step, WorkerId, MAX_CRAWL_DELAY_MS,
};

use crate::control::ControlPlane;

/// robots.txt answers shared through the control plane.
#[derive(Debug)]
pub(crate) struct ControlPlaneRobots {
    pub client: Arc<dyn ControlPlane>,
    pub worker_id: WorkerId,
}

#[async_trait::async_trait]
impl RobotsShare for ControlPlaneRobots {
    async fn lookup(&self, origin: &str) -> Result<RobotsLookupResponse, ShareError> {
        let request = RobotsLookupRequest {
            worker_id: self.worker_id.clone(),
            origin: origin.to_owned(),
        };
        self.client
            .robots_lookup(&request)
            .await
            .map_err(|err| ShareError(err.to_string()))
    }

    async fn publish(&self, record: RobotsRecord) -> Result<(), ShareError> {
        let request = RobotsPublishRequest {
            worker_id: self.worker_id.clone(),
            record,
        };
        self.client
            .robots_publish(&request)
            .await
            .map_err(|err| ShareError(err.to_string()))
    }
}

/// What the sites' robots.txt files say about a job.
#[derive(Debug, Default)]
pub(crate) struct RobotsAnswer {
    /// The failure of the first step whose URL a robots.txt refuses.
    pub refusal: Option<JobError>,
    /// The `Crawl-delay` of each host that sets one, in ms.
    pub crawl_delay_ms: BTreeMap<String, u64>,
}

/// Asks robots.txt about every page and file URL of the job (but those
/// whose domain policy says not to).
pub(crate) async fn robots_answer(
    gate: &RobotsGate,
    spec: &JobSpec,
    policies: Option<&PolicySet>,
) -> RobotsAnswer {
    let mut answer = RobotsAnswer::default();
    for (index, step) in spec.steps.iter().enumerate() {
        let Some(url) = step.target_url() else {
            continue;
        };
        let url = url.as_url();
        let ignored = policies.is_some_and(|set| {
            !set.effective(url.host_str().unwrap_or_default())
                .obey_robots
        });
        if ignored {
            continue;
        }
        match gate.check(url).await {
            RobotsDecision::Allowed { min_gap: Some(gap) } => {
                if let Some(host) = url.host_str() {
                    let ms = u64::try_from(gap.num_milliseconds()).unwrap_or(0);
                    let entry = answer
                        .crawl_delay_ms
                        .entry(host.to_ascii_lowercase())
                        .or_insert(0);
                    *entry = (*entry).max(ms.min(MAX_CRAWL_DELAY_MS));
                }
            }
            RobotsDecision::Allowed { min_gap: None } => {}
            RobotsDecision::Disallowed(why) => {
                answer.refusal = Some(refusal(index, step, url, why));
                return answer;
            }
        }
    }
    answer
}

fn refusal(index: usize, step: &Step, url: &url::Url, why: Disallowed) -> JobError {
    let (kind, reason) = match why {
        Disallowed::ByRules => (
            ErrorKind::Permanent,
            "the site's robots.txt disallows it for Accord".to_owned(),
        ),
        Disallowed::Unreachable(reason) => (ErrorKind::Retryable, reason),
    };
    tracing::info!(step = index, url = %url, reason, "robots.txt refused a page");
    let message = format!("step {index} (`{}`): {url}: {reason}", step.action());
    JobError::new(kind, message)
        .at_step(index)
        .with_code(JobErrorCode::RobotsDisallowed)
}
