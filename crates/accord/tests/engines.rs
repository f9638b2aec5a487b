//! The engines through the real binary: a browser job on Chromium behind the
//! egress proxy, and `auto` moving a client-rendered page to the browser and
//! remembering its domain. Chromium is installed by `scripts/test.sh`; these
//! tests fail, never skip, without it.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use accord_model::{ExtractedValue, JobState, RunEngine};
use accord_test_support::{FixtureServer, APP_JOBS};
use common::*;

fn list_job(engine: &str, url: &str) -> String {
    format!(
        r##"{{"engine":"{engine}","timeout_seconds":60,"steps":[{{"action":"navigate","url":"{url}"}},{{"action":"extract","fields":{{"titles":{{"selector":"#jobs li a","all":true}}}}}}]}}"##
    )
}

fn titles(job: &accord_model::Job) -> Vec<String> {
    match job
        .result
        .as_ref()
        .map(|result| &result.extracted["titles"])
    {
        Some(ExtractedValue::List(titles)) => titles.clone(),
        other => panic!("no titles in {other:?}"),
    }
}

#[tokio::test]
async fn auto_moves_a_client_rendered_page_to_the_browser_and_remembers_its_domain() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up_with_browser(dir.path(), &[]);
    let client = accord.client();
    let url = fixture.url("/app/list");
    let want: Vec<String> = APP_JOBS.iter().map(|job| job.1.to_owned()).collect();

    // On HTTP the list is empty: the page is filled by a script.
    let http = client
        .submit_job(&job(&list_job("http", &url)), None)
        .await
        .unwrap()
        .job;
    let http = wait_finished(&client, http.id).await;
    assert_eq!(http.state, JobState::Succeeded, "{http:?}");
    assert!(titles(&http).is_empty(), "{http:?}");

    // `auto` starts on HTTP, sees a client-rendered page, hands over.
    let first = client
        .submit_job(&job(&list_job("auto", &url)), None)
        .await
        .unwrap()
        .job;
    let first = wait_finished(&client, first.id).await;
    assert_eq!(first.state, JobState::Succeeded, "{first:?}");
    assert_eq!(titles(&first), want);
    let result = first.result.as_ref().unwrap();
    assert_eq!(result.engine, RunEngine::Browser);
    let reason = result.engine_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("renders on the client"), "{reason}");
    let kinds = event_kinds(&client, first.id).await;
    assert_eq!(
        kinds.iter().filter(|kind| *kind == "claimed").count(),
        2,
        "one HTTP attempt, one browser attempt: {kinds:?}"
    );
    assert_eq!(
        first.attempts_left,
        first.max_attempts - 1,
        "the HTTP attempt is not counted"
    );

    // The next `auto` job for the domain goes to the browser directly.
    let second = client
        .submit_job(&job(&list_job("auto", &url)), None)
        .await
        .unwrap()
        .job;
    let second = wait_finished(&client, second.id).await;
    assert_eq!(titles(&second), want);
    let result = second.result.as_ref().unwrap();
    assert_eq!(result.engine, RunEngine::Browser);
    let reason = result.engine_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("remembered"), "{reason}");
    let kinds = event_kinds(&client, second.id).await;
    assert_eq!(
        kinds.iter().filter(|kind| *kind == "claimed").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_browser_job_runs_on_chromium_and_an_http_only_worker_never_takes_one() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A server with an HTTP-only worker beside it: the browser job waits.
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let url = fixture.url("/app/list");
    let browser_job = client
        .submit_job(&job(&list_job("browser", &url)), None)
        .await
        .unwrap()
        .job;
    let http_job = client
        .submit_job(&job(&list_job("http", &url)), None)
        .await
        .unwrap()
        .job;
    let done = wait_finished(&client, http_job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let waiting = client.get_job(browser_job.id).await.unwrap();
    assert_eq!(
        waiting.state,
        JobState::Available,
        "no HTTP-only worker takes a browser job"
    );
    drop(accord);

    // The same job on a server whose worker has a browser.
    let dir = tempfile::tempdir().unwrap();
    let accord = up_with_browser(dir.path(), &[]);
    let client = accord.client();
    let browser_job = client
        .submit_job(&job(&list_job("browser", &url)), None)
        .await
        .unwrap()
        .job;
    let done = wait_finished(&client, browser_job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.result.as_ref().unwrap().engine, RunEngine::Browser);
    assert_eq!(
        titles(&done),
        APP_JOBS
            .iter()
            .map(|job| job.1.to_owned())
            .collect::<Vec<_>>()
    );
}
