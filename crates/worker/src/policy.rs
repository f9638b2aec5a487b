//! Domain policies at run time: a claimed job carries its workspace's
//! policies, and the worker holds the job to them again, as the control
//! plane did at submission (a policy may have changed since, and a
//! redirect may land anywhere).
//!
//! - before the run, every URL the job names, its engine there and its
//!   steps ([`policy_refusal`], the same pure check as at submission);
//! - during the run, every hop the HTTP engine fetches beyond those
//!   (redirects, links followed), through the job's [`JobEgress`];
//! - the networks a host's policy grants (`allow_cidrs`), admitted by that
//!   job's guard for that host only;
//! - after the run, the page it ended on ([`landed_refusal`]): a browser
//!   follows redirects on its own, so its final host is checked after the
//!   fact and nothing the run captured is kept.
//!
//! A refusal fails the job permanently with code `policy_denied`.
//! Deliberately not here: a browser's sub-resources (the egress proxy is
//! shared by every page of a browser, so it cannot tell jobs apart).

use std::sync::Arc;

use accord_egress::{HopDenied, HopPolicy, HostAllow};
use accord_engine::JobEgress;
use accord_model::{ClaimedJob, ErrorKind, JobError, JobErrorCode, PolicySet, RunEngine};
use url::Url;

/// Why the job may not run under its policies, if it may not.
pub(crate) fn policy_refusal(job: &ClaimedJob) -> Option<JobError> {
    let set = job.policies.as_ref()?;
    let denial = set.check_job(&job.spec.steps, &[job.run_on]).err()?;
    tracing::info!(reason = %denial, "a domain policy refused the job");
    let error = JobError::new(ErrorKind::Permanent, denial.to_string())
        .with_code(JobErrorCode::PolicyDenied);
    Some(match denial.step {
        Some(step) => error.at_step(step),
        None => error,
    })
}

/// Why a run's result may not be kept: the page it ended on (after the
/// redirects a browser followed on its own) is on a host its policies
/// deny. The HTTP engine refuses such a hop before it is made; for the
/// browser this is the check after the fact.
pub(crate) fn landed_refusal(job: &ClaimedJob, final_url: &str) -> Option<JobError> {
    let set = job.policies.as_ref()?;
    let url = Url::parse(final_url).ok()?;
    let denial = set.check_hop(&url, job.run_on).err()?;
    tracing::info!(reason = %denial, final_url, "the run ended on a host a domain policy denies");
    Some(
        JobError::new(
            ErrorKind::Permanent,
            format!("the page ended on {url}: {denial}"),
        )
        .with_code(JobErrorCode::PolicyDenied),
    )
}

/// What a job's policies (`policies`, for a run on `engine`) add to the
/// engine's egress rules: nothing when none of them can refuse a hop or
/// grants a network. Public so `accord bench engine` runs jobs under
/// policies exactly as the worker does.
pub fn job_egress(policies: Option<&PolicySet>, engine: RunEngine) -> JobEgress {
    let Some(set) = policies else {
        return JobEgress::default();
    };
    let set = Arc::new(set.clone());
    let grants_networks = set
        .policies
        .iter()
        .any(|entry| !entry.rules.allow_cidrs.is_empty());
    // Only a policy that denies a host or an engine can refuse a hop;
    // without one the engine keeps its shared client (and proxy).
    let may_refuse = set
        .policies
        .iter()
        .any(|entry| !entry.rules.allowed || entry.rules.engines.is_some());
    JobEgress {
        hosts: grants_networks.then(|| set.clone() as Arc<dyn HostAllow>),
        hops: may_refuse.then(|| Arc::new(PolicyHops { set, engine }) as Arc<dyn HopPolicy>),
    }
}

/// Every hop's host checked against the policy that applies to it.
#[derive(Debug)]
struct PolicyHops {
    set: Arc<PolicySet>,
    engine: RunEngine,
}

impl HopPolicy for PolicyHops {
    fn check(&self, next: &Url) -> Result<(), HopDenied> {
        self.set
            .check_hop(next, self.engine)
            .map_err(|denial| HopDenied(format!("{next}: {denial}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(json: serde_json::Value) -> PolicySet {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn hops_name_the_rule_that_refused_them() {
        let hops = PolicyHops {
            set: Arc::new(set(serde_json::json!({"policies": [
                {"pattern": "*.denied.example", "rules": {"allowed": false, "obey_robots": true}},
            ]}))),
            engine: RunEngine::Http,
        };
        let url = |text: &str| Url::parse(text).unwrap();
        assert!(hops.check(&url("https://ok.example/")).is_ok());
        assert_eq!(
            hops.check(&url("https://a.denied.example/x")).unwrap_err().to_string(),
            "https://a.denied.example/x: domain policy `*.denied.example` denies the host (a.denied.example)"
        );
    }
}
