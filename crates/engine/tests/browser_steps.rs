//! The browser engine's steps against real Chromium and the fixture's
//! `/app/...` pages: what each step does to a page, and what a run keeps.

mod chromium;

use std::collections::BTreeMap;

use accord_engine::Artifact;
use accord_model::{ErrorKind, ExtractedValue, RunEngine};
use accord_test_support::{
    FixtureServer, APP_DATA_JSON, APP_JOBS, APP_LAZY_PAGE, APP_LAZY_PAGES, APP_PASSWORD,
    APP_REPORT_CSV, APP_TALL_HEIGHT, APP_USER,
};
use chromium::{assert_kind, engine, run_err, run_ok};
use serde_json::json;

fn one(text: &str) -> ExtractedValue {
    ExtractedValue::One(Some(text.to_owned()))
}

fn artifact<'a>(artifacts: &'a [Artifact], name: &str) -> &'a Artifact {
    artifacts
        .iter()
        .find(|artifact| artifact.name.as_str() == name)
        .unwrap_or_else(|| {
            let names: Vec<_> = artifacts.iter().map(|a| a.name.as_str()).collect();
            panic!("no artifact {name} among {names:?}")
        })
}

/// Width and height of a PNG, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (width, height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_rendered_list_is_extracted_as_records_in_one_step() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let output = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/list")},
            {"action": "wait_for", "selector": "li.job"},
            {"action": "extract", "fields": {
                "heading": {"selector": "h1"},
                "titles": {"selector": "li.job a", "all": true},
                "first_link": {"selector": "li.job a", "attribute": "href"},
                "status_html": {"selector": "#status", "html": true},
                "jobs": {"items": {"selector": "li.job", "fields": {
                    "id": {"attribute": "data-id"},
                    "title": {"selector": "a"},
                    "location": {"selector": ".loc"},
                }}},
            }},
        ]),
    )
    .await;
    let result = &output.result;
    assert_eq!(result.status, 200);
    assert_eq!(result.final_url, server.url("/app/list"));
    assert_eq!(result.engine, RunEngine::Browser);
    let records: Vec<BTreeMap<String, ExtractedValue>> = APP_JOBS
        .iter()
        .map(|(id, title, location)| {
            BTreeMap::from([
                ("id".to_owned(), one(id)),
                ("title".to_owned(), one(title)),
                ("location".to_owned(), one(location)),
            ])
        })
        .collect();
    let expected = BTreeMap::from([
        ("heading".to_owned(), one("Open positions")),
        (
            "titles".to_owned(),
            ExtractedValue::List(APP_JOBS.iter().map(|(_, t, _)| (*t).to_owned()).collect()),
        ),
        ("first_link".to_owned(), one("/app/jobs/101")),
        ("status_html".to_owned(), one("3 jobs")),
        ("jobs".to_owned(), ExtractedValue::Records(records)),
    ]);
    assert_eq!(result.extracted, expected);
    assert_eq!(result.timings.steps_ms.len(), 3);
    // Every run keeps the final page and the console log, listed in the result.
    let html = artifact(&output.artifacts, "page.html");
    assert!(String::from_utf8_lossy(&html.bytes).contains("Rust Engineer"));
    artifact(&output.artifacts, "console.json");
    let listed: Vec<&str> = result.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(listed, ["page.html", "console.json"]);
    assert_eq!(result.artifacts[0].sha256, html.sha256());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_cookie_does_not_reach_the_next_job() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // One slot: both jobs run in the same browser, one after the other.
    let engine = engine(1, dir.path()).await;
    let signed_in = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/login")},
            {"action": "fill", "selector": "#user", "value": APP_USER},
            {"action": "fill", "selector": "#password", "value": APP_PASSWORD},
            {"action": "click", "selector": "#sign-in"},
            {"action": "wait_for", "selector": "#welcome"},
            {"action": "extract", "fields": {"welcome": {"selector": "#welcome"}}},
        ]),
    )
    .await;
    assert_eq!(
        signed_in.result.extracted["welcome"],
        one(&format!("Welcome, {APP_USER}"))
    );
    assert_eq!(signed_in.result.final_url, server.url("/app/account"));
    let next = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/account")},
            {"action": "assert", "selector": "#anonymous", "selector_absent": "#welcome"},
        ]),
    )
    .await;
    assert_eq!(next.result.status, 200);
    let stats = engine.stats().await;
    assert_eq!(stats.launches, 1, "both jobs ran in the same browser");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_with_a_select_and_checkboxes_is_filled_and_submitted() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let output = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/form")},
            {"action": "fill", "selector": "#name", "value": "Ada <Lovelace>"},
            {"action": "select", "selector": "#size", "value": "l"},
            {"action": "check", "selector": "#gift"},
            {"action": "uncheck", "selector": "#newsletter"},
            {"action": "submit", "selector": "#order"},
            {"action": "wait_for", "selector": "dd#size"},
            {"action": "extract", "fields": {
                "name": {"selector": "#name"},
                "size": {"selector": "#size"},
                "gift": {"selector": "#gift"},
                "newsletter": {"selector": "#newsletter"},
            }},
        ]),
    )
    .await;
    let expected = BTreeMap::from([
        ("name".to_owned(), one("Ada <Lovelace>")),
        ("size".to_owned(), one("l")),
        ("gift".to_owned(), one("yes")),
        ("newsletter".to_owned(), one("no")),
    ]);
    assert_eq!(output.result.extracted, expected);
    assert!(output
        .result
        .final_url
        .starts_with(&server.url("/app/form/result?")));

    // An option the select does not have is refused, naming the choices.
    let (error, artifacts) = run_err(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/form")},
            {"action": "select", "selector": "#size", "value": "xl"},
        ]),
    )
    .await;
    assert_kind(
        &error,
        ErrorKind::Permanent,
        "has no option with the value \"xl\"",
    );
    assert_eq!(error.step, Some(1));
    // A failed run keeps the screenshot of the moment it failed.
    let failure = artifact(&artifacts, "failure.png");
    assert_eq!(png_size(&failure.bytes).0, 1280);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolling_loads_a_lazy_list_to_its_end() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let output = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/lazy")},
            {"action": "scroll", "max_rounds": 20},
            {"action": "extract", "fields": {"items": {"selector": "li.item", "all": true}}},
        ]),
    )
    .await;
    let expected: Vec<String> = (0..APP_LAZY_PAGE * (APP_LAZY_PAGES + 1))
        .map(|n| format!("Item {n}"))
        .collect();
    assert_eq!(
        output.result.extracted["items"],
        ExtractedValue::List(expected)
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_endpoints_are_read_with_pointers_and_paths() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let output = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/api/jobs")},
            {"action": "extract", "fields": {
                "total": {"json_pointer": "/total"},
                "first": {"json_pointer": "/jobs/0/title"},
                "titles": {"jsonpath": "$.jobs[*].title", "all": true},
                "missing": {"json_pointer": "/nope"},
            }},
        ]),
    )
    .await;
    let extracted = &output.result.extracted;
    assert_eq!(extracted["total"], ExtractedValue::Json(json!(3)));
    assert_eq!(extracted["first"], one(APP_JOBS[0].1));
    assert_eq!(
        extracted["titles"],
        ExtractedValue::List(APP_JOBS.iter().map(|(_, t, _)| (*t).to_owned()).collect())
    );
    assert_eq!(extracted["missing"], ExtractedValue::One(None));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_download_by_url_and_by_click_with_a_size_cap() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let output = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/downloads")},
            {"action": "download", "url": server.url("/app/download/report.csv"), "name": "by-url.csv"},
            {"action": "download", "selector": "#report"},
        ]),
    )
    .await;
    let by_url = artifact(&output.artifacts, "by-url.csv");
    assert_eq!(by_url.bytes, APP_REPORT_CSV.as_bytes());
    assert_eq!(by_url.content_type, "text/csv");
    let by_click = artifact(&output.artifacts, "step-2-download");
    assert_eq!(by_click.bytes, APP_REPORT_CSV.as_bytes());
    let listed = output
        .result
        .artifacts
        .iter()
        .find(|a| a.name.as_str() == "step-2-download")
        .unwrap();
    assert_eq!(
        listed.sha256,
        accord_model::Sha256Digest::of(APP_REPORT_CSV.as_bytes())
    );
    assert_eq!(listed.size, APP_REPORT_CSV.len() as u64);

    for download in [
        json!({"action": "download", "url": server.url("/app/download/big/2048"), "max_bytes": 1_000_000}),
        json!({"action": "download", "selector": "#big", "max_bytes": 1_000_000}),
    ] {
        let (error, _) = run_err(
            &engine,
            json!([{"action": "navigate", "url": server.url("/app/downloads")}, download]),
        )
        .await;
        assert_kind(
            &error,
            ErrorKind::Permanent,
            "larger than the limit of 1000000 bytes",
        );
    }
    let (error, _) = run_err(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/downloads")},
            {"action": "download", "url": server.url("/status/404")},
        ]),
    )
    .await;
    assert_kind(&error, ErrorKind::Permanent, "answered with status 404");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_have_the_declared_size_every_time() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let steps = json!([
        {"action": "navigate", "url": server.url("/app/tall")},
        {"action": "screenshot", "name": "viewport.png", "width": 800, "height": 600},
        {"action": "screenshot", "name": "full.png", "full_page": true, "width": 1024},
        {"action": "screenshot", "name": "element.png", "selector": "#head"},
        {"action": "extract", "fields": {"width": {"selector": "#head"}}},
    ]);
    let first = run_ok(&engine, steps.clone()).await;
    let second = run_ok(&engine, steps).await;
    for output in [&first, &second] {
        assert_eq!(
            png_size(&artifact(&output.artifacts, "viewport.png").bytes),
            (800, 600)
        );
        assert_eq!(
            png_size(&artifact(&output.artifacts, "full.png").bytes),
            (1024, APP_TALL_HEIGHT)
        );
    }
    let element = |output: &accord_engine::RunOutput| {
        png_size(&artifact(&output.artifacts, "element.png").bytes)
    };
    assert_eq!(element(&first), element(&second));
    assert_eq!(
        element(&first).0,
        1280,
        "a block element spans the default width"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_errors_are_kept_and_can_be_asserted() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let (error, artifacts) = run_err(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/console")},
            {"action": "assert", "text": "Console", "no_console_errors": true},
        ]),
    )
    .await;
    assert_kind(
        &error,
        ErrorKind::Permanent,
        "2 errors (the first: \"fixture error: broken widget\")",
    );
    assert_eq!(error.step, Some(1));
    let console: serde_json::Value =
        serde_json::from_slice(&artifact(&artifacts, "console.json").bytes).unwrap();
    let texts: Vec<(&str, &str)> = console["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["level"].as_str().unwrap(), e["text"].as_str().unwrap()))
        .collect();
    assert_eq!(texts[0], ("log", "fixture says hello"));
    assert_eq!(texts[1], ("error", "fixture error: broken widget"));
    assert_eq!(texts[2].0, "exception");
    assert!(texts[2].1.contains("fixture exception"), "{texts:?}");
    // A page without errors passes, and `evaluate` returns JSON.
    let output = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/app/xhr")},
            {"action": "wait_for", "text": "beta"},
            {"action": "assert", "no_console_errors": true, "text_absent": "gamma", "status": 200},
            {"action": "evaluate", "expression": "({n: document.querySelectorAll('#data li').length, ok: true})", "field": "counted"},
        ]),
    )
    .await;
    assert_eq!(
        output.result.extracted["counted"],
        ExtractedValue::Json(json!({"n": 2, "ok": true}))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_loads_and_missing_elements_are_classified() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let navigate = |url: String| json!([{"action": "navigate", "url": url}]);
    let cases = [
        (navigate(server.url("/status/503")), ErrorKind::Retryable, "answered with status 503"),
        (
            navigate("http://accord-fixture.invalid/".to_owned()),
            ErrorKind::Retryable,
            "could not resolve the host of http://accord-fixture.invalid/ (net::ERR_NAME_NOT_RESOLVED)",
        ),
        (
            navigate(format!("http://127.0.0.1:{closed_port}/")),
            ErrorKind::Retryable,
            "(net::ERR_CONNECTION_REFUSED)",
        ),
        (
            json!([
                {"action": "navigate", "url": server.url("/page")},
                {"action": "wait_for", "selector": "#missing", "timeout_ms": 300},
            ]),
            ErrorKind::Permanent,
            "step 1 (`wait_for`): an element matching `#missing` becoming visible did not happen within 300ms",
        ),
        (
            json!([
                {"action": "navigate", "url": server.url("/page")},
                {"action": "assert", "text": "Goodbye"},
            ]),
            ErrorKind::Permanent,
            "assert failed: expected text \"Goodbye\" in the page",
        ),
        (
            json!([
                {"action": "navigate", "url": server.url("/page")},
                {"action": "evaluate", "expression": "nope.nope", "field": "x"},
            ]),
            ErrorKind::Permanent,
            "the expression threw: ReferenceError: nope is not defined",
        ),
    ];
    for (steps, kind, message) in cases {
        let (error, _) = run_err(&engine, steps).await;
        assert_kind(&error, kind, message);
    }
    // An error status the job accepts is a page like any other; a 404 is
    // kept as the page (an `assert` can check it).
    let output = run_ok(
        &engine,
        json!([
            {"action": "navigate", "url": server.url("/status/503"), "accept_error_status": true},
            {"action": "assert", "status": 503},
            {"action": "navigate", "url": server.url("/status/404")},
            {"action": "assert", "status": 404, "text": "status 404"},
        ]),
    )
    .await;
    assert_eq!(output.result.status, 404);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_captures_record_matching_requests_without_credentials() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let output = run_ok(
        &engine,
        json!([
            // Before the first load: it sees the page's own request too.
            {"action": "capture_network", "url_pattern": "/app/", "name": "all.json"},
            {"action": "navigate", "url": server.url("/app/xhr")},
            {"action": "wait_for", "text": "beta"},
            {"action": "navigate", "url": server.url("/page")},
            // From here on only: the page's data was fetched before.
            {"action": "capture_network", "url_pattern": "*/app/api/*", "max_body_bytes": 5},
            {"action": "navigate", "url": server.url("/app/xhr")},
            {"action": "wait_for", "text": "beta"},
        ]),
    )
    .await;
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&artifact(&output.artifacts, name).bytes).unwrap()
    };
    let all = read("all.json");
    let urls: Vec<&str> = all["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|exchange| exchange["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            server.url("/app/xhr"),
            server.url("/app/api/data"),
            server.url("/app/xhr"),
            server.url("/app/api/data"),
        ]
    );
    let data = &all["exchanges"][1];
    assert_eq!(data["method"], "GET");
    assert_eq!(data["status"], 200);
    assert_eq!(data["body"]["encoding"], "utf8");
    assert_eq!(data["body"]["data"], APP_DATA_JSON);
    assert_eq!(data["body"]["truncated"], false);
    let names = |headers: &serde_json::Value| -> Vec<String> {
        headers
            .as_array()
            .unwrap()
            .iter()
            .map(|header| header["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let request_headers = names(&data["request_headers"]);
    assert!(
        request_headers.contains(&"x-fixture".to_owned()),
        "{request_headers:?}"
    );
    for secret in ["authorization", "cookie", "set-cookie"] {
        assert!(
            !request_headers.contains(&secret.to_owned()),
            "{request_headers:?}"
        );
        assert!(!names(&data["response_headers"]).contains(&secret.to_owned()));
    }
    // (The page's own body, captured too, holds the script that sends it.)
    let header_values = data["request_headers"].to_string() + &data["response_headers"].to_string();
    assert!(!header_values.contains("fixture-secret"), "{header_values}");
    assert!(!header_values.contains("fixture-cookie"), "{header_values}");
    let later = read("step-4-network.json");
    let exchanges = later["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), 1, "{later}");
    assert_eq!(exchanges[0]["url"], server.url("/app/api/data"));
    assert_eq!(exchanges[0]["body"]["data"], &APP_DATA_JSON[..5]);
    assert_eq!(exchanges[0]["body"]["truncated"], true);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_reads_every_page_and_an_optional_link_ends_the_job() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(1, dir.path()).await;
    let mut steps = vec![json!({"action": "navigate", "url": server.url("/paged/1")})];
    for page in 1..=5 {
        if page > 1 {
            steps.push(json!({"action": "follow", "selector": "a[rel=next]", "optional": true}));
        }
        steps.push(json!({"action": "extract", "fields": {
            format!("p{page}"): {"selector": "li.job .title", "all": true}
        }}));
    }
    let output = run_ok(&engine, serde_json::Value::Array(steps)).await;
    let result = &output.result;
    assert_eq!(result.extracted.len(), 3, "{:?}", result.extracted);
    for page in 1..=accord_test_support::PAGED_PAGES {
        assert_eq!(
            result.extracted[&format!("p{page}")],
            ExtractedValue::List(vec![format!("job-{page}-1"), format!("job-{page}-2")])
        );
    }
    assert_eq!(result.final_url, server.url("/paged/3"));
    engine.shutdown().await;
}
