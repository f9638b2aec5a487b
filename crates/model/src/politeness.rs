//! The politeness calls of the worker protocol: a worker asks the control
//! plane before it sends a job's requests to a domain
//! (`/internal/v1/worker/egress/acquire`), says how they went when the job
//! is done (`.../egress/finish`), and puts back a job whose domain must
//! wait (`/internal/v1/worker/defer`) without using up an attempt. The
//! control plane keeps each domain's rate, concurrency cap, least gap,
//! `Retry-After` pause and circuit breaker, shared by every replica.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{JobId, WorkerId};

/// Hosts per acquire: a job's navigate and download targets.
pub const MAX_EGRESS_HOSTS: usize = 16;
/// Longest a permit may be held (and a job deferred): one hour.
pub const MAX_EGRESS_HOLD_MS: u64 = 60 * 60 * 1000;

/// Ask to send a leased job's requests to `hosts`: granted for all of them
/// or for none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressAcquireRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub job_id: JobId,
    /// Host names as in the job's URLs (lowercase, without port).
    #[schema(min_items = 1, max_items = 16)]
    pub hosts: Vec<String>,
    /// How long the permit holds a slot if it is never finished (the
    /// job's timeout and a margin): 1 s to 1 h.
    #[schema(minimum = 1000, maximum = 3600000, format = "uint64")]
    pub hold_ms: u64,
    /// The `Crawl-delay` of hosts whose robots.txt sets one, in ms (at
    /// most a minute): the least gap between requests to that host, when
    /// longer than the configured one. At most 16 hosts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub crawl_delay_ms: BTreeMap<String, u64>,
    /// The numbers the job's domain policies set for its hosts (at most 16
    /// hosts): they replace the server's defaults for this request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policy_limits: BTreeMap<String, HostLimits>,
}

/// The politeness numbers a domain policy sets for one host; each replaces
/// the server's default when present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 60000)]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 3600000)]
    pub min_gap_ms: Option<u32>,
}

impl HostLimits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The longest `Crawl-delay` honoured: a minute.
pub const MAX_CRAWL_DELAY_MS: u64 = 60_000;

/// Why requests to a domain have to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EgressWaitReason {
    /// The site answered 429 or 503 with `Retry-After`.
    Paused,
    /// The domain's circuit breaker is open after repeated failures.
    BreakerOpen,
    /// As many requests as allowed are in flight.
    Concurrency,
    /// The least gap between requests has not passed.
    Gap,
    /// The per-minute rate is used up.
    Rate,
}

/// The answer: a permit, or how long to wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressAcquireResponse {
    /// Present when every host was granted; finish it when the job is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_id: Option<String>,
    /// Present when some host must wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<EgressWait>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressWait {
    pub host: String,
    pub reason: EgressWaitReason,
    /// Ask again after this long.
    #[schema(format = "uint64")]
    pub retry_in_ms: u64,
    /// When the wait ends by the control plane's clock (for `breaker_open`:
    /// when the breaker lets its probe through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// How the requests of a permit to one host went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EgressOutcome {
    /// The site answered.
    Success,
    /// The site is in trouble: network error, timeout, 5xx.
    Failure,
    /// Nothing to learn (never sent, cancelled, failed for the job's own
    /// reasons).
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressFinishItem {
    pub permit_id: String,
    pub host: String,
    pub outcome: EgressOutcome,
    /// The site's `Retry-After` with a 429 or 503: every request to the
    /// host waits this long (at most an hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uint64")]
    pub retry_after_ms: Option<u64>,
    /// The status of the host's last answer, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 100, maximum = 599)]
    pub status: Option<u16>,
    /// How long the job's requests took, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uint64")]
    pub latency_ms: Option<u64>,
}

/// End permits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressFinishRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub items: Vec<EgressFinishItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeferItem {
    pub job_id: JobId,
    #[schema(format = "uint32")]
    pub attempt: u32,
    /// When the job may run again, from now: 1 ms to 1 h.
    #[schema(minimum = 1, maximum = 3600000, format = "uint64")]
    pub delay_ms: u64,
    /// Why, in a sentence (kept in the job's events).
    #[schema(max_length = 512)]
    pub reason: String,
}

/// Put leased jobs back unrun until a later time, without counting the
/// attempt: their domain asked us to wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeferRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub items: Vec<DeferItem>,
}

/// What requests to one domain did over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainWindow {
    /// Requests sent (answered or not).
    pub requests: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Requests without an answer (network error, timeout).
    pub errors: u64,
    /// Times a job had to wait for a permit (rate, gap, cap, pause, breaker).
    pub waits: u64,
    /// Latency quantiles, as the upper bound of a histogram bucket (50, 100,
    /// 250, 500, 1000, 2500, 5000, 10000, 30000 ms; absent without answers,
    /// `null` above 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<u64>,
}

/// A domain's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerStatus {
    Closed,
    Open,
    HalfOpen,
}

/// Why a domain's circuit breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerReason {
    /// Closed to open: `failures` failures in a row (network errors,
    /// timeouts, 5xx, 429 without `Retry-After`).
    FailuresInARow,
    /// Open to half-open: its open time was up, and one probe went.
    ProbeDue,
    /// Half-open to closed: the probe succeeded.
    ProbeSucceeded,
    /// Half-open to open: the probe failed.
    ProbeFailed,
    /// Half-open to open (probe due again at once): the probe's job never
    /// sent it (cancelled, or its worker died).
    ProbeAbandoned,
}

/// One change of a domain's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerTransition {
    /// When it changed, by the control plane's clock (Redis's, when shared).
    pub at: DateTime<Utc>,
    /// The state it changed to.
    pub to: BreakerStatus,
    pub reason: BreakerReason,
    /// For `failures_in_a_row`: how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uint32")]
    pub failures: Option<u32>,
}

/// Most breaker transitions kept per domain.
pub const MAX_BREAKER_HISTORY: usize = 20;

/// One domain as the workers see it: traffic over the last hour and day,
/// and its politeness state right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainSummary {
    pub domain: String,
    pub last_seen: DateTime<Utc>,
    pub last_hour: DomainWindow,
    pub last_day: DomainWindow,
    pub breaker: BreakerStatus,
    /// Failures in a row counted by a closed breaker.
    pub breaker_failures: u32,
    /// Until when an open breaker holds requests back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_open_until: Option<DateTime<Utc>>,
    /// Until when a `Retry-After` pauses the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<DateTime<Utc>>,
    /// Requests in flight now.
    pub in_flight: u32,
    /// The breaker's last transitions, newest first (at most 20, kept for
    /// two hours after the latest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 20)]
    pub breaker_history: Vec<BreakerTransition>,
    /// The engine `auto` jobs of the caller's workspace start on for this
    /// domain, as the `auto` engine learned it (absent while nothing is
    /// remembered: `auto` starts on HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<DomainEngineView>,
}

/// What the `auto` engine remembers about a domain: the engine that works
/// there, why, and until when (then HTTP is tried again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainEngineView {
    pub engine: crate::RunEngine,
    /// What showed it, in a sentence.
    pub reason: String,
    pub decided_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainList {
    /// Most recently seen first; domains seen in the last day, at most 100.
    pub items: Vec<DomainSummary>,
}
