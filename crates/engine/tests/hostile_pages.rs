//! The HTTP engine against pages built to cost it: every one ends with a
//! clear, permanent failure within the page limits, and a stopped run ends
//! promptly even in the middle of a parse. Regression tests for "a hostile
//! page keeps burning CPU after its job has timed out".

use std::time::Duration;

use accord_engine::{EngineConfig, EngineError, Executor, HttpEngine, PageLimits, StepFailure};
use accord_model::{Engine, ErrorKind, JobResult, JobSpec, Step};
use accord_test_support::FixtureServer;
use tokio_util::sync::CancellationToken;

fn config(page_limits: PageLimits) -> EngineConfig {
    EngineConfig {
        egress: accord_model::EgressPolicy::AllowPrivate,
        page_limits,
        ..EngineConfig::default()
    }
}

fn spec(server: &FixtureServer, path: &str) -> JobSpec {
    let steps: Vec<Step> = serde_json::from_str(&format!(
        r#"[{{"action": "navigate", "url": "{}"}},
            {{"action": "extract", "fields": {{"all": {{"selector": "div p, p", "all": true}}}}}},
            {{"action": "assert", "text": "never there"}}]"#,
        server.url(path)
    ))
    .unwrap();
    JobSpec {
        engine: Engine::Http,
        steps,
        timeout_seconds: 30,
    }
}

async fn run(
    limits: PageLimits,
    server: &FixtureServer,
    path: &str,
    stop: &CancellationToken,
) -> Result<JobResult, EngineError> {
    let engine = HttpEngine::new(config(limits)).unwrap();
    engine
        .run(&spec(server, path), stop)
        .await
        .map(|output| output.result)
        .map_err(|failure| failure.error)
}

/// Runs `path` under the default limits and checks how it fails.
async fn check(server: &FixtureServer, path: &str, expected: &str) {
    let outcome = run(
        PageLimits::default(),
        server,
        path,
        &CancellationToken::new(),
    )
    .await;
    let err = outcome.expect_err(path);
    assert_eq!(err.kind(), ErrorKind::Permanent, "{path}: {err}");
    assert!(err.to_string().contains(expected), "{path}: {err}");
}

#[tokio::test]
async fn costly_pages_fail_permanently_within_the_limits() {
    let server = FixtureServer::start().await;
    check(
        &server,
        "/hostile/nested/150000",
        "the page is too costly to process: the page nests elements more than 512 deep",
    )
    .await;
    check(
        &server,
        "/hostile/nested/400000",
        "nests elements more than 512 deep",
    )
    .await;
    check(
        &server,
        "/hostile/wide/600000",
        "the page has more than 500000 nodes",
    )
    .await;
    // These parse within the limits: the job fails on its own assert.
    // (Attributes cost the tokenizer quadratic time; the processing time
    // limit bounds a page with many more. 5,000 took over the 10 s limit
    // in a debug build on a loaded 2-core machine, so 2,000.)
    check(&server, "/hostile/attributes/2000", "assert failed").await;
    check(&server, "/hostile/scopes/20000", "assert failed").await;
}

#[tokio::test]
async fn processing_time_is_bounded() {
    let server = FixtureServer::start().await;
    let limits = PageLimits {
        max_processing: Duration::ZERO,
        ..PageLimits::default()
    };
    let err = run(limits, &server, "/page", &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.failure(), StepFailure::PageTooCostly(_)),
        "{err}"
    );
    assert_eq!(err.step(), Some(1));
}

/// A stop in the middle of a parse that would run for minutes ends the run
/// at the next chunk. (The bound asserted is a hang guard, far above the
/// milliseconds it takes.)
#[tokio::test]
async fn a_stop_ends_a_parse_under_way() {
    let server = FixtureServer::start().await;
    let unbounded = PageLimits {
        max_nodes: usize::MAX,
        max_depth: usize::MAX,
        max_processing: Duration::from_secs(3600),
        max_extracted_bytes: usize::MAX,
    };
    let stop = CancellationToken::new();
    let run = run(unbounded, &server, "/hostile/nested/400000", &stop);
    tokio::pin!(run);
    // Let the fetch finish and the parse start.
    tokio::select! {
        outcome = &mut run => panic!("the parse should not have finished: {outcome:?}"),
        () = tokio::time::sleep(Duration::from_millis(1_500)) => {}
    }
    stop.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ends once stopped");
    let err = outcome.unwrap_err();
    assert!(
        matches!(err.failure(), StepFailure::ProcessingCancelled),
        "{err}"
    );
}

#[tokio::test]
async fn a_stop_ends_a_body_that_never_ends() {
    let server = FixtureServer::start().await;
    let stop = CancellationToken::new();
    let run = run(PageLimits::default(), &server, "/hostile/endless", &stop);
    tokio::pin!(run);
    tokio::select! {
        outcome = &mut run => panic!("an endless body cannot finish: {outcome:?}"),
        () = tokio::time::sleep(Duration::from_millis(300)) => {}
    }
    stop.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ends once stopped");
    let err = outcome.unwrap_err();
    assert_eq!(err.step(), Some(0), "{err}");
    assert!(
        matches!(err.failure(), StepFailure::ProcessingCancelled),
        "{err}"
    );
}
