//! The SSRF guard seen from outside: with the default configuration nothing
//! on loopback, private or metadata addresses is fetched, however it is named.
//! (Redirect hops and the resolver's filter are unit-tested in `guard.rs`.)

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
    let check = |url: String, message: &'static str| {
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
                err.to_string().contains(message),
                "{url}: {err} should say {message:?}"
            );
        }
    };
    check(
        format!("http://127.0.0.1:{port}/"),
        "refused target 127.0.0.1: names loopback address 127.0.0.1",
    )
    .await;
    // Through the resolver: `localhost` resolves to loopback only.
    check(
        format!("http://localhost:{port}/"),
        "refused target localhost: resolves only to",
    )
    .await;
    check(format!("http://localhost:{port}/"), "loopback").await;
    check(
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "names loopback address ::ffff:127.0.0.1",
    )
    .await;
    check(
        format!("http://[::1]:{port}/"),
        "names loopback address ::1",
    )
    .await;
    check(
        format!("http://0x7f.0.0.1:{port}/"),
        "names loopback address 127.0.0.1",
    )
    .await;
    check(
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "names cloud metadata address 169.254.169.254",
    )
    .await;
    check(
        "http://10.0.0.1/".to_owned(),
        "names private address 10.0.0.1",
    )
    .await;
    assert_eq!(server.hits("/"), 0, "no request may reach the fixture");
}
