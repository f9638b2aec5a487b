//! The job lifecycle, on top of the [`Store`](accord_store::Store).
//!
//! Owns the rules that are not SQL: validation and target policy at
//! enqueue, long-polling claims that wake within milliseconds of an insert,
//! backoff jitter, sorting reports into accepted and rejected items, the reaper and the
//! retention pruner, and the queue's metrics. Artifacts too: uploads
//! checked against the lease, the size cap and the quota (`artifacts.rs`),
//! the evidence manifest of every finished attempt (`manifest.rs`), and the
//! sweep of blobs no row holds (in the maintenance pass). The one retry policy of the
//! system lives here; handlers never retry or sleep on their own.
//!
//! Monitors too: runs started with their job (`monitors.rs`), outcomes
//! computed off the async threads and written with the job's completion,
//! the scheduler that starts each due slot once (`scheduler.rs`), and
//! their history read back: snapshots, diffs and item histories
//! (`history.rs`).
//!
//! Workflow runs outside any monitor too (`workflow_runs.rs`): expanded
//! into a job, their outcome written with its completion.
//!
//! Notification targets, the run's events written as outbox messages with
//! its completion, the delivery log and redelivery (`notifications.rs`).
//!
//! Domain policies (`policies.rs`): kept per workspace, checked at
//! submission, handed to the worker with each claimed job.
//!
//! Does not run jobs (that is the worker's) and does not speak HTTP (the api's).

mod artifacts;
mod claim;
mod config;
mod dead_runs;
mod enqueue;
mod error;
mod history;
mod maintenance;
mod manifest;
mod metrics;
mod monitors;
mod notifications;
mod policies;
mod queue;
mod scheduler;
mod workflow_runs;

pub use artifacts::ArtifactUpload;
pub use config::{ArtifactConfig, MonitorConfig, QueueConfig};
pub use enqueue::Enqueued;
pub use error::QueueError;
pub use history::{DiffRuns, ItemPageRead};
pub use maintenance::MaintenanceReport;
pub use metrics::QueueMetrics;
pub use monitors::{StartedRun, MONITOR_LABEL};
pub use notifications::{events_of, DEFAULT_SECRET_GRACE, MAX_TARGETS};
pub use queue::Queue;
pub use workflow_runs::WORKFLOW_LABEL;
