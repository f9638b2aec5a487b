//! The API's side of policies: [`NewPolicy`] and [`PolicyPatch`] parsed
//! into a pattern and rules (every error names its field), and
//! [`PolicyView`], a policy as shown.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::pattern::{Cidr, DomainPattern, PolicyId, StepKind};
use super::rules::{DomainPolicy, OnOpenBreaker, PolicyRules};
use super::{MAX_CONCURRENT, MAX_MIN_GAP_MS, MAX_POLICY_CIDRS, MAX_REQUESTS_PER_MINUTE};
use crate::{RunEngine, ValidationError};

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

/// Reads `null` as `Some(None)` (clear the value) and a missing member as
/// `None` (leave it).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /api/v1/policies`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPolicy {
    /// `example.com` (that host), `*.example.com` (its subdomains) or `*`
    /// (the workspace default). Unique in the workspace.
    #[schema(min_length = 1, max_length = 255, example = "*.example.com")]
    pub pattern: String,
    /// Whether jobs may visit the hosts (default true). A `*` policy with
    /// `false` makes the workspace deny by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    /// Requests per minute to one host (1 to 60000); absent: not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 60000)]
    pub requests_per_minute: Option<u32>,
    /// Requests in flight to one host at once (1 to 1000); absent: not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrent: Option<u32>,
    /// Least time between two requests to one host, in ms (0 to 3600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 3600000)]
    pub min_gap_ms: Option<u32>,
    /// The engines allowed: `http`, `browser`; absent: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 2)]
    pub engines: Option<Vec<String>>,
    /// The step kinds allowed (a step's `action`: `navigate`, `extract`,
    /// `evaluate`, `download`, ...); absent: every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 18)]
    pub steps: Option<Vec<String>>,
    /// Whether robots.txt is obeyed (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obey_robots: Option<bool>,
    /// Non-public networks (CIDRs or addresses) the hosts may resolve to:
    /// the one way to reach an internal site. At most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32, example = json!(["10.1.0.0/16"]))]
    pub allow_cidrs: Vec<String>,
    /// While a host's circuit breaker is open (it failed repeatedly):
    /// `wait` (the default) puts its jobs back in the queue until the
    /// breaker probes again, without using up an attempt; `fail` fails
    /// them at once, for good, with code `domain_unavailable`, naming the
    /// host and when it will be probed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<OnOpenBreaker>, example = "fail")]
    pub on_open_breaker: Option<String>,
}

/// `PATCH /api/v1/policies/{id}`: the members to change. A number set to
/// `null` is cleared; `engines` or `steps` set to `null` allow every one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 255)]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 60000)]
    pub requests_per_minute: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 1000)]
    pub max_concurrent: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, nullable, minimum = 0, maximum = 3600000)]
    pub min_gap_ms: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Vec<String>>, nullable, max_items = 2)]
    pub engines: Option<Option<Vec<String>>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Vec<String>>, nullable, max_items = 18)]
    pub steps: Option<Option<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obey_robots: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 32)]
    pub allow_cidrs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<OnOpenBreaker>)]
    pub on_open_breaker: Option<String>,
}

fn check_number(
    field: &str,
    value: Option<u32>,
    min: u32,
    max: u32,
) -> Result<Option<u32>, ValidationError> {
    match value {
        Some(0) if min > 0 => Err(invalid(
            field,
            format!("must not be 0 (1 to {max}); leave it out to set no limit"),
        )),
        Some(n) if n < min || n > max => Err(invalid(
            field,
            format!("{n} is out of range ({min} to {max})"),
        )),
        other => Ok(other),
    }
}

fn parse_engines(
    engines: Option<&[String]>,
) -> Result<Option<BTreeSet<RunEngine>>, ValidationError> {
    let Some(engines) = engines else {
        return Ok(None);
    };
    let mut set = BTreeSet::new();
    for (i, text) in engines.iter().enumerate() {
        let engine = RunEngine::parse(text).ok_or_else(|| {
            invalid(
                format!("engines[{i}]"),
                format!("{text:?} is not an engine: use http or browser"),
            )
        })?;
        if !set.insert(engine) {
            return Err(invalid(
                format!("engines[{i}]"),
                format!("{text} is named twice"),
            ));
        }
    }
    Ok(Some(set))
}

fn parse_steps(steps: Option<&[String]>) -> Result<Option<BTreeSet<StepKind>>, ValidationError> {
    let Some(steps) = steps else { return Ok(None) };
    if steps.len() > StepKind::ALL.len() {
        return Err(invalid(
            "steps",
            format!("at most {} step kinds", StepKind::ALL.len()),
        ));
    }
    let mut set = BTreeSet::new();
    for (i, text) in steps.iter().enumerate() {
        let kind = StepKind::parse(text).ok_or_else(|| {
            let known: Vec<&str> = StepKind::ALL.iter().map(|k| k.as_str()).collect();
            invalid(
                format!("steps[{i}]"),
                format!(
                    "{text:?} is not a step kind: use one of {}",
                    known.join(", ")
                ),
            )
        })?;
        if !set.insert(kind) {
            return Err(invalid(
                format!("steps[{i}]"),
                format!("{text} is named twice"),
            ));
        }
    }
    Ok(Some(set))
}

fn parse_cidrs(cidrs: &[String]) -> Result<Vec<Cidr>, ValidationError> {
    if cidrs.len() > MAX_POLICY_CIDRS {
        return Err(invalid(
            "allow_cidrs",
            format!("at most {MAX_POLICY_CIDRS} networks"),
        ));
    }
    cidrs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse()
                .map_err(|err| invalid(format!("allow_cidrs[{i}]"), err))
        })
        .collect()
}

fn parse_on_open_breaker(text: Option<&str>) -> Result<OnOpenBreaker, ValidationError> {
    let Some(text) = text else {
        return Ok(OnOpenBreaker::default());
    };
    OnOpenBreaker::parse(text).ok_or_else(|| {
        invalid(
            "on_open_breaker",
            format!("{text:?} is not a choice: use wait or fail"),
        )
    })
}

fn parse_pattern(text: &str) -> Result<DomainPattern, ValidationError> {
    text.parse().map_err(|err| invalid("pattern", err))
}

/// Checks the numbers of `rules`, whichever request set them.
fn check_rules(rules: &PolicyRules) -> Result<(), ValidationError> {
    check_number(
        "requests_per_minute",
        rules.requests_per_minute,
        1,
        MAX_REQUESTS_PER_MINUTE,
    )?;
    check_number("max_concurrent", rules.max_concurrent, 1, MAX_CONCURRENT)?;
    check_number("min_gap_ms", rules.min_gap_ms, 0, MAX_MIN_GAP_MS)?;
    Ok(())
}

impl NewPolicy {
    /// Parses the request into a pattern and rules; errors name the field.
    pub fn validate(&self) -> Result<(DomainPattern, PolicyRules), ValidationError> {
        let pattern = parse_pattern(&self.pattern)?;
        let rules = PolicyRules {
            allowed: self.allowed.unwrap_or(true),
            requests_per_minute: self.requests_per_minute,
            max_concurrent: self.max_concurrent,
            min_gap_ms: self.min_gap_ms,
            engines: parse_engines(self.engines.as_deref())?,
            steps: parse_steps(self.steps.as_deref())?,
            obey_robots: self.obey_robots.unwrap_or(true),
            allow_cidrs: parse_cidrs(&self.allow_cidrs)?,
            on_open_breaker: parse_on_open_breaker(self.on_open_breaker.as_deref())?,
        };
        check_rules(&rules)?;
        Ok((pattern, rules))
    }
}

impl PolicyPatch {
    /// `policy` with the patch applied, checked like a new policy.
    pub fn apply(&self, policy: &DomainPolicy) -> Result<DomainPolicy, ValidationError> {
        let mut next = policy.clone();
        if let Some(pattern) = &self.pattern {
            next.pattern = parse_pattern(pattern)?;
        }
        let rules = &mut next.rules;
        if let Some(allowed) = self.allowed {
            rules.allowed = allowed;
        }
        if let Some(value) = self.requests_per_minute {
            rules.requests_per_minute = value;
        }
        if let Some(value) = self.max_concurrent {
            rules.max_concurrent = value;
        }
        if let Some(value) = self.min_gap_ms {
            rules.min_gap_ms = value;
        }
        if let Some(engines) = &self.engines {
            rules.engines = parse_engines(engines.as_deref())?;
        }
        if let Some(steps) = &self.steps {
            rules.steps = parse_steps(steps.as_deref())?;
        }
        if let Some(obey) = self.obey_robots {
            rules.obey_robots = obey;
        }
        if let Some(cidrs) = &self.allow_cidrs {
            rules.allow_cidrs = parse_cidrs(cidrs)?;
        }
        if let Some(choice) = &self.on_open_breaker {
            rules.on_open_breaker = parse_on_open_breaker(Some(choice))?;
        }
        check_rules(rules)?;
        Ok(next)
    }
}

/// A policy as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub id: PolicyId,
    #[schema(example = "*.example.com")]
    pub pattern: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 60000)]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 3600000)]
    pub min_gap_ms: Option<u32>,
    /// Absent: every engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engines: Option<Vec<RunEngine>>,
    /// Absent: every step kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepKind>>,
    pub obey_robots: bool,
    pub allow_cidrs: Vec<String>,
    /// What a job does while its host's circuit breaker is open.
    pub on_open_breaker: OnOpenBreaker,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&DomainPolicy> for PolicyView {
    fn from(policy: &DomainPolicy) -> Self {
        let rules = &policy.rules;
        Self {
            id: policy.id,
            pattern: policy.pattern.to_string(),
            allowed: rules.allowed,
            requests_per_minute: rules.requests_per_minute,
            max_concurrent: rules.max_concurrent,
            min_gap_ms: rules.min_gap_ms,
            engines: rules
                .engines
                .as_ref()
                .map(|set| set.iter().copied().collect()),
            steps: rules
                .steps
                .as_ref()
                .map(|set| set.iter().copied().collect()),
            obey_robots: rules.obey_robots,
            allow_cidrs: rules.allow_cidrs.iter().map(ToString::to_string).collect(),
            on_open_breaker: rules.on_open_breaker,
            created_at: policy.created_at,
            updated_at: policy.updated_at,
        }
    }
}

/// `GET /api/v1/policies`: most specific first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyList {
    pub items: Vec<PolicyView>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkspaceId;

    #[test]
    fn requests_are_validated_naming_the_field() {
        let check = |json: serde_json::Value, expected: Result<(), (&str, &str)>| {
            let new: NewPolicy = serde_json::from_value(json.clone()).unwrap();
            let got = new.validate().map(drop).map_err(|e| (e.field, e.message));
            match expected {
                Ok(()) => assert!(got.is_ok(), "{json}: {got:?}"),
                Err((field, part)) => {
                    let (got_field, message) = got.expect_err(&json.to_string());
                    assert_eq!(got_field, field, "{json}");
                    assert!(
                        message.contains(part),
                        "{message:?} should contain {part:?}"
                    );
                }
            }
        };
        use serde_json::json;
        check(
            json!({"pattern": "*.example.com", "requests_per_minute": 60, "max_concurrent": 2, "min_gap_ms": 0, "engines": ["http"], "steps": ["navigate", "evaluate"], "allow_cidrs": ["10.1.0.0/16", "127.0.0.1"]}),
            Ok(()),
        );
        check(
            json!({"pattern": "ex ample"}),
            Err(("pattern", "not a host")),
        );
        check(
            json!({"pattern": "*", "requests_per_minute": 0}),
            Err(("requests_per_minute", "must not be 0")),
        );
        check(
            json!({"pattern": "*", "requests_per_minute": 60001}),
            Err(("requests_per_minute", "out of range")),
        );
        check(
            json!({"pattern": "*", "max_concurrent": 0}),
            Err(("max_concurrent", "must not be 0")),
        );
        check(
            json!({"pattern": "*", "min_gap_ms": 3600001}),
            Err(("min_gap_ms", "out of range")),
        );
        check(
            json!({"pattern": "*", "engines": ["auto"]}),
            Err(("engines[0]", "not an engine")),
        );
        check(
            json!({"pattern": "*", "engines": ["http", "http"]}),
            Err(("engines[1]", "twice")),
        );
        check(
            json!({"pattern": "*", "steps": ["navigate", "teleport"]}),
            Err(("steps[1]", "not a step kind")),
        );
        check(
            json!({"pattern": "*", "allow_cidrs": ["10.0.0.0/33"]}),
            Err(("allow_cidrs[0]", "not a CIDR")),
        );
        check(json!({"pattern": "*", "on_open_breaker": "fail"}), Ok(()));
        check(
            json!({"pattern": "*", "on_open_breaker": "give_up"}),
            Err(("on_open_breaker", "use wait or fail")),
        );
    }

    #[test]
    fn open_breakers_are_waited_out_unless_the_policy_says_fail() {
        let new = |json: serde_json::Value| {
            serde_json::from_value::<NewPolicy>(json)
                .unwrap()
                .validate()
                .unwrap()
                .1
        };
        let waits = new(serde_json::json!({"pattern": "*"}));
        assert_eq!(waits.on_open_breaker, OnOpenBreaker::Wait);
        // The default is not even stored: rules written before the member
        // existed read the same.
        let stored = serde_json::to_value(&waits).unwrap();
        assert!(stored.get("on_open_breaker").is_none(), "{stored}");
        let fails = new(serde_json::json!({"pattern": "*", "on_open_breaker": "fail"}));
        assert_eq!(fails.on_open_breaker, OnOpenBreaker::Fail);
        let stored = serde_json::to_value(&fails).unwrap();
        assert_eq!(stored["on_open_breaker"], "fail");
        let read: PolicyRules = serde_json::from_value(stored).unwrap();
        assert_eq!(read, fails);
    }

    #[test]
    fn patches_clear_with_null() {
        let (pattern, rules) = NewPolicy {
            pattern: "example.com".to_owned(),
            requests_per_minute: Some(10),
            engines: Some(vec!["http".to_owned()]),
            ..NewPolicy::default()
        }
        .validate()
        .unwrap();
        let now = Utc::now();
        let policy = DomainPolicy {
            id: PolicyId::new(),
            workspace_id: WorkspaceId::DEFAULT,
            pattern,
            rules,
            created_at: now,
            updated_at: now,
        };
        let patch: PolicyPatch = serde_json::from_value(
            serde_json::json!({"requests_per_minute": null, "engines": null, "allowed": false}),
        )
        .unwrap();
        let next = patch.apply(&policy).unwrap();
        assert_eq!(next.rules.requests_per_minute, None);
        assert_eq!(next.rules.engines, None);
        assert!(!next.rules.allowed);
        let untouched: PolicyPatch = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(untouched.apply(&policy).unwrap(), policy);
        let bad: PolicyPatch =
            serde_json::from_value(serde_json::json!({"requests_per_minute": 0})).unwrap();
        assert_eq!(bad.apply(&policy).unwrap_err().field, "requests_per_minute");
        let fail: PolicyPatch =
            serde_json::from_value(serde_json::json!({"on_open_breaker": "fail"})).unwrap();
        assert_eq!(
            fail.apply(&policy).unwrap().rules.on_open_breaker,
            OnOpenBreaker::Fail
        );
        let bad: PolicyPatch =
            serde_json::from_value(serde_json::json!({"on_open_breaker": "later"})).unwrap();
        assert_eq!(bad.apply(&policy).unwrap_err().field, "on_open_breaker");
    }
}
