//! What the egress tests share: the canary network of `accord-test-support`
//! (a fixture on 127.0.0.10 that tests reach only through an allow-list
//! entry, canary listeners on 127.0.0.1-9 and [::1] that count every
//! connection they receive), a recording proxy hook, and two clients that
//! go through a proxy (absolute-form with reqwest, CONNECT by hand).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_egress::proxy::{HookVerdict, ProxyOutcome, ProxyRequest};
use accord_egress::{EgressProxy, Guard, ProxyConfig, ProxyHandle, ProxyHook};
use accord_test_support::CanaryNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

/// The network every egress test runs in, shared with the engines' and
/// the notification sender's SSRF tests.
pub type Net = CanaryNet;

/// Binds the fixture and the canaries on one free port.
pub async fn start_net() -> Net {
    CanaryNet::start().await
}

/// A hook that records every outcome as a line, and denies the paths it
/// was told to.
#[derive(Debug, Default)]
pub struct Recorder {
    pub deny_paths: Vec<String>,
    pub lines: Mutex<Vec<String>>,
    /// The paths of forwarded requests the guard blocked.
    pub blocked_paths: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn blocked_paths(&self) -> Vec<String> {
        self.blocked_paths.lock().unwrap().clone()
    }
}

impl ProxyHook for Recorder {
    fn check(&self, request: &ProxyRequest<'_>) -> HookVerdict {
        match request.url {
            Some(url) if self.deny_paths.iter().any(|path| path == url.path()) => {
                HookVerdict::Deny(format!("path {} is denied", url.path()))
            }
            _ => HookVerdict::Allow,
        }
    }

    fn record(&self, request: &ProxyRequest<'_>, outcome: &ProxyOutcome<'_>) {
        if let (Some(url), ProxyOutcome::Blocked(_)) = (request.url, outcome) {
            self.blocked_paths
                .lock()
                .unwrap()
                .push(url.path().to_owned());
        }
        let outcome = match outcome {
            ProxyOutcome::Tunnelled(addr) => format!("tunnelled to {addr}"),
            ProxyOutcome::Forwarded { addr, status } => format!("forwarded to {addr}: {status}"),
            ProxyOutcome::Denied(reason) => format!("denied: {reason}"),
            ProxyOutcome::Blocked(blocked) => format!("blocked: {}", blocked.detail()),
            ProxyOutcome::Failed(detail) => format!("failed: {detail}"),
        };
        let line = format!("{:?} {}: {outcome}", request.kind, request.authority);
        self.lines.lock().unwrap().push(line);
    }
}

/// A proxy for one run, admitting only this test process.
pub async fn start_proxy(guard: Guard, hook: Arc<Recorder>) -> ProxyHandle {
    let config = ProxyConfig {
        header_read_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(5),
        ..ProxyConfig::default()
    };
    let proxy = EgressProxy::start(guard, hook, config).await.unwrap();
    proxy.admit_process_tree(std::process::id());
    proxy
}

/// What came back through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    /// 0 when no complete response came back.
    pub status: u16,
    pub body: String,
}

impl Got {
    fn broken(err: impl std::fmt::Display) -> Self {
        Self {
            status: 0,
            body: err.to_string(),
        }
    }
}

/// GET through the proxy with reqwest (absolute-form for http), following
/// up to 10 redirects the way a browser would: every hop through the proxy.
pub async fn get_forwarded(proxy: &ProxyHandle, url: &str) -> Got {
    get_with(&forwarding_client(proxy), url).await
}

/// A client that sends everything through the proxy, keeping its
/// connection to the proxy alive between requests.
pub fn forwarding_client(proxy: &ProxyHandle) -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", proxy.addr())).unwrap())
        .redirect(reqwest::redirect::Policy::limited(10))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET with a given client.
pub async fn get_with(client: &reqwest::Client, url: &str) -> Got {
    let response = match client.get(url).send().await {
        Ok(response) => response,
        Err(err) => return Got::broken(err),
    };
    let status = response.status().as_u16();
    match response.text().await {
        Ok(body) => Got { status, body },
        Err(err) => Got::broken(err),
    }
}

/// GET through CONNECT tunnels by hand, following up to 10 redirects, each
/// hop through a new tunnel: how Chromium reaches https and WebSockets.
pub async fn get_tunnelled(proxy: &ProxyHandle, url: &Url) -> Got {
    let mut url = url.clone();
    for _ in 0..=10 {
        let authority = format!(
            "{}:{}",
            url.host_str().unwrap(),
            url.port_or_known_default().unwrap()
        );
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let connect = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n");
        stream.write_all(connect.as_bytes()).await.unwrap();
        let Some((status, _, body)) = read_response(&mut stream).await else {
            return Got::broken("the proxy closed the connection");
        };
        if status != 200 {
            return Got { status, body };
        }
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let get = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
        stream.write_all(get.as_bytes()).await.unwrap();
        let Some((status, location, body)) = read_response(&mut stream).await else {
            return Got::broken("the tunnel closed before a response");
        };
        match location {
            Some(location) if (300..400).contains(&status) => {
                url = url.join(&location).unwrap();
            }
            _ => return Got { status, body },
        }
    }
    panic!("more than 10 redirects from {url}");
}

/// Reads one response (head and a content-length body): its status, its
/// Location, its body; `None` if the connection closes first.
pub async fn read_response(stream: &mut TcpStream) -> Option<(u16, Option<String>, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
    };
    let length: usize = header("content-length").map_or(0, |len| len.parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((status, header("location"), String::from_utf8(body).ok()?))
}
