//! [`Cluster`]: the handle the binary builds once and hands out: the rate
//! limiter, the event bus and the Redis status for `/ready`.
//!
//! Owns start-up (parsing the URL, the first contact with Redis, starting
//! the background tasks) and shutdown. Does not own what the limiter and
//! the bus do with Redis.

use std::sync::Arc;

use tracing::info;

use crate::config::ClusterConfig;
use crate::domain_stats::DomainStats;
use crate::error::ClusterError;
use crate::events::EventBus;
use crate::health::RedisStatus;
use crate::limiter::RateLimiter;
use crate::link::{Background, Link, RedisHandle};
use crate::politeness::DomainGate;
use crate::probe::{probe_loop, probe_once};

/// Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Cluster {
    limiter: RateLimiter,
    gate: DomainGate,
    stats: DomainStats,
    events: EventBus,
    redis: Option<RedisHandle>,
}

impl Cluster {
    /// Connects to Redis when `config.redis_url` is set, else works
    /// in-process. Fails only on a malformed URL: a Redis that does not
    /// answer makes a degraded start, with a warning, and is used as soon
    /// as it answers. Takes at most about a second either way.
    ///
    /// On return the first contact has been made, so [`Cluster::status`]
    /// reflects it and, when Redis answered, notices published by other
    /// replicas from now on reach this one.
    pub async fn connect(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let Some(url) = config.redis_url.as_deref() else {
            return Ok(Cluster::local());
        };
        let redis = RedisHandle {
            link: Arc::new(Link::new(url, &config)?),
            background: Arc::new(Background::new()),
        };
        // A random suffix tells apart two processes given the same replica
        // id; they would otherwise ignore each other's notices.
        let origin = format!("{}/{:016x}", config.replica_id, rand::random::<u64>());
        let (events, first_subscription) = EventBus::with_redis(redis.clone(), origin);
        let ((), _) = tokio::join!(probe_once(&redis.link), first_subscription);
        redis.background.spawn(probe_loop(redis.link.clone()));
        if redis.link.health.status() == RedisStatus::Up {
            info!(
                replica_id = %config.replica_id,
                key_prefix = %config.key_prefix,
                "sharing rate limits and job events through redis"
            );
        }
        Ok(Cluster {
            limiter: RateLimiter::new(Some(redis.clone())),
            gate: DomainGate::new(Some(redis.clone())),
            stats: DomainStats::new(Some(redis.clone())),
            events,
            redis: Some(redis),
        })
    }

    /// Everything in-process: for a single replica, and for tests.
    pub fn local() -> Cluster {
        Cluster {
            limiter: RateLimiter::local(),
            gate: DomainGate::local(),
            stats: DomainStats::local(),
            events: EventBus::local(),
            redis: None,
        }
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Per-domain politeness, shared like the rate limits.
    pub fn domain_gate(&self) -> &DomainGate {
        &self.gate
    }

    /// What the workers' requests to each domain did, rolled up.
    pub fn domain_stats(&self) -> &DomainStats {
        &self.stats
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Redis as this replica sees it right now.
    pub fn status(&self) -> RedisStatus {
        match &self.redis {
            None => RedisStatus::NotConfigured,
            Some(redis) => redis.link.health.status(),
        }
    }

    /// Waits until the status satisfies `wanted` and returns it. Waits
    /// forever if it never does (without Redis the status never changes):
    /// callers bound the wait themselves.
    pub async fn wait_for_status(
        &self,
        mut wanted: impl FnMut(&RedisStatus) -> bool,
    ) -> RedisStatus {
        let Some(redis) = &self.redis else {
            if wanted(&RedisStatus::NotConfigured) {
                return RedisStatus::NotConfigured;
            }
            return std::future::pending().await;
        };
        let mut health = redis.link.health.subscribe();
        let status = match health.wait_for(|state| wanted(&state.status())).await {
            Ok(state) => state.status(),
            // The sender lives as long as `redis`, which we hold.
            Err(_) => return std::future::pending().await,
        };
        status
    }

    /// Stops the background tasks (prober, publisher, subscriber) and waits
    /// for them. From then on every handle of this cluster answers
    /// in-process: rate limits per replica, job events to this replica only.
    pub async fn shutdown(&self) {
        if let Some(redis) = &self.redis {
            redis.background.shutdown().await;
        }
    }
}
