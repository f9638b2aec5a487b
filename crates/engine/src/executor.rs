//! The one trait every engine implements, so the worker can hold any of them.

use accord_model::{JobResult, JobSpec};
use tokio_util::sync::CancellationToken;

use crate::EngineError;

/// Runs a job's steps and reports what they produced.
///
/// The caller stops a run by cancelling `stop` (the job timed out, was
/// cancelled, or the worker is shutting down) and then awaits the run:
/// implementations must return promptly (well within a second) once `stop`
/// is cancelled, and must not return while work of the run (a parse on a
/// blocking thread, a browser page) is still going. Dropping the future is
/// still safe, but leaves such work to wind down on its own.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    async fn run(&self, spec: &JobSpec, stop: &CancellationToken)
        -> Result<JobResult, EngineError>;
}
