//! [`RateLimiter`]: token buckets shared by every replica through Redis,
//! answered in-process when Redis is not configured or not answering.
//!
//! On Redis each check is one atomic script (see `redis_bucket.rs`) over a
//! hash per key, timed by the Redis server's clock. Degraded answers come from
//! this process's own buckets: a limit is then enforced per replica, so N
//! replicas allow up to N times the rate until Redis is back. Does not
//! choose keys or limits (the api does) and never fails a request.

use std::sync::Arc;

use crate::bucket::{BucketConfig, Decision};
use crate::link::RedisHandle;
use crate::local::LocalBuckets;
use crate::redis_bucket::redis_bucket_take;

/// Cheap to clone; clones share the buckets.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    local: LocalBuckets,
    redis: Option<RedisHandle>,
}

impl RateLimiter {
    /// A limiter that only ever counts in this process.
    pub fn local() -> Self {
        Self::new(None)
    }

    pub(crate) fn new(redis: Option<RedisHandle>) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: LocalBuckets::new(),
                redis,
            }),
        }
    }

    /// Takes one token from `key`'s bucket when it has one. Never fails:
    /// while Redis is down the answer comes from this process's buckets, and
    /// a request waits on Redis for at most a quarter of a second.
    pub async fn check(&self, key: &str, config: BucketConfig) -> Decision {
        if let Some(link) = self.inner.redis.as_ref().and_then(RedisHandle::usable_link) {
            let redis_key = link.key(&format!("ratelimit:{key}"));
            if let Ok(decision) = redis_bucket_take(link, redis_key, config).await {
                return decision;
            }
        }
        self.inner.local.check(key, config)
    }
}
