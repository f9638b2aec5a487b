//! The one trait every engine implements, so the worker can hold any of them.

use accord_model::{JobResult, JobSpec};

use crate::EngineError;

/// Runs a job's steps and reports what they produced.
///
/// Implementations must be cancel-safe: the caller cancels a run by dropping
/// the future and bounds it with `tokio::time::timeout`, so no work may be
/// left running detached after the future is dropped.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    async fn run(&self, spec: &JobSpec) -> Result<JobResult, EngineError>;
}
