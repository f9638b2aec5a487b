//! How a worker behaves.

use std::time::Duration;

use accord_model::{QueueName, WorkerId};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub worker_id: WorkerId,
    /// HTTP jobs run at the same time.
    pub concurrency: usize,
    /// Browser jobs run at the same time (when the worker has a browser);
    /// separate from `concurrency`.
    pub browser_slots: usize,
    /// Queues to take jobs from; empty means all.
    pub queues: Vec<QueueName>,
    /// How long one claim waits on the server for a job.
    pub claim_wait: Duration,
    /// How often all leases are renewed (and cancellations learned).
    pub heartbeat_interval: Duration,
    /// On shutdown, how long running jobs may take to finish before they
    /// are stopped and their leases given back.
    pub shutdown_grace: Duration,
    /// Ask the control plane for a per-domain permit before each job's
    /// requests (rate, concurrency cap, least gap, `Retry-After`, breaker).
    pub politeness: bool,
}

impl WorkerConfig {
    pub fn new(worker_id: WorkerId) -> Self {
        Self {
            worker_id,
            concurrency: 8,
            browser_slots: default_browser_slots(),
            queues: Vec::new(),
            claim_wait: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            politeness: true,
        }
    }
}

/// Browser slots by default: one per core, at least one. Chromium is CPU
/// bound: more slots than cores add memory, not throughput.
pub fn default_browser_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
