//! [`CanaryNet`]: the network the SSRF tests run in. A fixture on
//! 127.0.0.10 that tests reach only through an allow-list entry, and canary
//! listeners on 127.0.0.1-9 and [::1], all on one port, that count every
//! connection they receive and never answer: a test passes only if every
//! canary still reads zero.
//!
//! The fixture answers `/redirect?status=&to=` with that redirect, echoes
//! every byte of a connection that asks for an upgrade (WebSockets), serves
//! the HTML pages a test sets ([`CanaryNet::serve_page`]), and answers
//! anything else with the plain body [`FIXTURE_BODY`]. It counts the
//! connections it accepts (a TLS client that gets no further still counts)
//! and logs the path of every request it parses.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The fixture's address; the allow-list names it and nothing else.
pub const FIXTURE_IP: &str = "127.0.0.10";
/// The fixture's name in every stub resolver.
pub const FIXTURE_NAME: &str = "fixture.test";
/// What the fixture's plain page says.
pub const FIXTURE_BODY: &str = "fixture";

/// A listener that counts connections and never answers.
#[derive(Debug)]
pub struct Canary {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

/// The fixture and the canaries, all on one port.
#[derive(Debug)]
pub struct CanaryNet {
    pub port: u16,
    pub canaries: Vec<Canary>,
    fixture: Fixture,
}

impl CanaryNet {
    /// Binds the fixture on 127.0.0.10 and canaries on 127.0.0.1-9 (and
    /// [::1] when the host has IPv6) on one free port.
    pub async fn start() -> Self {
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
            let fixture = Fixture::default();
            tokio::spawn(serve_fixture(fixture_listener, fixture.clone()));
            return Self {
                port,
                canaries,
                fixture,
            };
        }
        panic!("no port was free on 127.0.0.1-10 after 50 attempts");
    }

    /// Each canary's address and the connections it received.
    pub fn canary_hits(&self) -> Vec<(SocketAddr, usize)> {
        self.canaries
            .iter()
            .map(|canary| (canary.addr, canary.hits.load(Ordering::SeqCst)))
            .collect()
    }

    pub fn total_canary_hits(&self) -> usize {
        self.canary_hits().iter().map(|(_, hits)| hits).sum()
    }

    /// The paths of the requests the fixture served, in order.
    pub fn fixture_paths(&self) -> Vec<String> {
        self.fixture.requests.lock().unwrap().clone()
    }

    /// The connections the fixture accepted.
    pub fn fixture_connections(&self) -> usize {
        self.fixture.connections.load(Ordering::SeqCst)
    }

    /// Has the fixture serve `html` at `path`.
    pub fn serve_page(&self, path: &str, html: String) {
        self.fixture
            .pages
            .lock()
            .unwrap()
            .insert(path.to_owned(), html);
    }

    /// `http://fixture.test:<port><path>`.
    pub fn fixture_url(&self, path: &str) -> String {
        format!("http://{FIXTURE_NAME}:{}{path}", self.port)
    }
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

/// What the fixture knows: the connections and requests it served and the
/// pages it serves.
#[derive(Debug, Clone, Default)]
struct Fixture {
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    pages: Arc<Mutex<BTreeMap<String, String>>>,
}

async fn serve_fixture(listener: TcpListener, fixture: Fixture) {
    while let Ok((stream, _)) = listener.accept().await {
        fixture.connections.fetch_add(1, Ordering::SeqCst);
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

/// A request asking for an upgrade gets `101` (with the WebSocket accept
/// key) and an echo of every byte it sends, whatever its path; a page set
/// with [`CanaryNet::serve_page`] is served as HTML;
/// `/redirect?status=&to=` redirects; anything else is the plain page.
fn fixture_page(mut request: Request<Incoming>, fixture: &Fixture) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    fixture.requests.lock().unwrap().push(path.clone());
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
        // A WebSocket client checks the accept key; this one answers it.
        let accept = request
            .headers()
            .get("sec-websocket-key")
            .and_then(|key| key.to_str().ok())
            .map(websocket_accept);
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket");
        if let Some(accept) = accept {
            response = response.header("sec-websocket-accept", accept);
        }
        return response.body(Full::new(Bytes::new())).unwrap();
    }
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
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(FIXTURE_BODY.as_bytes())))
        .unwrap()
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 section 4.2.2).
fn websocket_accept(key: &str) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let mut hasher = sha1::Sha1::new();
    hasher.update(key.as_bytes());
    hasher.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_accept_matches_rfc_6455() {
        // The example of RFC 6455, section 1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
