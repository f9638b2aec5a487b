//! What the egress tests share: a fixture on 127.0.0.10 that tests reach
//! only through an allow-list entry, canary listeners on 127.0.0.1-9 and [::1]
//! that count every connection they receive, and two clients that go
//! through a proxy (absolute-form with reqwest, CONNECT by hand).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_egress::proxy::{HookVerdict, ProxyOutcome, ProxyRequest};
use accord_egress::{EgressProxy, Guard, ProxyConfig, ProxyHandle, ProxyHook};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// The fixture's address; the allow-list names it and nothing else.
pub const FIXTURE_IP: &str = "127.0.0.10";
/// The fixture's name in every stub resolver.
pub const FIXTURE_NAME: &str = "fixture.test";
/// What the fixture's page says.
pub const FIXTURE_BODY: &str = "fixture";

/// A listener that counts connections and never answers.
#[derive(Debug)]
pub struct Canary {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

/// The fixture and the canaries, all on one port.
#[derive(Debug)]
pub struct Net {
    pub port: u16,
    pub canaries: Vec<Canary>,
    /// Requests the fixture served, by path.
    pub fixture_requests: Arc<Mutex<Vec<String>>>,
    /// HTML pages the fixture serves, by path.
    pages: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Net {
    pub fn canary_hits(&self) -> Vec<(SocketAddr, usize)> {
        self.canaries
            .iter()
            .map(|canary| (canary.addr, canary.hits.load(Ordering::SeqCst)))
            .collect()
    }

    pub fn total_canary_hits(&self) -> usize {
        self.canary_hits().iter().map(|(_, hits)| hits).sum()
    }

    pub fn fixture_paths(&self) -> Vec<String> {
        self.fixture_requests.lock().unwrap().clone()
    }

    /// Has the fixture serve `html` at `path`.
    pub fn serve_page(&self, path: &str, html: String) {
        self.pages.lock().unwrap().insert(path.to_owned(), html);
    }
}

/// Binds the fixture on 127.0.0.10 and canaries on 127.0.0.1-9 (and [::1]
/// when the host has IPv6) on one free port.
pub async fn start_net() -> Net {
    'attempt: for _ in 0..50 {
        let fixture_listener = TcpListener::bind((FIXTURE_IP, 0)).await.unwrap();
        let port = fixture_listener.local_addr().unwrap().port();
        let mut listeners = Vec::new();
        for last in 1..=9u8 {
            match TcpListener::bind(format!("127.0.0.{last}:{port}")).await {
                Ok(listener) => listeners.push(listener),
                Err(_) => continue 'attempt,
            }
        }
        // IPv6 may be off in a container; the other canaries still stand.
        if let Ok(listener) = TcpListener::bind(format!("[::1]:{port}")).await {
            listeners.push(listener);
        }
        let canaries = listeners.into_iter().map(start_canary).collect();
        let fixture = Fixture {
            requests: Arc::new(Mutex::new(Vec::new())),
            pages: Arc::new(Mutex::new(BTreeMap::new())),
        };
        let net = Net {
            port,
            canaries,
            fixture_requests: fixture.requests.clone(),
            pages: fixture.pages.clone(),
        };
        tokio::spawn(serve_fixture(fixture_listener, fixture));
        return net;
    }
    panic!("no port was free on 127.0.0.1-10 after 50 attempts");
}

fn start_canary(listener: TcpListener) -> Canary {
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    Canary { addr, hits }
}

/// What the fixture knows: the requests it served and the pages it serves.
#[derive(Debug, Clone)]
struct Fixture {
    requests: Arc<Mutex<Vec<String>>>,
    pages: Arc<Mutex<BTreeMap<String, String>>>,
}

async fn serve_fixture(listener: TcpListener, fixture: Fixture) {
    while let Ok((stream, _)) = listener.accept().await {
        let fixture = fixture.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let fixture = fixture.clone();
                async move { Ok::<_, Infallible>(fixture_page(request, &fixture)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// `/redirect?status=&to=` redirects; a request asking for an upgrade gets
/// `101` and an echo of every byte it sends; a page set with
/// [`Net::serve_page`] is served as HTML; anything else is the plain page.
fn fixture_page(mut request: Request<Incoming>, fixture: &Fixture) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    fixture.requests.lock().unwrap().push(path.clone());
    if let Some(html) = fixture.pages.lock().unwrap().get(&path) {
        return Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .body(Full::new(Bytes::from(html.clone())))
            .unwrap();
    }
    if path == "/redirect" {
        let query = request.uri().query().unwrap_or_default();
        let pairs: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let status = pairs["status"].parse::<u16>().unwrap();
        return Response::builder()
            .status(status)
            .header("location", &pairs["to"])
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    if request.headers().contains_key("upgrade") {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    Response::new(Full::new(Bytes::from_static(FIXTURE_BODY.as_bytes())))
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
