//! The HTTP engine's share of the step set against the fixture server:
//! extraction from HTML records and JSON APIs, the new checks, downloads,
//! network captures and saved HTML, the artifacts a run keeps (also when
//! it fails), and the steps it refuses. Loopback only, so private targets
//! are allowed.

use accord_engine::{
    BodyEncoding, EngineConfig, Executor, HttpEngine, NetworkCapture, RunFailure, RunOutput,
};
use accord_model::{
    ArtifactName, Engine, ErrorKind, ExtractedValue, JobSpec, RunEngine, Sha256Digest, Step,
};
use accord_test_support::{
    blob_bytes, FixtureServer, JOBS_COOKIE, JOBS_HTML, JOBS_JSON, PAGE_HTML, REPORT_CSV,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Runs steps written as JSON, `{base}` standing for the fixture's origin.
async fn run(server: &FixtureServer, steps: &str) -> Result<RunOutput, RunFailure> {
    let steps = steps.replace("{base}", server.url("").trim_end_matches('/'));
    let steps: Vec<Step> = serde_json::from_str(&steps).expect("test steps parse");
    let engine = HttpEngine::new(EngineConfig {
        egress: accord_model::EgressPolicy::AllowPrivate,
        ..EngineConfig::default()
    })
    .expect("engine builds");
    let spec = JobSpec {
        engine: Engine::Http,
        steps,
        timeout_seconds: 30,
    };
    engine.run(&spec, &CancellationToken::new()).await
}

async fn ok(server: &FixtureServer, steps: &str) -> RunOutput {
    run(server, steps)
        .await
        .unwrap_or_else(|failure| panic!("{steps}: {}", failure.error))
}

/// Asserts a failure's kind, step, and message (which must contain `message`).
#[track_caller]
fn check_failure(
    outcome: Result<RunOutput, RunFailure>,
    kind: ErrorKind,
    step: usize,
    message: &str,
) -> RunFailure {
    let Err(failure) = outcome else {
        panic!("the run should fail with {message:?}");
    };
    let err = &failure.error;
    assert_eq!((err.kind(), err.step()), (kind, Some(step)), "{err}");
    assert!(
        err.to_string().contains(message),
        "{err} should say {message:?}"
    );
    failure
}

fn as_json(value: &ExtractedValue) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

fn artifact<'o>(
    artifacts: &'o [accord_engine::Artifact],
    name: &str,
) -> &'o accord_engine::Artifact {
    artifacts
        .iter()
        .find(|artifact| artifact.name.as_str() == name)
        .unwrap_or_else(|| {
            panic!(
                "no artifact {name} in {:?}",
                artifacts
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
            )
        })
}

#[tokio::test]
async fn records_html_and_json_are_extracted() {
    let server = FixtureServer::start().await;
    let output = ok(
        &server,
        r#"[
            {"action": "navigate", "url": "{base}/jobs"},
            {"action": "extract", "fields": {
                "jobs": {"items": {"selector": "li.job", "fields": {
                    "id": {"attribute": "data-id"},
                    "title": {"selector": "a"},
                    "link": {"selector": "a", "attribute": "href"},
                    "loc": {"selector": ".loc"},
                    "tags": {"selector": ".tag", "all": true}}}},
                "first_html": {"selector": "li.job", "html": true}}},
            {"action": "navigate", "url": "{base}/api/jobs"},
            {"action": "extract", "fields": {
                "total": {"json_pointer": "/total"},
                "titles": {"jsonpath": "$.jobs[*].title", "all": true},
                "remote": {"jsonpath": "$.jobs[?@.remote == true].id", "all": true},
                "first": {"jsonpath": "$.jobs[0]"},
                "next": {"json_pointer": "/meta/next"}}}
        ]"#,
    )
    .await;
    let extracted = &output.result.extracted;
    assert_eq!(
        as_json(&extracted["jobs"]),
        json!([
            {"id": "1", "title": "Rust engineer", "link": "/jobs/1", "loc": "Remote", "tags": ["rust", "async"]},
            {"id": "2", "title": "SRE", "link": "/jobs/2", "loc": "Berlin", "tags": ["ops"]},
            {"id": "3", "title": "Designer", "link": "/jobs/3", "loc": null, "tags": []}
        ])
    );
    assert_eq!(
        as_json(&extracted["first_html"]),
        json!("<a href=\"/jobs/1\">Rust engineer</a><span class=\"loc\">Remote</span><span class=\"tag\">rust</span><span class=\"tag\">async</span>")
    );
    let api: serde_json::Value = serde_json::from_str(JOBS_JSON).unwrap();
    assert_eq!(as_json(&extracted["total"]), json!(3));
    assert_eq!(
        as_json(&extracted["titles"]),
        json!(["Rust engineer", "SRE", "Designer"])
    );
    assert_eq!(as_json(&extracted["remote"]), json!([1, 3]));
    assert_eq!(as_json(&extracted["first"]), api["jobs"][0]);
    assert_eq!(extracted["next"], ExtractedValue::One(None));
    assert_eq!(output.result.engine, RunEngine::Http);
    assert!(output.artifacts.is_empty(), "an ordinary job keeps nothing");
    assert!(output.result.artifacts.is_empty());
    // The result reads back as it was written.
    let text = serde_json::to_string(&output.result).unwrap();
    assert_eq!(
        serde_json::from_str::<accord_model::JobResult>(&text).unwrap(),
        output.result
    );
}

#[tokio::test]
async fn a_json_source_on_a_page_that_is_not_json_fails_permanently() {
    let server = FixtureServer::start().await;
    check_failure(
        run(
            &server,
            r#"[{"action": "navigate", "url": "{base}/page"},
                {"action": "extract", "fields": {"x": {"json_pointer": "/a"}}}]"#,
        )
        .await,
        ErrorKind::Permanent,
        1,
        "step 1 (`extract`): the page is not JSON",
    );
}

#[tokio::test]
async fn the_new_checks() {
    let server = FixtureServer::start().await;
    let check = |assert: &'static str, expected: Result<(), &'static str>| {
        let server = &server;
        async move {
            let steps = format!(
                r#"[{{"action": "navigate", "url": "{{base}}/page"}}, {{"action": "assert", {assert}}}]"#
            );
            let outcome = run(server, &steps).await;
            match expected {
                Ok(()) => {
                    outcome.unwrap_or_else(|failure| panic!("{assert}: {}", failure.error));
                }
                Err(message) => {
                    check_failure(outcome, ErrorKind::Permanent, 1, message);
                }
            }
        }
    };
    check(r#""text_absent": "Goodbye""#, Ok(())).await;
    check(
        r#""text_absent": "intro""#,
        Err("step 1 (`assert`): assert failed: expected no text \"intro\" in the page"),
    )
    .await;
    check(r#""selector_absent": "table""#, Ok(())).await;
    check(
        r#""selector_absent": "ul li""#,
        Err("assert failed: expected no element matching `ul li`, got <li>"),
    )
    .await;
    check(r#""max_load_ms": 3600000"#, Ok(())).await;
    check(
        r#""no_console_errors": true"#,
        Err("step 1 (`assert`): the http engine cannot run this step"),
    )
    .await;
    // A slow page fails a load-time check (the fixture waits 50 ms).
    let outcome = run(
        &server,
        r#"[{"action": "navigate", "url": "{base}/slow/50"}, {"action": "assert", "max_load_ms": 10}]"#,
    )
    .await;
    check_failure(
        outcome,
        ErrorKind::Permanent,
        1,
        "expected the page loaded within 10 ms",
    );
}

#[tokio::test]
async fn downloads_keep_the_file_and_its_digest() {
    let server = FixtureServer::start().await;
    let output = ok(
        &server,
        r##"[
            {"action": "navigate", "url": "{base}/jobs"},
            {"action": "download", "selector": "a#report"},
            {"action": "download", "url": "{base}/files/blob/3", "name": "blob.bin", "max_bytes": 3072},
            {"action": "extract", "fields": {"h1": {"selector": "h1"}}}
        ]"##,
    )
    .await;
    let report = artifact(&output.artifacts, "step-1-download");
    assert_eq!(report.bytes.as_ref(), REPORT_CSV.as_bytes());
    assert_eq!(report.content_type, "text/csv");
    let blob = artifact(&output.artifacts, "blob.bin");
    assert_eq!(blob.bytes.as_ref(), blob_bytes(3).as_slice());
    assert_eq!(blob.content_type, "application/octet-stream");
    let refs = &output.result.artifacts;
    assert_eq!(refs.len(), 2);
    for (reference, artifact) in refs.iter().zip(&output.artifacts) {
        assert_eq!(reference.name, artifact.name);
        assert_eq!(reference.size, u64::try_from(artifact.bytes.len()).unwrap());
        assert_eq!(reference.sha256, Sha256Digest::of(&artifact.bytes));
    }
    assert_eq!(refs[0].sha256, Sha256Digest::of(REPORT_CSV.as_bytes()));
    assert_eq!(
        output.result.extracted["h1"],
        ExtractedValue::One(Some("Open positions".into()))
    );
    // The page stays the one navigated to.
    assert_eq!(output.result.final_url, server.url("/jobs"));
    assert_eq!(output.result.timings.steps_ms.len(), 4);
    assert_eq!(server.hits("/files/report.csv"), 1);
}

#[tokio::test]
async fn downloads_fail_as_they_should() {
    let server = FixtureServer::start().await;
    let check = |step: &'static str, kind: ErrorKind, message: &'static str| {
        let server = &server;
        async move {
            let steps = format!(r#"[{{"action": "navigate", "url": "{{base}}/jobs"}}, {step}]"#);
            check_failure(run(server, &steps).await, kind, 1, message);
        }
    };
    check(
        r#"{"action": "download", "url": "{base}/files/blob/65", "max_bytes": 65535}"#,
        ErrorKind::Permanent,
        "step 1 (`download`): response body of",
    )
    .await;
    check(
        r#"{"action": "download", "url": "{base}/status/404"}"#,
        ErrorKind::Permanent,
        "answered with status 404",
    )
    .await;
    check(
        r#"{"action": "download", "url": "{base}/status/503"}"#,
        ErrorKind::Retryable,
        "answered with status 503",
    )
    .await;
    check(
        r#"{"action": "download", "url": "{base}/status/429"}"#,
        ErrorKind::Retryable,
        "answered with status 429",
    )
    .await;
    check(
        r#"{"action": "download", "selector": "a.missing"}"#,
        ErrorKind::Permanent,
        "step 1 (`download`): no element matches `a.missing`",
    )
    .await;
    check(
        r##"{"action": "download", "selector": "a#nowhere"}"##,
        ErrorKind::Permanent,
        "has no link to follow",
    )
    .await;
    check(
        r#"{"action": "download", "url": "{base}/redirect?to=file:///etc/passwd"}"#,
        ErrorKind::Permanent,
        "refused file:///etc/passwd: scheme `file`",
    )
    .await;
}

#[tokio::test]
async fn captures_record_the_responses_without_credentials() {
    let server = FixtureServer::start().await;
    let output = ok(
        &server,
        r#"[
            {"action": "capture_network", "url_pattern": "/api/"},
            {"action": "capture_network", "url_pattern": "*/files/*", "max_body_bytes": 10, "name": "files.json"},
            {"action": "navigate", "url": "{base}/api/jobs"},
            {"action": "navigate", "url": "{base}/page"},
            {"action": "download", "url": "{base}/files/report.csv"}
        ]"#,
    )
    .await;
    let api: NetworkCapture =
        serde_json::from_slice(&artifact(&output.artifacts, "step-0-network.json").bytes).unwrap();
    assert_eq!(api.url_pattern, "/api/");
    assert_eq!(api.exchanges.len(), 1, "only the API matched: {api:?}");
    let exchange = &api.exchanges[0];
    assert_eq!((exchange.method.as_str(), exchange.status), ("GET", 200));
    assert_eq!(exchange.url, server.url("/api/jobs"));
    let names: Vec<&str> = exchange
        .response_headers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert!(names.contains(&"content-type"), "{names:?}");
    assert!(!names.contains(&"set-cookie"), "{names:?}");
    let captured = serde_json::to_string(&api).unwrap();
    assert!(!captured.contains("fixture-secret"), "{captured}");
    assert!(!JOBS_COOKIE.is_empty());
    assert!(exchange
        .request_headers
        .iter()
        .any(|h| h.name == "user-agent"));
    let body = exchange.body.as_ref().unwrap();
    assert_eq!(
        (body.encoding, body.data.as_str(), body.truncated),
        (BodyEncoding::Utf8, JOBS_JSON, false)
    );

    let files: NetworkCapture =
        serde_json::from_slice(&artifact(&output.artifacts, "files.json").bytes).unwrap();
    assert_eq!(files.exchanges.len(), 1);
    let body = files.exchanges[0].body.as_ref().unwrap();
    assert_eq!(
        (body.data.as_str(), body.size, body.truncated),
        (&REPORT_CSV[..10], 10, true)
    );
    assert_eq!(
        output
            .result
            .artifacts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["step-4-download", "step-0-network.json", "files.json"]
    );
}

#[tokio::test]
async fn a_failed_run_keeps_what_it_captured() {
    let server = FixtureServer::start().await;
    let failure = check_failure(
        run(
            &server,
            r#"[
                {"action": "capture_network", "url_pattern": "/status/"},
                {"action": "navigate", "url": "{base}/page"},
                {"action": "download", "url": "{base}/files/report.csv", "name": "r.csv"},
                {"action": "navigate", "url": "{base}/status/503"}
            ]"#,
        )
        .await,
        ErrorKind::Retryable,
        3,
        "step 3 (`navigate`):",
    );
    assert_eq!(
        artifact(&failure.artifacts, "r.csv").bytes.as_ref(),
        REPORT_CSV.as_bytes()
    );
    let capture: NetworkCapture =
        serde_json::from_slice(&artifact(&failure.artifacts, "step-0-network.json").bytes).unwrap();
    assert_eq!(capture.exchanges.len(), 1, "{capture:?}");
    assert_eq!(capture.exchanges[0].status, 503);
    assert_eq!(
        capture.exchanges[0].body.as_ref().map(|b| b.data.as_str()),
        Some("<html><body><p>status 503</p></body></html>")
    );
}

#[tokio::test]
async fn the_first_failure_in_step_order_wins() {
    let server = FixtureServer::start().await;
    // The assert after the download would fail too, but the download comes first.
    check_failure(
        run(
            &server,
            r#"[
                {"action": "navigate", "url": "{base}/jobs"},
                {"action": "download", "url": "{base}/status/404"},
                {"action": "assert", "text": "never there"}
            ]"#,
        )
        .await,
        ErrorKind::Permanent,
        1,
        "status 404",
    );
    // A download before a failing assert is fetched and kept.
    let failure = check_failure(
        run(
            &server,
            r#"[
                {"action": "navigate", "url": "{base}/jobs"},
                {"action": "download", "url": "{base}/files/report.csv"},
                {"action": "assert", "text": "never there"},
                {"action": "download", "url": "{base}/files/blob/1"}
            ]"#,
        )
        .await,
        ErrorKind::Permanent,
        2,
        "step 2 (`assert`): assert failed",
    );
    assert_eq!(failure.artifacts.len(), 1);
    assert_eq!(
        server.hits("/files/blob/"),
        0,
        "nothing runs after the failure"
    );
}

#[tokio::test]
async fn save_html_keeps_the_page_as_served() {
    let server = FixtureServer::start().await;
    let output = ok(
        &server,
        r#"[
            {"action": "navigate", "url": "{base}/page"},
            {"action": "save_html"},
            {"action": "navigate", "url": "{base}/jobs"},
            {"action": "save_html", "name": "jobs.html"}
        ]"#,
    )
    .await;
    let first = artifact(&output.artifacts, "step-1-page.html");
    assert_eq!(first.bytes.as_ref(), PAGE_HTML.as_bytes());
    assert_eq!(first.content_type, "text/html; charset=utf-8");
    assert_eq!(
        artifact(&output.artifacts, "jobs.html").bytes.as_ref(),
        JOBS_HTML.as_bytes()
    );
    assert_eq!(
        output
            .result
            .artifacts
            .iter()
            .map(|a| a.name.clone())
            .collect::<Vec<_>>(),
        [
            ArtifactName::new("step-1-page.html").unwrap(),
            ArtifactName::new("jobs.html").unwrap()
        ]
    );
}

#[tokio::test]
async fn steps_that_need_a_browser_are_refused() {
    let server = FixtureServer::start().await;
    for step in [
        r#"{"action": "wait_for", "selector": "h1"}"#,
        r#"{"action": "wait_for", "delay_ms": 1}"#,
        r#"{"action": "click", "selector": "a"}"#,
        r#"{"action": "fill", "selector": "input", "value": "x"}"#,
        r#"{"action": "select", "selector": "select", "value": "x"}"#,
        r#"{"action": "check", "selector": "input"}"#,
        r#"{"action": "uncheck", "selector": "input"}"#,
        r#"{"action": "press", "key": "Enter"}"#,
        r#"{"action": "submit"}"#,
        r#"{"action": "scroll"}"#,
        r#"{"action": "hover", "selector": "a"}"#,
        r#"{"action": "screenshot", "full_page": true}"#,
        r#"{"action": "evaluate", "expression": "document.title", "field": "t"}"#,
        r#"{"action": "assert", "no_console_errors": true}"#,
    ] {
        let steps = format!(
            r#"[{{"action": "navigate", "url": "{{base}}/page"}},
                {{"action": "extract", "fields": {{"t": {{"selector": "title"}}}}}},
                {step}]"#
        );
        let action = serde_json::from_str::<Step>(step).unwrap().action();
        check_failure(
            run(&server, &steps).await,
            ErrorKind::Permanent,
            2,
            &format!("step 2 (`{action}`): the http engine cannot run this step; submit the job with `\"engine\": \"browser\"`"),
        );
    }
}

/// The steps of a paginated read: each page's titles under `p{n}`, then an
/// optional `follow` of the next-page link, up to `pages` pages.
fn paged_steps(first: &str, pages: u32) -> String {
    let mut steps = vec![json!({"action": "navigate", "url": first})];
    for page in 1..=pages {
        if page > 1 {
            steps.push(json!({"action": "follow", "selector": "a[rel=next]", "optional": true}));
        }
        steps.push(json!({"action": "extract", "fields": {
            format!("p{page}"): {"selector": "li.job .title", "all": true}
        }}));
    }
    serde_json::Value::Array(steps).to_string()
}

#[tokio::test]
async fn follow_reads_every_page_and_an_optional_link_ends_the_job() {
    let server = FixtureServer::start().await;
    // Five pages asked for, three served: the job ends at the third.
    let output = ok(&server, &paged_steps(&server.url("/paged/1"), 5)).await;
    let result = &output.result;
    let titles =
        |page: u32| ExtractedValue::List(vec![format!("job-{page}-1"), format!("job-{page}-2")]);
    assert_eq!(result.extracted.len(), 3, "{:?}", result.extracted);
    for page in 1..=accord_test_support::PAGED_PAGES {
        assert_eq!(result.extracted[&format!("p{page}")], titles(page));
    }
    assert_eq!(result.final_url, server.url("/paged/3"));
    assert_eq!(server.hits("/paged/"), 3);
    // Without `optional`, a missing link fails the step.
    let strict = r#"[{"action": "navigate", "url": "{base}/paged/3"},
        {"action": "follow", "selector": "a[rel=next]"}]"#;
    check_failure(
        run(&server, strict).await,
        ErrorKind::Permanent,
        1,
        "no element matches `a[rel=next]`",
    );
}
