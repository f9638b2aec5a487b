//! Chromium (Debian's `chromium-headless-shell`) behind the egress proxy,
//! launched with [`chromium_args`]: a page served by the allowed fixture
//! tries fetch, XHR, a form POST, `<img>`, `<iframe>`, frames that leave by
//! meta refresh and by script, a Web Worker's fetch, WebSockets (one to a
//! debugging endpoint's address) and WebRTC towards loopback canaries; the canaries receive nothing, the proxy refuses what
//! reaches it, and the page itself loads. A control run without the flags
//! shows the same page does reach the canaries, so the test can tell.
//!
//! The browser is driven with `--dump-dom`: it loads the page, lets its
//! scripts run for a virtual-time budget, and prints the DOM, where the
//! page has written what each attempt saw.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accord_egress::{
    chromium_command_line, AllowList, EgressProxy, Guard, GuardConfig, ProxyConfig, StubResolver,
};
use accord_model::EgressPolicy;
use accord_test_support::{FIXTURE_IP, FIXTURE_NAME};
use common::Recorder;
use tokio::net::UdpSocket;

const CHROMIUM: &str = "/usr/bin/chromium-headless-shell";

/// The page's script: each attempt writes `name=outcome` into `#log`.
/// `devtools` stands for the port of a browser debugging endpoint.
fn page_script(port: u16, devtools: u16) -> String {
    format!(
        r#"
const P = {port};
const DEVTOOLS = {devtools};
const log = (name, outcome) => {{
  document.getElementById('log').textContent += name + '=' + outcome + '\n';
}};
const attempt = (name, promise) => promise.then(
  (value) => log(name, 'reached ' + value),
  () => log(name, 'failed'));
attempt('fetch-ip', fetch('http://127.0.0.2:' + P + '/fetch').then((r) => r.status));
attempt('fetch-name', fetch('http://loop.test:' + P + '/fetch').then((r) => r.status));
attempt('fetch-localhost', fetch('http://localhost:' + P + '/fetch').then((r) => r.status));
attempt('fetch-v6', fetch('http://[::1]:' + P + '/fetch').then((r) => r.status));
attempt('fetch-https', fetch('https://127.0.0.8:' + P + '/fetch').then((r) => r.status));
attempt('form-post', fetch('http://127.0.0.9:' + P + '/form', {{method: 'POST', body: 'a=1'}}).then((r) => r.status));
attempt('allowed', fetch('http://{FIXTURE_NAME}:' + P + '/allowed').then((r) => r.text()));
const xhr = new XMLHttpRequest();
xhr.open('GET', 'http://127.0.0.3:' + P + '/xhr');
xhr.onload = () => log('xhr', 'reached ' + xhr.status);
xhr.onerror = () => log('xhr', 'failed');
xhr.send();
const img = new Image();
img.onload = () => log('img', 'reached');
img.onerror = () => log('img', 'failed');
img.src = 'http://127.0.0.4:' + P + '/img.png';
document.body.appendChild(img);
const frame = document.createElement('iframe');
frame.src = 'http://127.0.0.5:' + P + '/frame';
document.body.appendChild(frame);
for (const [path, name] of [['/meta-refresh', 'meta'], ['/script-redirect', 'script']]) {{
  const nested = document.createElement('iframe');
  nested.src = path;
  document.body.appendChild(nested);
}}
const worker = new Worker('/worker.js');
worker.onmessage = (event) => log('worker', event.data);
const form = document.createElement('form');
form.method = 'POST';
form.action = 'http://127.0.0.9:' + P + '/form-submit';
form.target = 'sink';
const sink = document.createElement('iframe');
sink.name = 'sink';
document.body.appendChild(sink);
document.body.appendChild(form);
form.submit();
for (const [name, url] of [
  ['ws', 'ws://127.0.0.6:' + P + '/ws'],
  ['wss', 'wss://127.0.0.7:' + P + '/ws'],
  ['devtools', 'ws://127.0.0.1:' + DEVTOOLS + '/devtools/browser'],
]) {{
  const socket = new WebSocket(url);
  socket.onopen = () => log(name, 'reached');
  socket.onerror = () => log(name, 'failed');
}}
try {{
  const rtc = new RTCPeerConnection({{iceServers: [{{urls: 'stun:127.0.0.1:' + P}}]}});
  rtc.createDataChannel('probe');
  rtc.onicecandidate = (event) => {{
    if (!event.candidate) log('webrtc', 'gathered');
  }};
  rtc.createOffer().then((offer) => rtc.setLocalDescription(offer));
}} catch (error) {{
  log('webrtc', 'unavailable ' + error);
}}
"#
    )
}

/// The hostile page and what it loads: frames that leave by meta refresh
/// and by script, and a worker that fetches on its own.
fn serve_pages(net: &common::Net, devtools: u16) {
    let port = net.port;
    let page = format!(
        "<html><body><pre id=\"log\"></pre><script>{}</script></body></html>",
        page_script(port, devtools)
    );
    net.serve_page("/page", page);
    net.serve_page(
        "/meta-refresh",
        format!(
            "<html><head><meta http-equiv=\"refresh\" \
             content=\"0;url=http://127.0.0.2:{port}/meta-refreshed\"></head></html>"
        ),
    );
    net.serve_page(
        "/script-redirect",
        format!(
            "<html><body><script>location.href = \
             'http://127.0.0.3:{port}/script-redirected';</script></body></html>"
        ),
    );
    net.serve_page(
        "/worker.js",
        format!(
            "fetch('http://127.0.0.4:{port}/from-worker').then(\
             (r) => postMessage('reached ' + r.status), () => postMessage('failed'));"
        ),
    );
}

/// A port nothing listens on now. It stands for the browser's debugging
/// endpoint: `--dump-dom` refuses to run with `--remote-debugging-port`, so
/// the page aims at that endpoint's address and path, not a live one.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Counts UDP datagrams (STUN requests) to 127.0.0.1 on the canary port.
async fn udp_canary(port: u16) -> Arc<AtomicUsize> {
    let socket = UdpSocket::bind(("127.0.0.1", port)).await.unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while socket.recv_from(&mut buf).await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    count
}

/// Runs the browser on `url` with `extra` flags and returns the DOM it
/// dumped. Returns once the browser process tree has exited.
async fn dump_dom(
    url: &str,
    extra: &[String],
    profile: &Path,
    on_spawn: impl FnOnce(u32),
) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium-headless-shell"
    );
    let mut command = tokio::process::Command::new(CHROMIUM);
    command
        .args([
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().unwrap();
    on_spawn(child.id().unwrap());
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the browser finished within two minutes")
        .unwrap();
    assert!(
        output.status.success(),
        "the browser failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The `name=outcome` lines the page wrote, sorted.
fn outcomes(dom: &str) -> Vec<String> {
    let start = dom.find("<pre id=\"log\">").map_or(0, |i| i + 14);
    let end = dom[start..].find("</pre>").map_or(start, |i| start + i);
    let mut lines: Vec<String> = dom[start..end].lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn a_page_in_chromium_reaches_only_the_allowed_fixture() {
    let net = common::start_net().await;
    let port = net.port;
    let stun = udp_canary(port).await;
    let devtools = free_port();
    serve_pages(&net, devtools);

    let stub = StubResolver::new();
    stub.set(FIXTURE_NAME, vec![FIXTURE_IP.parse().unwrap()]);
    stub.set("loop.test", vec!["127.0.0.2".parse().unwrap()]);
    let guard = Guard::with_resolver(
        GuardConfig {
            policy: EgressPolicy::PublicOnly,
            allow: AllowList::parse([FIXTURE_IP]).unwrap(),
            ..GuardConfig::default()
        },
        Arc::new(stub),
    );
    let hook = Arc::new(Recorder::default());
    let proxy = EgressProxy::start(guard, hook.clone(), ProxyConfig::default())
        .await
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let flags = chromium_command_line(proxy.addr());
    let url = format!("http://{FIXTURE_NAME}:{port}/page");
    let dom = dump_dom(&url, &flags, profile.path(), |pid| {
        proxy.admit_process_tree(pid);
    })
    .await;
    proxy.shutdown().await;

    let outcomes = outcomes(&dom);
    assert!(
        outcomes.contains(&"allowed=reached fixture".to_owned()),
        "the page and its allowed fetch load: {outcomes:?}\n{dom}"
    );
    for name in [
        "fetch-ip",
        "fetch-name",
        "fetch-localhost",
        "fetch-v6",
        "fetch-https",
        "form-post",
        "xhr",
        "img",
        "ws",
        "wss",
        "devtools",
        "worker",
    ] {
        assert!(
            outcomes.contains(&format!("{name}=failed")),
            "{name}: {outcomes:?}"
        );
    }
    assert_eq!(net.total_canary_hits(), 0, "{:?}", net.canary_hits());
    assert_eq!(stun.load(Ordering::SeqCst), 0, "STUN reached the canary");
    // The refusals were the proxy's: each forbidden target reached it and
    // was blocked there, not merely dropped by the browser.
    let lines = hook.lines();
    for target in [
        "127.0.0.2",
        "loop.test",
        "localhost",
        "[::1]",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
        "127.0.0.7",
        "127.0.0.8",
        "127.0.0.9",
    ] {
        let authority = format!("{target}:{port}: blocked: ");
        assert!(
            lines.iter().any(|line| line.contains(&authority)),
            "{target} was not refused by the proxy: {lines:#?}"
        );
    }
    // A WebSocket to a debugging endpoint's address was refused by the
    // proxy too.
    let devtools = format!("Connect 127.0.0.1:{devtools}: blocked: ");
    assert!(
        lines.iter().any(|line| line.contains(&devtools)),
        "{lines:#?}"
    );
    // Navigations by meta refresh and by script, a form POST and a
    // worker's fetch each reached the proxy and were refused there.
    let blocked = hook.blocked_paths();
    for path in [
        "/meta-refreshed",
        "/script-redirected",
        "/form-submit",
        "/from-worker",
    ] {
        assert!(blocked.iter().any(|p| p == path), "{path}: {blocked:?}");
    }
    let paths = net.fixture_paths();
    for path in [
        "/page",
        "/allowed",
        "/meta-refresh",
        "/script-redirect",
        "/worker.js",
    ] {
        assert!(paths.iter().any(|p| p == path), "{path}: {paths:?}");
    }
}

/// The control: the same page without the proxy flags does reach the
/// canaries, so the test above would notice a leak.
#[tokio::test]
async fn without_the_flags_the_same_page_reaches_the_canaries() {
    let net = common::start_net().await;
    let port = net.port;
    let stun = udp_canary(port).await;
    let devtools = free_port();
    serve_pages(&net, devtools);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{FIXTURE_IP}:{port}/page");
    let dom = dump_dom(&url, &[], profile.path(), drop).await;
    let outcomes = outcomes(&dom);
    assert!(net.total_canary_hits() > 0, "{outcomes:?}");
    let reached: Vec<SocketAddr> = net
        .canary_hits()
        .into_iter()
        .filter(|(_, hits)| *hits > 0)
        .map(|(addr, _)| addr)
        .collect();
    assert!(reached.len() >= 5, "{reached:?} {outcomes:?}");
    assert!(stun.load(Ordering::SeqCst) > 0, "no STUN: {outcomes:?}");
}
