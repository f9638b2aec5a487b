//! Domain policies: per workspace, what jobs may do to which hosts.
//!
//! A [`DomainPolicy`] matches an exact host (`example.com`, or an IP
//! literal), every subdomain of one (`*.example.com`), or every host (`*`,
//! the workspace default). For a host the most specific matching policy
//! applies whole ([`effective_policy`]): an exact host beats any wildcard, a
//! longer wildcard beats a shorter one, `*` comes last, and with no match at
//! all everything is allowed ([`EffectivePolicy::unrestricted`]). A
//! workspace denies by default with a `*` policy that says
//! `"allowed": false`, then allows chosen hosts with policies of their own.
//!
//! A policy says whether the host may be visited, which engines and step
//! kinds a job may use on it, whether its robots.txt is obeyed, which
//! non-public networks it may resolve to (the one way to reach an internal
//! site), and politeness numbers (requests per minute, concurrent requests,
//! minimum gap) that the shared rate limiter reads through
//! [`effective_policy`].
//!
//! Deliberately pure: the store keeps policies, the queue checks them at
//! submission ([`PolicySet::check_job`]), the worker again at run time
//! (the claim carries the workspace's [`PolicySet`]), and nothing here
//! does IO or enforces rates.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{IdError, RunEngine, Step, ValidationError, WorkspaceId};

/// Most policies one workspace holds (every claim carries them all).
pub const MAX_POLICIES: usize = 200;
/// Most extra CIDRs one policy allows.
pub const MAX_POLICY_CIDRS: usize = 32;
/// Highest `requests_per_minute` (1000 a second).
pub const MAX_REQUESTS_PER_MINUTE: u32 = 60_000;
/// Highest `max_concurrent`.
pub const MAX_CONCURRENT: u32 = 1_000;
/// Longest `min_gap_ms`: an hour.
pub const MAX_MIN_GAP_MS: u32 = 3_600_000;
/// Longest domain pattern, in bytes (a DNS name is at most 253).
pub const MAX_PATTERN_BYTES: usize = 255;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

/// A domain policy id: a UUIDv7.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct PolicyId(Uuid);

impl PolicyId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for PolicyId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for PolicyId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|err| IdError::Invalid {
                kind: "policy id",
                reason: err.to_string(),
            })
    }
}

/// Which hosts a policy is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DomainPattern {
    /// `*`: every host (the workspace default).
    Any,
    /// `*.example.com`: every subdomain of `example.com`, not the name itself.
    Subdomains(String),
    /// `example.com`, `10.0.0.7` or `[fd00::1]`: that host only.
    Exact(String),
}

impl DomainPattern {
    /// Whether the pattern covers `host` (as a URL spells it: lowercase,
    /// IPv6 in brackets; a trailing dot is ignored).
    pub fn matches(&self, host: &str) -> bool {
        let host = normalize_host(host);
        match self {
            Self::Any => true,
            Self::Exact(name) => host == *name,
            Self::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }

    /// Orders matches: exact hosts first, then wildcards by how many labels
    /// they fix, then `*`.
    fn specificity(&self) -> (u8, usize) {
        match self {
            Self::Any => (0, 0),
            Self::Subdomains(suffix) => (1, suffix.split('.').count()),
            Self::Exact(_) => (2, 0),
        }
    }
}

/// A host as patterns compare it: lowercase, no trailing dot.
fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Parses a host name or IP literal the way a URL would hold it.
fn parse_host(text: &str) -> Result<String, String> {
    let text = text.trim_end_matches('.');
    if text.is_empty() {
        return Err("the host is empty".to_owned());
    }
    let host = url::Host::parse(text).map_err(|err| format!("{text:?} is not a host: {err}"))?;
    match &host {
        url::Host::Domain(name) => {
            if name.len() > 253 {
                return Err("a host name is at most 253 bytes".to_owned());
            }
            for label in name.split('.') {
                let ok = !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(format!(
                        "{text:?} is not a host name: the label {label:?} is not letters, digits and hyphens"
                    ));
                }
            }
        }
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => {}
    }
    Ok(host.to_string())
}

impl FromStr for DomainPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.len() > MAX_PATTERN_BYTES {
            return Err(format!("at most {MAX_PATTERN_BYTES} bytes"));
        }
        if text == "*" {
            return Ok(Self::Any);
        }
        const SHAPES: &str = "use `example.com`, `*.example.com` or `*`";
        if let Some(rest) = text.strip_prefix("*.") {
            if rest.contains('*') {
                return Err(format!(
                    "{text:?}: only one leading `*.` is allowed; {SHAPES}"
                ));
            }
            let host = parse_host(rest).map_err(|err| format!("{err}; {SHAPES}"))?;
            if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
                return Err(format!(
                    "{text:?}: an IP address has no subdomains; name it exactly"
                ));
            }
            return Ok(Self::Subdomains(host));
        }
        if text.contains('*') {
            return Err(format!(
                "{text:?}: a `*` may only lead (`*.example.com`) or stand alone; {SHAPES}"
            ));
        }
        if text.contains(['/', ':', '@', '?', '#']) && !text.starts_with('[') {
            return Err(format!(
                "{text:?} is not a domain: give the host alone, without scheme, port or path"
            ));
        }
        parse_host(text)
            .map(Self::Exact)
            .map_err(|err| format!("{err}; {SHAPES}"))
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Subdomains(suffix) => write!(f, "*.{suffix}"),
            Self::Exact(host) => f.write_str(host),
        }
    }
}

impl Serialize for DomainPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DomainPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A network a policy lets its hosts resolve to although it is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn net(&self) -> IpNet {
        self.0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// A CIDR (`10.1.0.0/16`, `fd00::/8`) or a bare address (itself alone).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        IpNet::from_str(text)
            .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
            .map(|net| Self(net.trunc()))
            .map_err(|_| {
                format!("{text:?} is not a CIDR (like 10.1.0.0/16 or fd00::/8) nor an IP address")
            })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The kind of a step, as a policy names it (the step's `action`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Navigate,
    WaitFor,
    Click,
    Fill,
    Select,
    Check,
    Uncheck,
    Press,
    Submit,
    Scroll,
    Hover,
    Extract,
    Screenshot,
    CaptureNetwork,
    Download,
    Evaluate,
    Assert,
    SaveHtml,
}

impl StepKind {
    pub const ALL: [Self; 18] = [
        Self::Navigate,
        Self::WaitFor,
        Self::Click,
        Self::Fill,
        Self::Select,
        Self::Check,
        Self::Uncheck,
        Self::Press,
        Self::Submit,
        Self::Scroll,
        Self::Hover,
        Self::Extract,
        Self::Screenshot,
        Self::CaptureNetwork,
        Self::Download,
        Self::Evaluate,
        Self::Assert,
        Self::SaveHtml,
    ];

    pub fn of(step: &Step) -> Self {
        match step {
            Step::Navigate { .. } => Self::Navigate,
            Step::WaitFor { .. } => Self::WaitFor,
            Step::Click { .. } => Self::Click,
            Step::Fill { .. } => Self::Fill,
            Step::Select { .. } => Self::Select,
            Step::Check { .. } => Self::Check,
            Step::Uncheck { .. } => Self::Uncheck,
            Step::Press { .. } => Self::Press,
            Step::Submit { .. } => Self::Submit,
            Step::Scroll { .. } => Self::Scroll,
            Step::Hover { .. } => Self::Hover,
            Step::Extract { .. } => Self::Extract,
            Step::Screenshot { .. } => Self::Screenshot,
            Step::CaptureNetwork { .. } => Self::CaptureNetwork,
            Step::Download { .. } => Self::Download,
            Step::Evaluate { .. } => Self::Evaluate,
            Step::Assert { .. } => Self::Assert,
            Step::SaveHtml { .. } => Self::SaveHtml,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Navigate => "navigate",
            Self::WaitFor => "wait_for",
            Self::Click => "click",
            Self::Fill => "fill",
            Self::Select => "select",
            Self::Check => "check",
            Self::Uncheck => "uncheck",
            Self::Press => "press",
            Self::Submit => "submit",
            Self::Scroll => "scroll",
            Self::Hover => "hover",
            Self::Extract => "extract",
            Self::Screenshot => "screenshot",
            Self::CaptureNetwork => "capture_network",
            Self::Download => "download",
            Self::Evaluate => "evaluate",
            Self::Assert => "assert",
            Self::SaveHtml => "save_html",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

    fn check_pattern(text: &str, expected: Result<&str, &str>) {
        let got = text.parse::<DomainPattern>().map(|p| p.to_string());
        match expected {
            Ok(shown) => assert_eq!(got, Ok(shown.to_owned()), "{text}"),
            Err(part) => {
                let err = got.expect_err(text);
                assert!(
                    err.contains(part),
                    "{text}: {err:?} should contain {part:?}"
                );
            }
        }
    }

    #[test]
    fn patterns_parse() {
        check_pattern("*", Ok("*"));
        check_pattern("example.com", Ok("example.com"));
        check_pattern("Example.COM.", Ok("example.com"));
        check_pattern("*.example.com", Ok("*.example.com"));
        check_pattern("10.0.0.7", Ok("10.0.0.7"));
        check_pattern("[fd00::1]", Ok("[fd00::1]"));
        check_pattern("bücher.de", Ok("xn--bcher-kva.de"));
        check_pattern("", Err("empty"));
        check_pattern("*example.com", Err("may only lead"));
        check_pattern("a.*.com", Err("may only lead"));
        check_pattern("*.*.com", Err("only one leading"));
        check_pattern("https://example.com/", Err("without scheme"));
        check_pattern("example.com:8080", Err("without scheme"));
        check_pattern("exa mple.com", Err("not a host"));
        check_pattern("*.10.0.0.7", Err("no subdomains"));
        check_pattern("-bad.com", Err("label"));
        check_pattern(&"a".repeat(300), Err("at most 255"));
    }

    #[test]
    fn patterns_match() {
        let check = |pattern: &str, host: &str, expected: bool| {
            let pattern: DomainPattern = pattern.parse().unwrap();
            assert_eq!(pattern.matches(host), expected, "{pattern} on {host}");
        };
        check("*", "anything.example", true);
        check("example.com", "example.com", true);
        check("example.com", "EXAMPLE.com.", true);
        check("example.com", "www.example.com", false);
        check("*.example.com", "www.example.com", true);
        check("*.example.com", "a.b.example.com", true);
        check("*.example.com", "example.com", false);
        check("*.example.com", "badexample.com", false);
        check("[::1]", "[::1]", true);
    }

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
    }

    #[test]
    fn step_kinds_are_the_step_actions() {
        for kind in StepKind::ALL {
            assert_eq!(StepKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::json!(kind.as_str()));
        }
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
    }
}
