//! The egress proxy's own behaviour: who may use it, the hook, WebSocket
//! upgrades over plain http, bounds, shutdown.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::sync::Arc;

use accord_egress::{AllowList, EgressProxy, Guard, GuardConfig, ProxyConfig, StubResolver};
use accord_model::EgressPolicy;
use accord_test_support::{FIXTURE_BODY, FIXTURE_IP, FIXTURE_NAME};
use common::{read_response, Recorder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn guard() -> Guard {
    let stub = StubResolver::new();
    stub.set(FIXTURE_NAME, vec![FIXTURE_IP.parse().unwrap()]);
    let config = GuardConfig {
        policy: EgressPolicy::PublicOnly,
        allow: AllowList::parse([FIXTURE_IP]).unwrap(),
        ..GuardConfig::default()
    };
    Guard::with_resolver(config, Arc::new(stub))
}

/// Sends raw bytes to the proxy and reads one response.
async fn raw(proxy: std::net::SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut stream)
        .await
        .expect("the proxy answered");
    (status, body)
}

#[tokio::test]
async fn a_process_outside_the_browser_is_refused() {
    let net = common::start_net().await;
    let hook = Arc::new(Recorder::default());
    let proxy = EgressProxy::start(guard(), hook.clone(), ProxyConfig::default())
        .await
        .unwrap();
    // The "browser" is another process: this test is not in its tree.
    let mut browser = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    proxy.admit_process_tree(browser.id());
    let request = format!(
        "GET http://{FIXTURE_NAME}:{}/ HTTP/1.1\r\nhost: {FIXTURE_NAME}\r\n\r\n",
        net.port
    );
    let (status, body) = raw(proxy.addr(), &request).await;
    assert_eq!((status, body.as_str()), (403, ""));
    assert!(hook.lines().is_empty(), "{:?}", hook.lines());
    assert!(net.fixture_paths().is_empty());

    // Once this process is the browser, the same request goes through.
    proxy.admit_process_tree(std::process::id());
    let (status, body) = raw(proxy.addr(), &request).await;
    assert_eq!((status, body.as_str()), (200, FIXTURE_BODY));
    browser.kill().unwrap();
    browser.wait().unwrap();
}

#[tokio::test]
async fn the_hook_denies_a_subresource() {
    let net = common::start_net().await;
    let hook = Arc::new(Recorder {
        deny_paths: vec!["/tracker.js".to_owned()],
        ..Recorder::default()
    });
    let proxy = common::start_proxy(guard(), hook.clone()).await;
    let base = format!("http://{FIXTURE_NAME}:{}", net.port);
    // One browser connection: the upstream connection of the first request
    // is kept for the others, and the hook still decides each of them.
    let browser = common::forwarding_client(&proxy);
    let page = common::get_with(&browser, &format!("{base}/")).await;
    assert_eq!((page.status, page.body.as_str()), (200, FIXTURE_BODY));
    let denied = common::get_with(&browser, &format!("{base}/tracker.js")).await;
    assert_eq!(
        (denied.status, denied.body.as_str()),
        (403, "policy_denied: the request was denied by policy")
    );
    let again = common::get_with(&browser, &format!("{base}/again")).await;
    assert_eq!((again.status, again.body.as_str()), (200, FIXTURE_BODY));
    assert_eq!(net.fixture_paths(), ["/", "/again"]);
    let authority = format!("{FIXTURE_NAME}:{}", net.port);
    let forwarded = format!(
        "Forward {authority}: forwarded to {FIXTURE_IP}:{}: 200",
        net.port
    );
    assert_eq!(
        hook.lines(),
        [
            forwarded.clone(),
            format!("Forward {authority}: denied: path /tracker.js is denied"),
            forwarded,
        ]
    );
}

#[tokio::test]
async fn websocket_upgrades_over_plain_http_are_carried() {
    let net = common::start_net().await;
    let proxy = common::start_proxy(guard(), Arc::new(Recorder::default())).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = format!(
        "GET http://{FIXTURE_NAME}:{}/socket HTTP/1.1\r\nhost: {FIXTURE_NAME}\r\n\
         connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        net.port
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _, _) = read_response(&mut stream).await.unwrap();
    assert_eq!(status, 101);
    stream.write_all(b"hello through the proxy").await.unwrap();
    let mut echoed = [0u8; 23];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"hello through the proxy");
    assert_eq!(net.fixture_paths(), ["/socket"]);
    assert_eq!(net.total_canary_hits(), 0);
}

#[tokio::test]
async fn requests_a_proxy_does_not_take_are_refused() {
    let net = common::start_net().await;
    let proxy = common::start_proxy(guard(), Arc::new(Recorder::default())).await;
    let check = |request: String, expected: (u16, &'static str)| {
        let addr = proxy.addr();
        async move {
            let (status, body) = raw(addr, &request).await;
            assert_eq!((status, body.as_str()), expected, "{request}");
        }
    };
    check(
        "GET / HTTP/1.1\r\nhost: fixture.test\r\n\r\n".to_owned(),
        (
            400,
            "this is a proxy: send absolute-form http:// requests, or CONNECT",
        ),
    )
    .await;
    check(
        format!(
            "GET https://{FIXTURE_NAME}:{}/ HTTP/1.1\r\nhost: x\r\n\r\n",
            net.port
        ),
        (
            400,
            "only http:// requests are forwarded; https goes through CONNECT",
        ),
    )
    .await;
    check(
        "CONNECT evil@127.0.0.2:443 HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
        (400, "`evil@127.0.0.2:443` is not a valid host and port"),
    )
    .await;
    // A Host header cannot redirect a request the URL sends elsewhere.
    check(
        format!(
            "GET http://127.0.0.2:{}/ HTTP/1.1\r\nhost: {FIXTURE_NAME}\r\n\r\n",
            net.port
        ),
        (
            403,
            "target_blocked: refused target 127.0.0.2: the host is not public or does not resolve",
        ),
    )
    .await;
    let huge = format!(
        "GET http://{FIXTURE_NAME}:{}/ HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        net.port,
        "a".repeat(20_000)
    );
    let (status, _) = raw(proxy.addr(), &huge).await;
    assert_eq!(status, 431);
    assert!(net.fixture_paths().is_empty());
    assert_eq!(net.total_canary_hits(), 0);
}

#[tokio::test]
async fn shutdown_ends_open_tunnels() {
    let net = common::start_net().await;
    let proxy = common::start_proxy(guard(), Arc::new(Recorder::default())).await;
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let authority = format!("{FIXTURE_NAME}:{}", net.port);
    stream
        .write_all(format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut stream).await.unwrap();
    assert_eq!(status, 200);
    proxy.shutdown().await;
    // The tunnel is gone: the next read sees the end of the stream.
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest).await;
    assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?} {rest:?}");
}
