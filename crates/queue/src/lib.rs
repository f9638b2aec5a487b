//! The job lifecycle, on top of the [`Store`](accord_store::Store).
//!
//! Owns the rules that are not SQL: validation and target policy at
//! enqueue, long-polling claims that wake within milliseconds of an insert,
//! backoff jitter, sorting reports into accepted and rejected items, the reaper and the
//! retention pruner, and the queue's metrics. The one retry policy of the
//! system lives here; handlers never retry or sleep on their own.
//!
//! Does not run jobs (that is the worker's) and does not speak HTTP (the api's).

mod claim;
mod config;
mod enqueue;
mod error;
mod maintenance;
mod metrics;
mod queue;

pub use config::QueueConfig;
pub use enqueue::Enqueued;
pub use error::QueueError;
pub use maintenance::MaintenanceReport;
pub use metrics::QueueMetrics;
pub use queue::Queue;
