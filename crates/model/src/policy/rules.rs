//! What a policy says ([`PolicyRules`]), a workspace's policies as one
//! value ([`PolicySet`]), which one applies to a host
//! ([`effective_policy`]) and the checks that refuse a job or a hop
//! ([`PolicyDenial`]).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use super::pattern::{normalize_host, Cidr, DomainPattern, PolicyId, StepKind};
use crate::{RunEngine, Step, WorkspaceId};

/// What a policy says about its hosts. Stored as JSON (this shape is the
/// stored format: add members with defaults only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    /// Whether jobs may visit the hosts at all.
    pub allowed: bool,
    /// Requests per minute to one host, for the shared rate limiter; `None`:
    /// the policy sets no rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Requests in flight to one host at once; `None`: no cap set here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Least time between two requests to one host, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gap_ms: Option<u32>,
    /// The engines allowed; `None`: every engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engines: Option<BTreeSet<RunEngine>>,
    /// The step kinds allowed; `None`: every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<BTreeSet<StepKind>>,
    /// Whether the hosts' robots.txt is obeyed.
    pub obey_robots: bool,
    /// Non-public networks the hosts may resolve to all the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub allow_cidrs: Vec<Cidr>,
    /// What a job does when its host's circuit breaker is open.
    #[serde(default, skip_serializing_if = "OnOpenBreaker::is_wait")]
    pub on_open_breaker: OnOpenBreaker,
}

/// What a job does when its host's circuit breaker is open (the host
/// failed repeatedly and is left alone until its next probe).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnOpenBreaker {
    /// Go back to the queue until the breaker lets requests through again,
    /// without using up an attempt.
    #[default]
    Wait,
    /// Fail at once, for good, with code `domain_unavailable`: for jobs whose
    /// answer is worthless later.
    Fail,
}

impl OnOpenBreaker {
    pub const ALL: [Self; 2] = [Self::Wait, Self::Fail];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Fail => "fail",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|choice| choice.as_str() == text)
    }

    pub fn is_wait(&self) -> bool {
        *self == Self::Wait
    }
}

impl std::fmt::Display for OnOpenBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for PolicyRules {
    /// Everything allowed, robots.txt obeyed, no numbers set.
    fn default() -> Self {
        Self {
            allowed: true,
            requests_per_minute: None,
            max_concurrent: None,
            min_gap_ms: None,
            engines: None,
            steps: None,
            obey_robots: true,
            allow_cidrs: Vec::new(),
            on_open_breaker: OnOpenBreaker::Wait,
        }
    }
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPolicy {
    pub id: PolicyId,
    pub workspace_id: WorkspaceId,
    pub pattern: DomainPattern,
    pub rules: PolicyRules,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One policy as the worker needs it: its pattern and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    #[schema(value_type = String, example = "*.example.com")]
    pub pattern: DomainPattern,
    pub rules: PolicyRules,
}

/// Every policy of a workspace: what a claimed job carries so the worker
/// can decide each hop (a redirect may land anywhere) as the control plane
/// would.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    pub policies: Vec<PolicyEntry>,
}

impl PolicySet {
    pub fn from_policies<'a>(policies: impl IntoIterator<Item = &'a DomainPolicy>) -> Self {
        Self {
            policies: policies
                .into_iter()
                .map(|policy| PolicyEntry {
                    pattern: policy.pattern.clone(),
                    rules: policy.rules.clone(),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policy for `host`: see [`effective_policy`].
    pub fn effective(&self, host: &str) -> EffectivePolicy {
        effective_policy(self, host)
    }

    /// Whether a job may run as submitted: every URL a step names is on an
    /// allowed host, each engine in `engines` is allowed there, and every
    /// step kind is allowed on the page it works on (a step works on the
    /// page of the last `navigate` before it, or of the first one when none
    /// comes before; a `download` by URL on its own URL's host). The first
    /// refusal, in step order, is returned.
    pub fn check_job(&self, steps: &[Step], engines: &[RunEngine]) -> Result<(), PolicyDenial> {
        if self.is_empty() {
            return Ok(());
        }
        let first_page = steps.iter().find_map(|step| match step {
            Step::Navigate { url, .. } => Some(url.as_url()),
            _ => None,
        });
        let mut page = first_page;
        for (index, step) in steps.iter().enumerate() {
            let own = step.target_url().map(|url| url.as_url());
            if let Step::Navigate { url, .. } = step {
                page = Some(url.as_url());
            }
            let Some(url) = own.or(page) else { continue };
            let host = &normalize_host(url.host_str().unwrap_or_default());
            let policy = self.effective(host);
            if own.is_some() {
                policy.check_host(host).map_err(|d| d.at(index))?;
                for engine in engines {
                    policy
                        .check_engine(host, *engine)
                        .map_err(|d| d.at(index))?;
                }
            }
            policy
                .check_step(host, StepKind::of(step))
                .map_err(|d| d.at(index))?;
        }
        Ok(())
    }

    /// Whether a hop (a redirect, a page's request) to `url` may go out.
    pub fn check_hop(&self, url: &Url, engine: RunEngine) -> Result<(), PolicyDenial> {
        let host = &normalize_host(url.host_str().unwrap_or_default());
        let policy = self.effective(host);
        policy.check_host(host)?;
        policy.check_engine(host, engine)
    }
}

/// What applies to one host: the most specific matching policy, or the
/// unrestricted default when none matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EffectivePolicy {
    /// The pattern of the policy that applies; absent when none matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rule: Option<DomainPattern>,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gap_ms: Option<u32>,
    /// `None`: every engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engines: Option<BTreeSet<RunEngine>>,
    /// `None`: every step kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<BTreeSet<StepKind>>,
    pub obey_robots: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub allow_cidrs: Vec<Cidr>,
    #[serde(default, skip_serializing_if = "OnOpenBreaker::is_wait")]
    pub on_open_breaker: OnOpenBreaker,
}

impl EffectivePolicy {
    /// What applies where no policy matches: everything allowed, robots.txt
    /// obeyed, no numbers set (the operator's defaults apply).
    pub fn unrestricted() -> Self {
        Self::from_rules(None, &PolicyRules::default())
    }

    fn from_rules(rule: Option<DomainPattern>, rules: &PolicyRules) -> Self {
        Self {
            rule,
            allowed: rules.allowed,
            requests_per_minute: rules.requests_per_minute,
            max_concurrent: rules.max_concurrent,
            min_gap_ms: rules.min_gap_ms,
            engines: rules.engines.clone(),
            steps: rules.steps.clone(),
            obey_robots: rules.obey_robots,
            allow_cidrs: rules.allow_cidrs.clone(),
            on_open_breaker: rules.on_open_breaker,
        }
    }

    fn denial(&self, host: &str, forbids: String) -> PolicyDenial {
        PolicyDenial {
            rule: self
                .rule
                .as_ref()
                .map_or_else(|| "(none)".to_owned(), ToString::to_string),
            host: host.to_owned(),
            forbids,
            step: None,
            job: None,
        }
    }

    pub fn check_host(&self, host: &str) -> Result<(), PolicyDenial> {
        if self.allowed {
            Ok(())
        } else {
            Err(self.denial(host, "denies the host".to_owned()))
        }
    }

    pub fn check_engine(&self, host: &str, engine: RunEngine) -> Result<(), PolicyDenial> {
        match &self.engines {
            Some(engines) if !engines.contains(&engine) => {
                let allowed: Vec<&str> = engines.iter().map(|e| e.as_str()).collect();
                Err(self.denial(
                    host,
                    format!(
                        "forbids the {engine} engine (allowed: {})",
                        if allowed.is_empty() {
                            "none".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    pub fn check_step(&self, host: &str, kind: StepKind) -> Result<(), PolicyDenial> {
        match &self.steps {
            Some(steps) if !steps.contains(&kind) => {
                Err(self.denial(host, format!("forbids the `{kind}` step")))
            }
            _ => Ok(()),
        }
    }
}

/// The policy for `host` in a workspace whose policies are `set`: the most
/// specific one that matches (exact host, then the longest `*.` wildcard,
/// then `*`), whole; [`EffectivePolicy::unrestricted`] when none does.
/// Pure: the shared rate limiter and the worker call it as the queue does.
pub fn effective_policy(set: &PolicySet, host: &str) -> EffectivePolicy {
    set.policies
        .iter()
        .filter(|entry| entry.pattern.matches(host))
        .max_by_key(|entry| entry.pattern.specificity())
        .map_or_else(EffectivePolicy::unrestricted, |entry| {
            EffectivePolicy::from_rules(Some(entry.pattern.clone()), &entry.rules)
        })
}

/// A refusal by a domain policy: which rule, which host, what it forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}domain policy `{rule}` {forbids} ({host})", where_of(*.job, *.step))]
pub struct PolicyDenial {
    /// The pattern of the policy that refused.
    pub rule: String,
    pub host: String,
    pub forbids: String,
    /// The step it refused, when a step did.
    pub step: Option<usize>,
    /// The job of a batch it refused.
    pub job: Option<usize>,
}

/// `jobs[2].steps[1]: `, as far as known.
fn where_of(job: Option<usize>, step: Option<usize>) -> String {
    match (job, step) {
        (Some(job), Some(step)) => format!("jobs[{job}].steps[{step}]: "),
        (Some(job), None) => format!("jobs[{job}]: "),
        (None, Some(step)) => format!("steps[{step}]: "),
        (None, None) => String::new(),
    }
}

impl PolicyDenial {
    pub fn at(mut self, step: usize) -> Self {
        self.step = Some(step);
        self
    }

    /// The denial of the `index`-th job of a batch.
    pub fn in_batch(mut self, index: usize) -> Self {
        self.job = Some(index);
        self
    }
}

/// Sorts policies the way they are matched: most specific first.
pub fn sort_by_specificity(policies: &mut [DomainPolicy]) {
    policies.sort_by(|a, b| {
        b.pattern
            .specificity()
            .cmp(&a.pattern.specificity())
            .then_with(|| a.pattern.to_string().cmp(&b.pattern.to_string()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pattern: &str, rules: PolicyRules) -> PolicyEntry {
        PolicyEntry {
            pattern: pattern.parse().unwrap(),
            rules,
        }
    }

    fn denied() -> PolicyRules {
        PolicyRules {
            allowed: false,
            ..PolicyRules::default()
        }
    }

    #[test]
    fn the_most_specific_policy_wins_whole() {
        let set = PolicySet {
            policies: vec![
                entry("*", denied()),
                entry(
                    "*.example.com",
                    PolicyRules {
                        requests_per_minute: Some(30),
                        ..PolicyRules::default()
                    },
                ),
                entry("*.a.example.com", denied()),
                entry(
                    "open.a.example.com",
                    PolicyRules {
                        obey_robots: false,
                        ..PolicyRules::default()
                    },
                ),
            ],
        };
        let check = |host: &str, rule: Option<&str>, allowed: bool| {
            let policy = effective_policy(&set, host);
            assert_eq!(
                policy.rule.map(|r| r.to_string()).as_deref(),
                rule,
                "{host}"
            );
            assert_eq!(policy.allowed, allowed, "{host}");
        };
        check("other.org", Some("*"), false);
        check("www.example.com", Some("*.example.com"), true);
        check("x.a.example.com", Some("*.a.example.com"), false);
        check("open.a.example.com", Some("open.a.example.com"), true);
        assert!(!effective_policy(&set, "open.a.example.com").obey_robots);
        assert_eq!(
            effective_policy(&set, "www.example.com").requests_per_minute,
            Some(30)
        );
        let none = effective_policy(&PolicySet::default(), "example.com");
        assert_eq!(none, EffectivePolicy::unrestricted());
        assert!(none.allowed && none.obey_robots);
    }

    fn steps(json: serde_json::Value) -> Vec<Step> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn jobs_are_checked_per_host_engine_and_step() {
        let set = PolicySet {
            policies: vec![
                entry("blocked.example", denied()),
                entry(
                    "http-only.example",
                    PolicyRules {
                        engines: Some(BTreeSet::from([RunEngine::Http])),
                        steps: Some(BTreeSet::from([StepKind::Navigate, StepKind::Extract])),
                        ..PolicyRules::default()
                    },
                ),
            ],
        };
        let check = |json: serde_json::Value, engines: &[RunEngine], expected: Result<(), &str>| {
            let got = set
                .check_job(&steps(json.clone()), engines)
                .map_err(|d| d.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{json}");
        };
        let http = &[RunEngine::Http][..];
        check(
            serde_json::json!([{"action": "navigate", "url": "https://ok.example/"}]),
            http,
            Ok(()),
        );
        check(
            serde_json::json!([{"action": "navigate", "url": "https://ok.example/"}, {"action": "navigate", "url": "https://Blocked.example./x"}]),
            http,
            Err("steps[1]: domain policy `blocked.example` denies the host (blocked.example)"),
        );
        check(
            serde_json::json!([{"action": "navigate", "url": "https://http-only.example/"}]),
            &[RunEngine::Http, RunEngine::Browser],
            Err("steps[0]: domain policy `http-only.example` forbids the browser engine (allowed: http) (http-only.example)"),
        );
        check(
            serde_json::json!([{"action": "navigate", "url": "https://http-only.example/"}, {"action": "save_html"}]),
            http,
            Err("steps[1]: domain policy `http-only.example` forbids the `save_html` step (http-only.example)"),
        );
        // A step works on the page it follows.
        check(
            serde_json::json!([{"action": "navigate", "url": "https://http-only.example/"}, {"action": "navigate", "url": "https://ok.example/"}, {"action": "save_html"}]),
            http,
            Ok(()),
        );
    }
}
