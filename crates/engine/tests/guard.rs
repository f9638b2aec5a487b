//! The SSRF guard seen from outside: with the default configuration nothing
//! on loopback, private or metadata addresses is fetched, however it is named.
//! (The guard itself, with its redirect policy and address table, is tested
//! in `accord-egress`, with its SSRF corpus.)

use std::time::Duration;

use accord_engine::{EngineConfig, Executor, HttpEngine};
use accord_model::{Engine, ErrorKind, JobSpec, Step, TargetUrl};
use accord_test_support::FixtureServer;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn non_public_targets_are_refused() {
    let server = FixtureServer::start().await;
    let port = server.addr().port();
    let engine = HttpEngine::new(EngineConfig {
        // Should the guard fail open, a connection attempt fails fast and
        // retryably instead of passing as a refusal.
        connect_timeout: Duration::from_millis(500),
        ..EngineConfig::default()
    })
    .unwrap();
    let check = |url: String, message: String| {
        let engine = &engine;
        async move {
            let spec = JobSpec {
                engine: Engine::Http,
                steps: vec![Step::Navigate {
                    url: TargetUrl::parse(&url).unwrap(),
                    wait_until: Default::default(),
                    accept_error_status: false,
                }],
                timeout_seconds: 30,
            };
            let err = engine
                .run(&spec, &CancellationToken::new())
                .await
                .expect_err(&url)
                .error;
            assert_eq!(
                (err.kind(), err.step()),
                (ErrorKind::Permanent, Some(0)),
                "{url}: {err}"
            );
            assert!(
                err.to_string().contains(&message),
                "{url}: {err} should say {message:?}"
            );
        }
    };
    // The user is told the same for every refusal, so no one can map
    // internal names to addresses through Accord's errors.
    let refused = "the host is not public or does not resolve";
    for (url, target) in [
        (format!("http://127.0.0.1:{port}/"), "127.0.0.1"),
        // Through the resolver: `localhost` resolves to loopback only.
        (format!("http://localhost:{port}/"), "localhost"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "[::ffff:127.0.0.1]",
        ),
        (format!("http://[::1]:{port}/"), "[::1]"),
        (format!("http://0x7f.0.0.1:{port}/"), "127.0.0.1"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254",
        ),
        ("http://10.0.0.1/".to_owned(), "10.0.0.1"),
    ] {
        check(url, format!("refused target {target}: {refused}")).await;
    }
    assert_eq!(server.hits("/"), 0, "no request may reach the fixture");
}

#[tokio::test]
async fn an_allowed_network_is_reachable_and_its_neighbours_are_not() {
    let server = FixtureServer::start().await;
    let port = server.addr().port();
    let engine = HttpEngine::new(EngineConfig {
        allow_targets: accord_egress::AllowList::parse(["127.0.0.1/32"]).unwrap(),
        connect_timeout: Duration::from_millis(500),
        ..EngineConfig::default()
    })
    .unwrap();
    let navigate = |url: String| JobSpec {
        engine: Engine::Http,
        steps: vec![Step::Navigate {
            url: TargetUrl::parse(&url).unwrap(),
            wait_until: Default::default(),
            accept_error_status: false,
        }],
        timeout_seconds: 30,
    };
    let stop = CancellationToken::new();
    engine
        .run(&navigate(format!("http://127.0.0.1:{port}/page")), &stop)
        .await
        .expect("the allowed address is fetched");
    assert_eq!(server.hits("/page"), 1);
    for url in [
        format!("http://127.0.0.2:{port}/page"),
        format!("http://[::1]:{port}/page"),
        // `localhost` also answers ::1, which is not allowed.
        format!("http://localhost:{port}/page"),
    ] {
        let err = engine
            .run(&navigate(url.clone()), &stop)
            .await
            .expect_err(&url)
            .error;
        assert_eq!(err.kind(), ErrorKind::Permanent, "{url}: {err}");
        assert!(err.to_string().contains("refused target"), "{url}: {err}");
    }
    assert_eq!(server.hits("/page"), 1);
}
