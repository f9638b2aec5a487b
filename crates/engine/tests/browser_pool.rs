//! The browser pool against real Chromium: timeouts and cancellation close
//! the job's context and free its slot, crashes of a renderer or of the
//! whole browser fail the job as retryable and the pool recovers by itself,
//! browsers are recycled, and nothing stays behind (processes, directories).

mod chromium;

use std::path::Path;
use std::time::Duration;

use accord_engine::browser::{
    browser_processes, detect_chromium, BrowserConfig, BrowserEngine, DetectError, ProcessKind,
};
use accord_engine::Executor;
use accord_model::{ErrorKind, JobError};
use accord_test_support::FixtureServer;
use chromium::{assert_kind, engine, engine_with, job, run_err, run_ok};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The browser directories under `work_dir`.
fn browser_dirs(work_dir: &Path) -> Vec<String> {
    std::fs::read_dir(work_dir)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("accord-chromium-"))
        .collect()
}

/// Waits until `ready` holds, checking every 20 ms (the test's own timeout
/// bounds it).
async fn until(mut ready: impl FnMut() -> bool) {
    while !ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the processes of the pool's first browser that are of `kind`.
async fn kill_processes(engine: &BrowserEngine, kind: ProcessKind) -> usize {
    let stats = engine.stats().await;
    let root = stats.browsers[0].pid;
    let mut killed = 0;
    for process in browser_processes(root) {
        if process.kind == kind {
            kill(Pid::from_raw(process.pid as i32), Signal::SIGKILL).unwrap();
            killed += 1;
        }
    }
    killed
}

/// A job that loads the script-rendered list, then waits for an element
/// that never comes: it is still running when the test acts on the browser.
fn stuck_job(server: &FixtureServer) -> serde_json::Value {
    json!([
        {"action": "navigate", "url": server.url("/app/list")},
        {"action": "wait_for", "selector": "#never", "timeout_ms": 50_000},
    ])
}

async fn open_contexts(engine: &BrowserEngine) -> Option<usize> {
    engine.stats().await.browsers[0].contexts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_never_loads_times_out_and_frees_its_slot() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(BrowserConfig {
        slots: 1,
        work_dir: dir.path().to_owned(),
        navigate_timeout: Duration::from_secs(2),
        ..BrowserConfig::default()
    })
    .await;
    let (error, _) = run_err(
        &engine,
        json!([{"action": "navigate", "url": server.url("/app/never")}]),
    )
    .await;
    assert_kind(&error, ErrorKind::Retryable, "timed out after 2s");
    assert_eq!(error.step, Some(0));
    assert_eq!(
        open_contexts(&engine).await,
        Some(0),
        "the job's context is closed"
    );
    // `domcontentloaded` does not wait for the image that never comes.
    let output = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/never"), "wait_until": "domcontentloaded"},
            {"action": "extract", "fields": {"title": {"selector": "#title"}}},
        ]),
    )
    .await;
    assert_eq!(
        output.result.extracted["title"],
        accord_model::ExtractedValue::One(Some("Almost there".into()))
    );
    assert_eq!(engine.stats().await.busy, 0);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_job_ends_at_once_and_closes_its_context() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let engine = engine.clone();
        let stop = stop.clone();
        // The second page never answers: the job is stopped while loading it.
        let spec = job(json!([
            {"action": "navigate", "url": server.url("/page")},
            {"action": "navigate", "url": server.url("/hang")},
        ]));
        async move { engine.run(&spec, &stop).await }
    });
    until(|| server.hits("/hang") >= 1).await;
    stop.cancel();
    let failure = running.await.unwrap().expect_err("a stopped job fails");
    let error = JobError::from(failure.error);
    assert_kind(&error, ErrorKind::Retryable, "the job was stopped");
    assert_eq!(error.step, Some(1));
    assert_eq!(open_contexts(&engine).await, Some(0));
    run_ok(
        &engine,
        json!([{"action": "navigate", "url": server.url("/page")}]),
    )
    .await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_renderer_fails_the_job_and_the_next_job_succeeds() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let running = tokio::spawn({
        let engine = engine.clone();
        let spec = job(stuck_job(&server));
        async move { engine.run(&spec, &CancellationToken::new()).await }
    });
    // The page's script has run: its renderer is up.
    until(|| server.hits("/app/api/jobs") >= 1).await;
    assert!(kill_processes(&engine, ProcessKind::Renderer).await >= 1);
    let failure = running.await.unwrap().expect_err("the renderer died");
    let error = JobError::from(failure.error);
    assert_kind(&error, ErrorKind::Retryable, "the page's renderer crashed");
    run_ok(
        &engine,
        json!([{"action": "navigate", "url": server.url("/page")}]),
    )
    .await;
    let stats = engine.stats().await;
    assert_eq!(
        (stats.launches, stats.crashes),
        (1, 0),
        "the browser lived on"
    );
    assert_eq!(stats.browsers[0].contexts, Some(0));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_browser_fails_the_job_and_the_pool_restarts_it() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let running = tokio::spawn({
        let engine = engine.clone();
        let spec = job(stuck_job(&server));
        async move { engine.run(&spec, &CancellationToken::new()).await }
    });
    until(|| server.hits("/app/api/jobs") >= 1).await;
    let first_pid = engine.stats().await.browsers[0].pid;
    assert_eq!(kill_processes(&engine, ProcessKind::Browser).await, 1);
    let failure = running.await.unwrap().expect_err("the browser died");
    let error = JobError::from(failure.error);
    assert_kind(&error, ErrorKind::Retryable, "the browser crashed");
    // The pool starts another browser by itself; the next job runs there.
    run_ok(
        &engine,
        json!([{"action": "navigate", "url": server.url("/page")}]),
    )
    .await;
    let stats = engine.stats().await;
    assert_eq!((stats.launches, stats.crashes), (2, 1));
    assert_ne!(stats.browsers[0].pid, first_pid);
    // The dead browser's processes and directory are gone.
    until(|| browser_processes(first_pid).is_empty()).await;
    until(|| browser_dirs(dir.path()).len() == 1).await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_are_recycled_after_their_jobs_and_above_their_memory_ceiling() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(BrowserConfig {
        slots: 1,
        work_dir: dir.path().to_owned(),
        recycle_after_jobs: 2,
        ..BrowserConfig::default()
    })
    .await;
    for _ in 0..3 {
        run_ok(
            &engine,
            json!([{"action": "navigate", "url": server.url("/page")}]),
        )
        .await;
    }
    let stats = engine.stats().await;
    assert_eq!((stats.launches, stats.recycled, stats.crashes), (2, 1, 0));
    until(|| browser_dirs(dir.path()).len() == 1).await;
    engine.shutdown().await;

    // A ceiling no browser stays under: every measured browser is replaced.
    let engine = engine_with(BrowserConfig {
        slots: 1,
        work_dir: dir.path().to_owned(),
        pss_ceiling_bytes: 1,
        measure_every_jobs: 1,
        ..BrowserConfig::default()
    })
    .await;
    run_ok(
        &engine,
        json!([{"action": "navigate", "url": server.url("/page")}]),
    )
    .await;
    until_recycled(&engine).await;
    run_ok(
        &engine,
        json!([{"action": "navigate", "url": server.url("/page")}]),
    )
    .await;
    assert!(engine.stats().await.launches >= 2);
    engine.shutdown().await;
}

async fn until_recycled(engine: &BrowserEngine) {
    while engine.stats().await.recycled == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_process_nor_directory_and_stale_ones_are_swept() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A directory a killed worker left behind (pid 1 is alive but never a
    // worker of ours; an absurd pid is never alive).
    let stale = dir.path().join("accord-chromium-4000000000-x1");
    std::fs::create_dir_all(stale.join("profile")).unwrap();
    let engine = engine(2, dir.path()).await;
    run_ok(
        &engine,
        json!([{"action": "navigate", "url": server.url("/page")}]),
    )
    .await;
    assert!(!stale.exists(), "a dead worker's directory is swept");
    let pid = engine.stats().await.browsers[0].pid;
    assert!(browser_processes(pid)
        .iter()
        .any(|process| process.kind == ProcessKind::Browser));
    engine.shutdown().await;
    assert!(browser_processes(pid).is_empty());
    assert_eq!(browser_dirs(dir.path()), Vec::<String>::new());
    // A shut down pool refuses work with a clear, retryable error.
    let (error, _) = run_err(
        &engine,
        json!([{"action": "navigate", "url": server.url("/page")}]),
    )
    .await;
    assert_kind(
        &error,
        ErrorKind::Retryable,
        "the browser pool is shut down",
    );
}

#[tokio::test]
async fn a_missing_chromium_is_reported_clearly() {
    let check = |result: Result<_, DetectError>, expected: &str| match result {
        Ok(found) => panic!("found {found:?}"),
        Err(err) => assert!(err.to_string().contains(expected), "{err}"),
    };
    check(
        detect_chromium(Some(Path::new("/nonexistent/chromium")), None).await,
        "chromium path /nonexistent/chromium does not exist or is not executable",
    );
    check(
        detect_chromium(None, Some(std::ffi::OsStr::new("/nonexistent"))).await,
        "neither `chromium-headless-shell` nor `chromium` is on PATH",
    );
    check(
        detect_chromium(Some(Path::new("/bin/false")), None).await,
        "failed to print its version",
    );
    let found = chromium::chromium().await;
    assert!(found.version.starts_with("Chromium"), "{}", found.version);
}
