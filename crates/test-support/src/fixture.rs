//! The fixture server: its routes, its shared counters and its lifetime.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::watch;

/// The fixture page served at `/`, `/page` and at the end of most other routes.
pub const PAGE_HTML: &str = concat!(
    "<html><head><title>Fixture</title></head><body>",
    "<h1>Hello Accord</h1>",
    "<p class=\"intro\">  Some   intro text </p>",
    "<ul>",
    "<li><a href=\"/a\">A</a></li>",
    "<li><a href=\"/b\">B</a></li>",
    "<li><a href=\"https://example.com/c\">C</a></li>",
    "</ul></body></html>",
);
/// The fixture's robots.txt: everything but `/robots-private` is allowed.
pub const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /robots-private\n";
/// Text of the page's `<title>`.
pub const PAGE_TITLE: &str = "Fixture";
/// Text of the page's `<h1>`.
pub const PAGE_H1: &str = "Hello Accord";
/// Text of `p.intro`, whitespace collapsed and trimmed.
pub const PAGE_INTRO: &str = "Some intro text";
/// The `href` of every `a` on the page, in document order.
pub const PAGE_LINKS: [&str; 3] = ["/a", "/b", "https://example.com/c"];
/// The body served at `/text` (as `text/plain`).
pub const TEXT_BODY: &str = "plain text from the fixture\n";
/// How long `/hang` (and the first `/hang-once/{key}`) waits before answering,
/// unless the server is dropped first.
pub const HANG_DURATION: Duration = Duration::from_secs(3_600);

/// A local HTTP server with fixed routes, bound to `127.0.0.1` on a free port.
///
/// | Route | Answer |
/// | --- | --- |
/// | `/`, `/page` | [`PAGE_HTML`] |
/// | `/flaky/{key}/{n}` | 503 for the first `n` requests of `key`, then the page |
/// | `/status/{code}` | that status with a small HTML body |
/// | `/redirect?to=URL` | 302 to `URL` (absolute or a path) |
/// | `/embed?src=URL` | a page (`<h1>embed</h1>`) whose image is loaded from `URL` |
/// | `/redirect-chain/{n}` | `n` redirects (through `/redirect-chain/{n-1}` ...), then the page |
/// | `/slow/{ms}` | the page after `ms` milliseconds |
/// | `/hang` | nothing for [`HANG_DURATION`] |
/// | `/hang-once/{key}` | nothing for the first request of `key`, then the page at once |
/// | `/big/{kib}` | an HTML page of exactly `kib` KiB |
/// | `/stream/{kib}` | the same, chunked, without `Content-Length` |
/// | `/text` | [`TEXT_BODY`] as `text/plain` |
/// | `/user-agent` | the request's `User-Agent` in `<p id="ua">` |
/// | `/robots.txt` | [`ROBOTS_TXT`]: disallows `/robots-private` |
/// | `/robots-private/...` | the page (which robots.txt disallows) |
/// | `/retry-after/{key}/{n}/{s}` | 429 with `Retry-After: s` for the first `n` requests of `key`, then the page |
/// | `/hostile/...` | costly and endless pages (see the `hostile` module) |
/// | `/app/...` | pages that need a browser (see the `browser_pages` module) |
/// | `/api/jobs`, `/jobs`, `/files/...` | a JSON API, a page of records, files (see the `data` module) |
///
/// It runs on a task of the current tokio runtime; dropping it stops accepting
/// connections and ends any request still sleeping in `/hang` or `/slow`.
#[derive(Debug)]
pub struct FixtureServer {
    addr: SocketAddr,
    state: Arc<Shared>,
    /// Dropping the sender is the shutdown signal: every receiver wakes up.
    _shutdown: watch::Sender<()>,
}

/// One request as the fixture saw it: its path, when its handling began and
/// when the answer was ready (on the test process's monotonic clock).
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub path: String,
    pub started: std::time::Instant,
    pub ended: std::time::Instant,
}

#[derive(Debug)]
struct Shared {
    /// Requests seen per path.
    hits: Mutex<HashMap<String, usize>>,
    /// Every request, in the order their answers were ready.
    log: Mutex<Vec<LoggedRequest>>,
    /// Requests seen per `/flaky/{key}` key.
    flaky: Mutex<HashMap<String, u32>>,
    /// Keys of `/hang-once/{key}` that have already hung once.
    hung: Mutex<HashSet<String>>,
}

#[derive(Debug, Clone)]
struct AppState {
    shared: Arc<Shared>,
    shutdown: watch::Receiver<()>,
}

impl FixtureServer {
    /// Binds `127.0.0.1:0` and starts serving on a spawned task.
    ///
    /// # Panics
    /// If the loopback listener cannot be bound: a test cannot run without it.
    pub async fn start() -> FixtureServer {
        Self::start_on(Ipv4Addr::LOCALHOST).await
    }

    /// Like [`start`](Self::start), on another loopback address
    /// (`127.x.y.z`): a host of its own, for tests of per-host behaviour.
    ///
    /// # Panics
    /// If the address cannot be bound.
    pub async fn start_on(ip: Ipv4Addr) -> FixtureServer {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind a loopback port for the fixture server");
        let addr = listener
            .local_addr()
            .expect("read the fixture listener's address");
        let state = Arc::new(Shared {
            hits: Mutex::default(),
            log: Mutex::default(),
            flaky: Mutex::default(),
            hung: Mutex::default(),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let app = router(AppState {
            shared: state.clone(),
            shutdown: shutdown_rx.clone(),
        });
        let mut signal = shutdown_rx;
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Resolves (with an error) once the sender is dropped.
                let _ = signal.changed().await;
            });
            // An accept error ends the fixture; the test then fails on connect.
            let _ = serve.await;
        });
        FixtureServer {
            addr,
            state,
            _shutdown: shutdown_tx,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An absolute URL on this server, e.g. `url("/page")`.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{slash}{path}", self.addr)
    }

    /// Every finished request to a path starting with `path_prefix`, in
    /// the order they began.
    pub fn requests(&self, path_prefix: &str) -> Vec<LoggedRequest> {
        let mut requests: Vec<LoggedRequest> = lock(&self.state.log)
            .iter()
            .filter(|request| request.path.starts_with(path_prefix))
            .cloned()
            .collect();
        requests.sort_by_key(|request| request.started);
        requests
    }

    /// How many requests have reached a path starting with `path_prefix`.
    pub fn hits(&self, path_prefix: &str) -> usize {
        lock(&self.state.hits)
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, count)| count)
            .sum()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A handler never panics while holding a lock; recover the data anyway.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/page", get(page))
        .route("/flaky/{key}/{n}", get(flaky))
        .route("/status/{code}", get(status))
        .route("/redirect", get(redirect))
        .route("/embed", get(embed))
        .route("/redirect-chain/{n}", get(redirect_chain))
        .route("/slow/{ms}", get(slow))
        .route("/hang", get(hang))
        .route("/hang-once/{key}", get(hang_once))
        .route("/big/{kib}", get(big))
        .route("/stream/{kib}", get(stream))
        .route("/text", get(text))
        .route("/user-agent", get(user_agent))
        .route("/robots.txt", get(robots_txt))
        .route("/robots-private/{*rest}", get(page))
        .route("/retry-after/{key}/{n}/{seconds}", get(retry_after))
        .merge(crate::hostile::routes())
        .merge(crate::browser_pages::routes())
        .merge(crate::data::routes())
        .layer(middleware::from_fn_with_state(state.clone(), count_hit))
        .with_state(state)
}

async fn count_hit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    {
        let mut hits = lock(&state.shared.hits);
        match hits.get_mut(&path) {
            Some(count) => *count += 1,
            None => {
                hits.insert(path.clone(), 1);
            }
        }
    }
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    lock(&state.shared.log).push(LoggedRequest {
        path,
        started,
        ended: std::time::Instant::now(),
    });
    response
}

/// 429 with `Retry-After: {seconds}` for the first `n` requests of `key`,
/// then the page.
async fn retry_after(
    State(state): State<AppState>,
    Path((key, n, seconds)): Path<(String, u32, u32)>,
) -> Response {
    let seen = {
        let mut flaky = lock(&state.shared.flaky);
        let seen = flaky.entry(format!("retry-after/{key}")).or_insert(0);
        *seen += 1;
        *seen
    };
    if seen <= n {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds.to_string())],
            "slow down\n",
        )
            .into_response()
    } else {
        Html(PAGE_HTML).into_response()
    }
}

async fn robots_txt() -> &'static str {
    ROBOTS_TXT
}

/// Sleeps for `duration` unless the server shuts down first.
async fn sleep_unless_shutdown(state: &AppState, duration: Duration) {
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = shutdown.changed() => {}
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE_HTML)
}

async fn flaky(
    State(state): State<AppState>,
    Path((key, failures)): Path<(String, u32)>,
) -> Response {
    let seen = {
        let mut flaky = lock(&state.shared.flaky);
        let seen = flaky.entry(key).or_insert(0);
        *seen += 1;
        *seen
    };
    if seen <= failures {
        (StatusCode::SERVICE_UNAVAILABLE, "flaky: try again\n").into_response()
    } else {
        Html(PAGE_HTML).into_response()
    }
}

async fn status(Path(code): Path<u16>) -> Response {
    match StatusCode::from_u16(code) {
        Ok(status) => (
            status,
            Html(format!("<html><body><p>status {code}</p></body></html>")),
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "not a status code\n").into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct RedirectQuery {
    to: String,
}

#[derive(Deserialize)]
struct EmbedQuery {
    src: String,
}

/// A page with one sub-resource from wherever `src` says (a browser loads it).
async fn embed(Query(query): Query<EmbedQuery>) -> Html<String> {
    let src = query
        .src
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Html(format!(
        "<!doctype html><html><body><h1>embed</h1><img src=\"{src}\"></body></html>"
    ))
}

async fn redirect(Query(query): Query<RedirectQuery>) -> Response {
    found(&query.to)
}

async fn redirect_chain(Path(remaining): Path<u32>) -> Response {
    match remaining.checked_sub(1) {
        Some(next) => found(&format!("/redirect-chain/{next}")),
        None => Html(PAGE_HTML).into_response(),
    }
}

/// A `302 Found` to `location` (absolute or a path).
fn found(location: &str) -> Response {
    // `Redirect::to` answers 303; redirects in the wild are mostly 302.
    match header::HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad redirect target\n").into_response(),
    }
}

async fn slow(State(state): State<AppState>, Path(ms): Path<u64>) -> Html<&'static str> {
    sleep_unless_shutdown(&state, Duration::from_millis(ms)).await;
    Html(PAGE_HTML)
}

async fn hang(State(state): State<AppState>) -> Html<&'static str> {
    sleep_unless_shutdown(&state, HANG_DURATION).await;
    Html(PAGE_HTML)
}

async fn hang_once(State(state): State<AppState>, Path(key): Path<String>) -> Html<&'static str> {
    let first = lock(&state.shared.hung).insert(key);
    if first {
        sleep_unless_shutdown(&state, HANG_DURATION).await;
    }
    Html(PAGE_HTML)
}

async fn big(Path(kib): Path<usize>) -> Html<String> {
    Html(big_page(kib.saturating_mul(1024)))
}

/// The same page as `/big/{kib}`, sent in 1 KiB chunks without a
/// `Content-Length`, so a client only learns its size by reading it.
async fn stream(Path(kib): Path<usize>) -> Response {
    let page = big_page(kib.saturating_mul(1024)).into_bytes();
    let chunks: Vec<Result<Bytes, Infallible>> = page
        .chunks(1024)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response()
}

/// An HTML page of exactly `size` bytes (or just its skeleton when `size` is
/// smaller than that).
fn big_page(size: usize) -> String {
    const HEAD: &str = "<html><head><title>Big</title></head><body><p>";
    const TAIL: &str = "</p></body></html>";
    let filler = size.saturating_sub(HEAD.len() + TAIL.len());
    let mut page = String::with_capacity(HEAD.len() + filler + TAIL.len());
    page.push_str(HEAD);
    // Words with spaces, so the page is text-like rather than one huge token.
    page.extend("lorem ipsum dolor sit amet ".chars().cycle().take(filler));
    page.push_str(TAIL);
    page
}

async fn text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        TEXT_BODY,
    )
}

/// Echoes the request's `User-Agent` in `<p id="ua">`.
async fn user_agent(headers: HeaderMap) -> Html<String> {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    Html(format!(
        "<html><body><p id=\"ua\">{}</p></body></html>",
        escape_html(agent)
    ))
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_pages_have_the_asked_size() {
        let check = |size: usize, expected: usize| assert_eq!(big_page(size).len(), expected);
        check(1024, 1024);
        check(64 * 1024, 64 * 1024);
        check(0, 64);
    }

    #[test]
    fn urls_join_paths() {
        let server = FixtureServer {
            addr: "127.0.0.1:8080".parse().unwrap(),
            state: Arc::new(Shared {
                hits: Mutex::default(),
                log: Mutex::default(),
                flaky: Mutex::default(),
                hung: Mutex::default(),
            }),
            _shutdown: watch::channel(()).0,
        };
        assert_eq!(server.url("/page"), "http://127.0.0.1:8080/page");
        assert_eq!(server.url("page"), "http://127.0.0.1:8080/page");
    }
}
