//! Tunables of the queue, set once by the binary.

use std::time::Duration;

use accord_model::{EgressPolicy, Limits};

#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long a claim or a heartbeat holds a job for a worker.
    pub lease_ttl: Duration,
    /// How often the reaper looks for expired leases (and the pruner runs).
    pub maintenance_interval: Duration,
    /// Finished jobs older than this are deleted; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// Audit entries older than this are deleted; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
    /// At most this many rows are reaped or pruned per statement.
    pub maintenance_batch: u32,
    /// The longest a claim may wait for a job.
    pub max_claim_wait: Duration,
    /// While waiting, look at the store at least this often even without a wake-up.
    pub claim_poll_interval: Duration,
    /// Which targets jobs may reach: literal non-public targets are refused
    /// at enqueue unless private ones are allowed (the engine checks
    /// resolved addresses too, under the same policy).
    pub egress: EgressPolicy,
    pub limits: Limits,
    /// How long `auto` remembers that a domain needs a browser; after that
    /// its jobs start on HTTP again, in case the site changed.
    pub auto_memory: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(30),
            maintenance_interval: Duration::from_secs(1),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            audit_retention: Some(Duration::from_secs(90 * 24 * 3600)),
            maintenance_batch: 1_000,
            max_claim_wait: Duration::from_secs(30),
            claim_poll_interval: Duration::from_secs(1),
            egress: EgressPolicy::PublicOnly,
            limits: Limits::default(),
            auto_memory: Duration::from_secs(24 * 3600),
        }
    }
}
