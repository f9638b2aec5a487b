//! Rate limits: a token bucket per key, with defaults per role that a key
//! may override, plus one per client address for failed authentications.

use accord_cluster::{BucketConfig, Decision};
use accord_model::{ApiKey, RateLimit, Role};
use axum::http::{HeaderMap, HeaderValue};

/// The default bucket of each role, and the bucket of failed attempts per client address.
#[derive(Debug, Clone, Copy)]
pub struct RoleLimits {
    pub admin: RateLimit,
    pub operator: RateLimit,
    pub viewer: RateLimit,
    pub worker: RateLimit,
    /// Requests with a missing or bad key, per client address. When it is
    /// empty such requests get 429 and are no longer written to the audit log.
    pub failed_auth: RateLimit,
}

impl Default for RoleLimits {
    fn default() -> Self {
        Self {
            admin: RateLimit {
                burst: 100,
                per_second: 20.0,
            },
            operator: RateLimit {
                burst: 500,
                per_second: 100.0,
            },
            viewer: RateLimit {
                burst: 200,
                per_second: 50.0,
            },
            // Workers batch their calls; one worker makes a few per second.
            worker: RateLimit {
                burst: 2_000,
                per_second: 1_000.0,
            },
            failed_auth: RateLimit {
                burst: 30,
                per_second: 1.0,
            },
        }
    }
}

impl RoleLimits {
    pub fn for_role(&self, role: Role) -> RateLimit {
        match role {
            Role::Admin => self.admin,
            Role::Operator => self.operator,
            Role::Viewer => self.viewer,
            Role::Worker => self.worker,
        }
    }

    /// The key's own limit, or its role's.
    pub fn for_key(&self, key: &ApiKey) -> RateLimit {
        key.rate_limit.unwrap_or_else(|| self.for_role(key.role))
    }
}

pub(super) fn bucket(limit: RateLimit) -> BucketConfig {
    BucketConfig {
        burst: limit.burst,
        refill_per_sec: limit.per_second,
    }
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds until full), as in
/// the IETF draft, plus `Retry-After` when refused.
pub(super) fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert(
        "ratelimit-reset",
        HeaderValue::from(whole_seconds(decision.reset_after)),
    );
    if !decision.allowed {
        headers.insert(
            "retry-after",
            HeaderValue::from(whole_seconds(decision.retry_after).max(1)),
        );
    }
}

fn whole_seconds(duration: std::time::Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}
