//! The HTTP engine against the local fixture server (loopback only, so these
//! tests allow private targets; the guard has its own tests).

use std::collections::BTreeMap;
use std::time::Duration;

use accord_engine::{EngineConfig, EngineError, Executor, HttpEngine};
use accord_model::{Engine, ErrorKind, ExtractedValue, JobResult, JobSpec, Step};
use accord_test_support::{FixtureServer, PAGE_H1, PAGE_INTRO, PAGE_LINKS, PAGE_TITLE, TEXT_BODY};
use tokio_util::sync::CancellationToken;

fn config() -> EngineConfig {
    EngineConfig {
        egress: accord_model::EgressPolicy::AllowPrivate,
        ..EngineConfig::default()
    }
}

/// Steps written as JSON, with `{base}` standing for the fixture's origin.
fn spec(server: &FixtureServer, steps: &str) -> JobSpec {
    let steps = steps.replace("{base}", server.url("").trim_end_matches('/'));
    let steps: Vec<Step> = serde_json::from_str(&steps).expect("test steps parse");
    JobSpec {
        engine: Engine::Http,
        steps,
        timeout_seconds: 30,
    }
}

async fn run_with(
    config: EngineConfig,
    server: &FixtureServer,
    steps: &str,
) -> Result<JobResult, EngineError> {
    let engine = HttpEngine::new(config).expect("engine builds");
    engine
        .run(&spec(server, steps), &CancellationToken::new())
        .await
        .map(|output| output.result)
        .map_err(|failure| failure.error)
}

async fn run(server: &FixtureServer, steps: &str) -> Result<JobResult, EngineError> {
    run_with(config(), server, steps).await
}

/// Asserts a failure's kind, step and message (which must contain `message`).
#[track_caller]
fn check_err(outcome: Result<JobResult, EngineError>, kind: ErrorKind, step: usize, message: &str) {
    let err = outcome.expect_err("the run should fail");
    assert_eq!((err.kind(), err.step()), (kind, Some(step)), "{err}");
    assert!(
        err.to_string().contains(message),
        "{err:?} should say {message:?}"
    );
}

fn one(text: &str) -> ExtractedValue {
    ExtractedValue::One(Some(text.to_owned()))
}

#[tokio::test]
async fn extracts_the_fixture_page() {
    let server = FixtureServer::start().await;
    let result = run(
        &server,
        r#"[
            {"action": "navigate", "url": "{base}/page"},
            {"action": "extract", "fields": {
                "title": {"selector": "title"},
                "h1": {"selector": "h1"},
                "intro": {"selector": "p.intro"},
                "first_link": {"selector": "a", "attribute": "href"},
                "links": {"selector": "a", "attribute": "href", "all": true},
                "link_texts": {"selector": "li a", "all": true},
                "missing": {"selector": "h2"},
                "missing_all": {"selector": "h2", "all": true}
            }}
        ]"#,
    )
    .await
    .expect("the run succeeds");

    let expected = BTreeMap::from([
        ("title".to_owned(), one(PAGE_TITLE)),
        ("h1".to_owned(), one(PAGE_H1)),
        ("intro".to_owned(), one(PAGE_INTRO)),
        ("first_link".to_owned(), one(PAGE_LINKS[0])),
        (
            "links".to_owned(),
            ExtractedValue::List(PAGE_LINKS.iter().map(|s| (*s).to_owned()).collect()),
        ),
        (
            "link_texts".to_owned(),
            ExtractedValue::List(vec!["A".into(), "B".into(), "C".into()]),
        ),
        ("missing".to_owned(), ExtractedValue::One(None)),
        ("missing_all".to_owned(), ExtractedValue::List(Vec::new())),
    ]);
    assert_eq!(result.extracted, expected);
    assert_eq!(result.status, 200);
    assert_eq!(result.final_url, server.url("/page"));
    assert_eq!(result.timings.steps_ms.len(), 2);
    assert!(result.timings.total_ms >= result.timings.fetch_ms);
}

#[tokio::test]
async fn fields_of_several_pages_merge_and_the_last_page_is_reported() {
    let server = FixtureServer::start().await;
    let result = run(
        &server,
        r#"[
            {"action": "navigate", "url": "{base}/page"},
            {"action": "extract", "fields": {"title": {"selector": "title"}, "h1": {"selector": "h1"}}},
            {"action": "navigate", "url": "{base}/status/404"},
            {"action": "extract", "fields": {"title": {"selector": "p"}}}
        ]"#,
    )
    .await
    .expect("the run succeeds");
    assert_eq!(result.extracted["title"], one("status 404"));
    assert_eq!(result.extracted["h1"], one(PAGE_H1));
    assert_eq!(result.status, 404);
    assert_eq!(result.final_url, server.url("/status/404"));
    assert_eq!(result.timings.steps_ms.len(), 4);
}

#[tokio::test]
async fn asserts_pass_and_fail() {
    let server = FixtureServer::start().await;
    let check = |assert: &'static str, expected: Result<(), &'static str>| {
        let server = &server;
        async move {
            let steps = format!(r#"[{{"action": "navigate", "url": "{{base}}/page"}}, {assert}]"#);
            let outcome = run(server, &steps).await;
            match expected {
                Ok(()) => {
                    outcome.unwrap_or_else(|err| panic!("{assert}: {err}"));
                }
                Err(message) => check_err(outcome, ErrorKind::Permanent, 1, message),
            }
        }
    };
    check(r#"{"action": "assert", "status": 200}"#, Ok(())).await;
    check(
        r#"{"action": "assert", "status": 404}"#,
        Err("assert failed: expected status 404, got 200"),
    )
    .await;
    check(r#"{"action": "assert", "text": "Hello Accord"}"#, Ok(())).await;
    check(r#"{"action": "assert", "text": "Some intro text"}"#, Ok(())).await;
    check(
        r#"{"action": "assert", "text": "Goodbye"}"#,
        Err("assert failed: expected text \"Goodbye\" in the page, got page text \"Hello Accord Some intro text A B C\""),
    )
    .await;
    check(r#"{"action": "assert", "selector": "ul > li > a"}"#, Ok(())).await;
    check(
        r#"{"action": "assert", "selector": "table"}"#,
        Err("assert failed: expected an element matching `table`, got none"),
    )
    .await;
    check(
        r#"{"action": "assert", "status": 200, "text": "Hello", "selector": "h1"}"#,
        Ok(()),
    )
    .await;
}

#[tokio::test]
async fn flaky_pages_fail_retryably_then_succeed() {
    let server = FixtureServer::start().await;
    let steps = r#"[{"action": "navigate", "url": "{base}/flaky/job1/1"}]"#;
    check_err(
        run(&server, steps).await,
        ErrorKind::Retryable,
        0,
        "answered with status 503",
    );
    let result = run(&server, steps)
        .await
        .expect("the second attempt succeeds");
    assert_eq!(result.status, 200);
    assert_eq!(server.hits("/flaky/job1/"), 2);
}

#[tokio::test]
async fn error_statuses() {
    let server = FixtureServer::start().await;
    let check = |path: &'static str, accept: bool, expected: Result<u16, ErrorKind>| {
        let server = &server;
        async move {
            let steps = format!(
                r#"[{{"action": "navigate", "url": "{{base}}{path}", "accept_error_status": {accept}}}]"#
            );
            let outcome = run(server, &steps).await;
            match expected {
                Ok(status) => assert_eq!(outcome.expect(path).status, status, "{path}"),
                Err(kind) => check_err(outcome, kind, 0, "answered with status"),
            }
        }
    };
    check("/status/503", false, Err(ErrorKind::Retryable)).await;
    check("/status/500", false, Err(ErrorKind::Retryable)).await;
    check("/status/429", false, Err(ErrorKind::Retryable)).await;
    check("/status/503", true, Ok(503)).await;
    check("/status/429", true, Ok(429)).await;
    check("/status/404", false, Ok(404)).await;
    check("/status/403", false, Ok(403)).await;
    check("/status/204", false, Ok(204)).await;
    check("/status/304", false, Ok(304)).await;
}

#[tokio::test]
async fn accepted_error_pages_stay_the_current_page() {
    let server = FixtureServer::start().await;
    let result = run(
        &server,
        r#"[
            {"action": "navigate", "url": "{base}/flaky/k/5", "accept_error_status": true},
            {"action": "assert", "status": 503, "text": "flaky"}
        ]"#,
    )
    .await
    .expect("the error page is kept");
    assert_eq!(result.status, 503);
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let server = FixtureServer::start().await;
    let result = run(
        &server,
        r#"[{"action": "navigate", "url": "{base}/redirect-chain/3"}]"#,
    )
    .await
    .expect("a short chain is followed");
    assert_eq!(result.final_url, server.url("/redirect-chain/0"));
    assert_eq!(result.status, 200);
    assert_eq!(server.hits("/redirect-chain/"), 4);

    let to = server.url("/page");
    let steps = format!(r#"[{{"action": "navigate", "url": "{{base}}/redirect?to={to}"}}]"#);
    let result = run(&server, &steps)
        .await
        .expect("an absolute redirect is followed");
    assert_eq!(result.final_url, to);

    let result = run(
        &server,
        r#"[{"action": "navigate", "url": "{base}/redirect-chain/10"}]"#,
    )
    .await
    .expect("exactly max_redirects hops are allowed");
    assert_eq!(result.final_url, server.url("/redirect-chain/0"));

    check_err(
        run(
            &server,
            r#"[{"action": "navigate", "url": "{base}/redirect-chain/11"}]"#,
        )
        .await,
        ErrorKind::Permanent,
        0,
        "too many redirects: gave up after 10",
    );
}

#[tokio::test]
async fn redirects_to_other_schemes_are_refused() {
    let server = FixtureServer::start().await;
    check_err(
        run(
            &server,
            r#"[{"action": "navigate", "url": "{base}/redirect?to=file:///etc/passwd"}]"#,
        )
        .await,
        ErrorKind::Permanent,
        0,
        "refused file:///etc/passwd: scheme `file` is not allowed; only http and https are",
    );
    check_err(
        run(
            &server,
            r#"[{"action": "navigate", "url": "{base}/redirect?to=gopher://example.com/x"}]"#,
        )
        .await,
        ErrorKind::Permanent,
        0,
        "refused gopher://example.com/x: scheme `gopher` is not allowed; only http and https are",
    );
}

#[tokio::test]
async fn bodies_are_capped() {
    let server = FixtureServer::start().await;
    let small = EngineConfig {
        max_body_bytes: 64 * 1024,
        ..config()
    };
    for path in ["/big", "/stream"] {
        let fits = format!(r#"[{{"action": "navigate", "url": "{{base}}{path}/64"}}]"#);
        run_with(small.clone(), &server, &fits)
            .await
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        let too_big = format!(r#"[{{"action": "navigate", "url": "{{base}}{path}/65"}}]"#);
        check_err(
            run_with(small.clone(), &server, &too_big).await,
            ErrorKind::Permanent,
            0,
            "is larger than the limit of 65536 bytes",
        );
    }
}

#[tokio::test]
async fn unsupported_steps_are_named() {
    let server = FixtureServer::start().await;
    check_err(
        run(
            &server,
            r#"[
                {"action": "navigate", "url": "{base}/page"},
                {"action": "extract", "fields": {"t": {"selector": "title"}}},
                {"action": "click", "selector": "a"}
            ]"#,
        )
        .await,
        ErrorKind::Permanent,
        2,
        "step 2 (`click`): the http engine cannot run this step; submit the job with `\"engine\": \"browser\"`",
    );
    check_err(
        run(
            &server,
            r#"[{"action": "navigate", "url": "{base}/"}, {"action": "screenshot"}]"#,
        )
        .await,
        ErrorKind::Permanent,
        1,
        "step 1 (`screenshot`): the http engine cannot run this step",
    );
}

#[tokio::test]
async fn page_steps_need_a_page() {
    let server = FixtureServer::start().await;
    check_err(
        run(
            &server,
            r#"[{"action": "extract", "fields": {"t": {"selector": "title"}}}]"#,
        )
        .await,
        ErrorKind::Permanent,
        0,
        "step 0 (`extract`): `extract` needs a page: run a `navigate` step before it",
    );
    check_err(
        run(&server, r#"[{"action": "assert", "status": 200}]"#).await,
        ErrorKind::Permanent,
        0,
        "`assert` needs a page",
    );
    assert_eq!(server.hits("/"), 0);
}

#[tokio::test]
async fn plain_text_is_read_as_a_page() {
    let server = FixtureServer::start().await;
    let result = run(
        &server,
        r#"[
            {"action": "navigate", "url": "{base}/text"},
            {"action": "extract", "fields": {"body": {"selector": "body"}}}
        ]"#,
    )
    .await
    .expect("the run succeeds");
    assert_eq!(result.extracted["body"], one(TEXT_BODY.trim()));
}

#[tokio::test]
async fn sends_the_configured_user_agent() {
    let server = FixtureServer::start().await;
    let steps = r##"[
        {"action": "navigate", "url": "{base}/user-agent"},
        {"action": "extract", "fields": {"ua": {"selector": "#ua"}}}
    ]"##;
    let result = run(&server, steps).await.expect("the run succeeds");
    assert_eq!(
        result.extracted["ua"],
        one(EngineConfig::DEFAULT_USER_AGENT)
    );
    assert!(EngineConfig::DEFAULT_USER_AGENT.starts_with("Accord/0."));

    let custom = EngineConfig {
        user_agent: "AccordTest/1.0 (+mailto:ops@example.com)".to_owned(),
        ..config()
    };
    let result = run_with(custom, &server, steps)
        .await
        .expect("the run succeeds");
    assert_eq!(
        result.extracted["ua"],
        one("AccordTest/1.0 (+mailto:ops@example.com)")
    );
}

#[tokio::test]
async fn slow_pages_time_out_retryably() {
    let server = FixtureServer::start().await;
    let impatient = EngineConfig {
        navigate_timeout: Duration::from_millis(200),
        ..config()
    };
    check_err(
        run_with(
            impatient,
            &server,
            r#"[{"action": "navigate", "url": "{base}/hang"}]"#,
        )
        .await,
        ErrorKind::Retryable,
        0,
        "timed out after 200ms",
    );
}

#[tokio::test]
async fn a_page_that_hung_once_loads_on_the_next_attempt() {
    let server = FixtureServer::start().await;
    let impatient = EngineConfig {
        navigate_timeout: Duration::from_millis(200),
        ..config()
    };
    let steps = r#"[{"action": "navigate", "url": "{base}/hang-once/job7"}]"#;
    check_err(
        run_with(impatient.clone(), &server, steps).await,
        ErrorKind::Retryable,
        0,
        "timed out",
    );
    let result = run_with(impatient.clone(), &server, steps)
        .await
        .expect("the retry loads");
    assert_eq!(result.status, 200);
    let result = run_with(
        impatient,
        &server,
        r#"[{"action": "navigate", "url": "{base}/slow/20"}]"#,
    )
    .await
    .expect("a slow page within the timeout loads");
    assert!(result.timings.fetch_ms >= 20, "{:?}", result.timings);
}

#[tokio::test]
async fn unreachable_servers_fail_retryably() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let engine = HttpEngine::new(config()).unwrap();
    let steps: Vec<Step> = serde_json::from_str(&format!(
        r#"[{{"action": "navigate", "url": "http://127.0.0.1:{port}/"}}]"#
    ))
    .unwrap();
    let outcome = engine
        .run(
            &JobSpec {
                engine: Engine::Http,
                steps,
                timeout_seconds: 30,
            },
            &CancellationToken::new(),
        )
        .await
        .map(|output| output.result)
        .map_err(|failure| failure.error);
    check_err(outcome, ErrorKind::Retryable, 0, "could not fetch");
}

#[test]
fn invalid_user_agents_are_refused() {
    let err = HttpEngine::new(EngineConfig {
        user_agent: "bad\nagent".to_owned(),
        ..config()
    })
    .expect_err("a newline cannot be sent in a header");
    assert_eq!(
        err.to_string(),
        "invalid user agent \"bad\\nagent\": not a valid HTTP header value"
    );
}

/// Refuses redirects to one host, as a job's domain policy would.
#[derive(Debug)]
struct DenyHost(&'static str);

impl accord_egress::HopPolicy for DenyHost {
    fn check(&self, next: &url::Url) -> Result<(), accord_egress::HopDenied> {
        match next.host_str() == Some(self.0) {
            true => Err(accord_egress::HopDenied(format!(
                "{next}: denied by the test"
            ))),
            false => Ok(()),
        }
    }
}

/// Jobs under domain policies used to get a client of their own per run (a
/// new connection for each job); they now share the engine's client, whose
/// redirect policy asks each request's own hops: a job's policy decides its
/// redirects and never another job's, whichever runs first or alongside.
#[tokio::test]
async fn a_jobs_hop_policy_decides_its_own_redirects_only() {
    let server = FixtureServer::start().await;
    let engine = HttpEngine::new(config()).expect("engine builds");
    let port = url::Url::parse(&server.url("/")).unwrap().port().unwrap();
    let to = format!("http://localhost:{port}/page");
    let job = spec(
        &server,
        &format!(r#"[{{"action": "navigate", "url": "{{base}}/redirect?to={to}"}}]"#),
    );
    let stop = CancellationToken::new();
    let strict = accord_engine::JobEgress {
        hosts: None,
        hops: Some(std::sync::Arc::new(DenyHost("localhost"))),
    };
    let lenient = accord_engine::JobEgress {
        hosts: None,
        hops: Some(std::sync::Arc::new(DenyHost("elsewhere.example"))),
    };
    for _ in 0..2 {
        let (denied, plain, allowed) = tokio::join!(
            engine.run_with(&job, &strict, &stop),
            engine.run(&job, &stop),
            engine.run_with(&job, &lenient, &stop),
        );
        let denied = denied
            .map(|output| output.result)
            .map_err(|failure| failure.error);
        check_err(denied, ErrorKind::Permanent, 0, "denied by the test");
        for outcome in [plain, allowed] {
            let result = outcome.expect("the redirect is followed").result;
            assert_eq!(result.final_url, to);
        }
    }
}
