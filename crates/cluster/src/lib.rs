//! State shared across control-plane replicas: rate limits
//! ([`RateLimiter`]), per-domain politeness ([`DomainGate`]) and job-event
//! fan-out ([`EventBus`]), through Redis when
//! a URL is configured and in-process otherwise, behind one [`Cluster`]
//! handle that also reports [`RedisStatus`] for `/ready`.
//!
//! Redis is never the system of record, and it is optional:
//!
//! - Rate limits are token buckets in Redis, updated by one atomic script
//!   timed by the Redis server's clock, so replicas with skewed clocks
//!   agree. While Redis is down (or slow: a request waits on it at most a
//!   quarter of a second), each replica answers from buckets of its own and
//!   logs one warning per outage; a background prober notices when Redis is
//!   back and the shared buckets are used again.
//! - Job notices are hints for clients that watch jobs: they go to this
//!   process's subscribers at once and to the other replicas through
//!   pub/sub. The database's event log is the record, so a notice lost
//!   while Redis restarts (or dropped because a subscriber lagged) loses
//!   nothing; watchers read the log again. The subscriber task reconnects
//!   with backoff.
//!
//! Does not choose keys or limits (the api does), and never writes anything
//! that must agree with the database. Needs Redis 5 or newer; no TLS.

mod bucket;
mod cluster;
mod config;
mod domain_stats;
mod error;
mod events;
mod health;
mod limiter;
mod link;
mod local;
mod politeness;
mod probe;
mod redis_bucket;

pub use bucket::{BucketConfig, Decision};
pub use cluster::Cluster;
pub use config::{ClusterConfig, DEFAULT_KEY_PREFIX};
pub use domain_stats::{Counters, DomainStats, Sample, Windows, LATENCY_BOUNDS_MS};
pub use error::ClusterError;
pub use events::{EventBus, JobNotice};
pub use health::RedisStatus;
pub use limiter::RateLimiter;
pub use politeness::{DomainGate, DomainView};
