//! What the browser tests share: a Chromium found the way the worker finds
//! it (failing loudly when there is none: the tests never skip), an engine
//! with a small pool, and jobs written as JSON.

use std::time::Duration;

use accord_engine::browser::{detect_chromium, BrowserConfig, BrowserEngine, Chromium};
use accord_engine::{Artifact, Executor, RunFailure, RunOutput};
use accord_model::{ErrorKind, JobError, JobSpec};
use tokio_util::sync::CancellationToken;

#[expect(
    clippy::disallowed_methods,
    reason = "the test harness, not library code, locates its tools"
)]
pub async fn chromium() -> Chromium {
    let path = std::env::var_os("PATH");
    match detect_chromium(None, path.as_deref()).await {
        Ok(chromium) => chromium,
        Err(err) => panic!(
            "these tests need Chromium: {err}. Run ./scripts/test.sh to install chromium-headless-shell"
        ),
    }
}

/// An engine with `slots` slots; its browsers live in a directory of the
/// test's own.
pub async fn engine(slots: usize, work_dir: &std::path::Path) -> BrowserEngine {
    engine_with(BrowserConfig {
        slots,
        work_dir: work_dir.to_owned(),
        navigate_timeout: Duration::from_secs(20),
        element_timeout: Duration::from_secs(5),
        ..BrowserConfig::default()
    })
    .await
}

pub async fn engine_with(config: BrowserConfig) -> BrowserEngine {
    BrowserEngine::start(chromium().await, config)
}

/// A job spec from the JSON of its steps.
pub fn job(steps: serde_json::Value) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "engine": "browser",
        "timeout_seconds": 60,
        "steps": steps,
    }))
    .expect("a valid job spec")
}

pub async fn run(
    engine: &BrowserEngine,
    steps: serde_json::Value,
) -> Result<RunOutput, RunFailure> {
    engine.run(&job(steps), &CancellationToken::new()).await
}

/// Runs a job that must succeed.
pub async fn run_ok(engine: &BrowserEngine, steps: serde_json::Value) -> RunOutput {
    match run(engine, steps).await {
        Ok(output) => output,
        Err(failure) => panic!("the job failed: {}", JobError::from(failure.error).message),
    }
}

/// Runs a job that must fail: its error as stored, and what it kept.
pub async fn run_err(
    engine: &BrowserEngine,
    steps: serde_json::Value,
) -> (JobError, Vec<Artifact>) {
    match run(engine, steps).await {
        Ok(output) => panic!("the job succeeded: {:?}", output.result),
        Err(failure) => (JobError::from(failure.error), failure.artifacts),
    }
}

pub fn assert_kind(error: &JobError, kind: ErrorKind, contains: &str) {
    assert_eq!(error.kind, kind, "{}", error.message);
    assert!(
        error.message.contains(contains),
        "{:?} does not contain {contains:?}",
        error.message
    );
}
