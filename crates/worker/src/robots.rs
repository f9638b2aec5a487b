//! robots.txt before a job runs: every page and file URL the job names is
//! asked of the worker's [`RobotsGate`] first, and a job the site's rules
//! refuse fails without a request to the page.
//!
//! A refusal by the rules is permanent (`robots_disallowed`); a robots.txt
//! that cannot be fetched (5xx, 429, no answer) refuses everything until it
//! can, so that failure is retryable. A host whose domain policy says
//! `obey_robots: false` is not asked about. Deliberately checks the URLs
//! the job names, not where they redirect or what a browser page loads
//! after them.

use accord_egress::robots::{Disallowed, RobotsDecision};
use accord_egress::RobotsGate;
use accord_model::{ErrorKind, JobError, JobErrorCode, JobSpec, PolicySet, Step};

/// The failure of the first step whose URL the site's robots.txt refuses,
/// if one does.
pub(crate) async fn robots_refusal(
    gate: &RobotsGate,
    spec: &JobSpec,
    policies: Option<&PolicySet>,
) -> Option<JobError> {
    for (index, step) in spec.steps.iter().enumerate() {
        let url = match step {
            Step::Navigate { url, .. } => url,
            Step::Download { url: Some(url), .. } => url,
            _ => continue,
        };
        let url = url.as_url();
        let ignored = policies.is_some_and(|set| {
            !set.effective(url.host_str().unwrap_or_default())
                .obey_robots
        });
        if ignored {
            continue;
        }
        if let RobotsDecision::Disallowed(why) = gate.check(url).await {
            let (kind, reason) = match why {
                Disallowed::ByRules => (
                    ErrorKind::Permanent,
                    "the site's robots.txt disallows it for Accord".to_owned(),
                ),
                Disallowed::Unreachable(reason) => (ErrorKind::Retryable, reason),
            };
            tracing::info!(step = index, url = %url, reason, "robots.txt refused a page");
            let message = format!("step {index} (`{}`): {url}: {reason}", step.action());
            return Some(
                JobError::new(kind, message)
                    .at_step(index)
                    .with_code(JobErrorCode::RobotsDisallowed),
            );
        }
    }
    None
}
