//! Tunables of the queue, set once by the binary.

use std::time::Duration;

use accord_egress::AllowList;
use accord_model::{EgressPolicy, Limits};
use accord_store::ArtifactLimits;

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
    /// Non-public networks jobs may reach all the same (an internal site,
    /// the demo site); the engine is given the same list.
    pub allow_targets: AllowList,
    pub limits: Limits,
    /// How long `auto` remembers that a domain needs a browser; after that
    /// its jobs start on HTTP again, in case the site changed.
    pub auto_memory: Duration,
    pub artifacts: ArtifactConfig,
    pub monitors: MonitorConfig,
    /// Whether this control plane sends email (an SMTP server is
    /// configured): without one, email targets are refused at creation
    /// rather than accepted and never delivered.
    pub email_targets: bool,
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
            allow_targets: AllowList::default(),
            limits: Limits::default(),
            auto_memory: Duration::from_secs(24 * 3600),
            artifacts: ArtifactConfig::default(),
            monitors: MonitorConfig::default(),
            email_targets: false,
        }
    }
}

/// How artifacts are held: what one upload and one workspace may store,
/// and how the blobs no row holds any more are swept.
#[derive(Debug, Clone)]
pub struct ArtifactConfig {
    /// Largest artifact accepted, in bytes (the upload route's body limit).
    pub max_bytes: u64,
    /// The workspace quota and the most artifacts per job.
    pub limits: ArtifactLimits,
    /// How often the sweep walks the blob store for blobs no row holds.
    pub sweep_interval: Duration,
    /// Blobs younger than this are spared: an upload writes its blob before
    /// its row, so a fresh blob without a row may be one about to get it.
    pub sweep_grace: Duration,
}

impl Default for ArtifactConfig {
    fn default() -> Self {
        Self {
            max_bytes: 100 * 1024 * 1024,
            limits: ArtifactLimits {
                quota_bytes: 10 * 1024 * 1024 * 1024,
                max_per_job: 1_000,
            },
            sweep_interval: Duration::from_secs(3600),
            sweep_grace: Duration::from_secs(3600),
        }
    }
}

/// How monitors run: the shortest interval a schedule may ask for, the
/// job each run gets, and how often the scheduler looks for due monitors.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// The shortest interval (or cron period) a monitor may be scheduled
    /// at. 10 seconds by default; a demo may go lower.
    pub min_interval: Duration,
    /// Attempts of each run's job (a retryable failure is tried again
    /// within the run).
    pub max_attempts: u32,
    /// Timeout of each run's job, in seconds.
    pub timeout_seconds: u32,
    /// How often the scheduler looks for due monitors.
    pub scheduler_interval: Duration,
    /// At most this many runs are started per look.
    pub scheduler_batch: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(accord_model::DEFAULT_MIN_INTERVAL_SECONDS),
            max_attempts: 2,
            timeout_seconds: 60,
            scheduler_interval: Duration::from_millis(500),
            scheduler_batch: 500,
        }
    }
}
