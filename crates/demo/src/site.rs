//! `DemoSite`: the demo pages served on loopback, and the tick that moves
//! them along the script.
//!
//! The tick is one atomic counter; every request renders its page from the
//! tick it reads, so a page is always one consistent tick. Tests call
//! [`DemoSite::advance`]; the real demo also starts a timer task
//! ([`DemoSite::start_timer`]). Dropping the site stops the server and the
//! timer.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pages;
use crate::script;

/// The real demo's default tick period.
pub const DEFAULT_TICK: Duration = Duration::from_secs(script::TICK_SECONDS);

/// The demo site, serving on a spawned task of the current tokio runtime.
///
/// | Route | Answer |
/// | --- | --- |
/// | `/` | an index linking every page |
/// | `/news` | headlines, a clock and a visitor counter ([`pages::news`]) |
/// | `/jobs?page=N` | the job board, pages 1 to 3; 404 past them, 400 for a page that is not a number |
/// | `/jobs/{id}` | one posting while it is listed, else 404 |
/// | `/product` | the product page with its price |
/// | `/api/product.json` | the same price as JSON |
/// | `/status` | the status page: 200, 500 or degraded by tick |
/// | `/robots.txt` | everything allowed |
#[derive(Debug)]
pub struct DemoSite {
    addr: SocketAddr,
    tick: Arc<AtomicU64>,
    timer: Option<JoinHandle<()>>,
    /// Dropping the sender is the shutdown signal.
    _shutdown: watch::Sender<()>,
}

impl DemoSite {
    /// Binds `127.0.0.1:0` and serves at tick 0, with no timer.
    pub async fn bind_loopback() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        Self::serve(listener)
    }

    /// Serves on `listener` at tick 0, with no timer.
    pub fn serve(listener: TcpListener) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let tick = Arc::new(AtomicU64::new(0));
        let (shutdown, mut signal) = watch::channel(());
        let app = router(tick.clone());
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Resolves (with an error) once the sender is dropped.
                let _ = signal.changed().await;
            });
            // An accept error ends the site; monitors then report it down.
            let _ = serve.await;
        });
        Ok(Self {
            addr,
            tick,
            timer: None,
            _shutdown: shutdown,
        })
    }

    /// Advances the script every `period` from now on (the first tick after
    /// one period), replacing any timer started before.
    pub fn start_timer(&mut self, period: Duration) {
        self.stop_timer();
        let tick = self.tick.clone();
        self.timer = Some(tokio::spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut interval = tokio::time::interval_at(start, period);
            // A stalled runtime moves the script on once, not in a burst.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                tick.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    /// Stops the timer, if one runs; the site stays at its tick.
    pub fn stop_timer(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }

    /// Moves the script one tick on and returns the new tick.
    pub fn advance(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Jumps the script to `tick` (forwards or back), for tests that want
    /// one case of the script without walking to it.
    pub fn set_tick(&self, tick: u64) {
        self.tick.store(tick, Ordering::SeqCst);
    }

    /// The tick the pages show now.
    pub fn tick(&self) -> u64 {
        self.tick.load(Ordering::SeqCst)
    }

    /// The address the site listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site's base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An absolute URL on the site, e.g. `url("/news")`.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{slash}{path}", self.addr)
    }
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        self.stop_timer();
    }
}

type Tick = Arc<AtomicU64>;

fn router(tick: Tick) -> Router {
    Router::new()
        .route("/", get(|| async { Html(pages::index()) }))
        .route("/robots.txt", get(robots))
        .route("/news", get(news))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/product", get(product))
        .route("/api/product.json", get(product_json))
        .route("/status", get(status))
        .with_state(tick)
}

fn now(tick: &Tick) -> u64 {
    tick.load(Ordering::SeqCst)
}

async fn robots() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        pages::ROBOTS_TXT,
    )
}

async fn news(State(tick): State<Tick>) -> Html<String> {
    Html(pages::news(now(&tick)))
}

#[derive(Debug, Deserialize)]
struct JobsQuery {
    page: Option<String>,
}

async fn jobs(State(tick): State<Tick>, Query(query): Query<JobsQuery>) -> Response {
    let page = match query.page.as_deref() {
        None => 1,
        Some(text) => match text.parse::<usize>() {
            Ok(page) => page,
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("page must be a number from 1 to {}\n", script::JOB_PAGES),
                )
                    .into_response()
            }
        },
    };
    match pages::jobs(now(&tick), page) {
        Some(html) => Html(html).into_response(),
        None => not_found(),
    }
}

async fn job(State(tick): State<Tick>, Path(id): Path<String>) -> Response {
    let posting = id
        .parse::<u64>()
        .ok()
        .and_then(|id| script::posting(id, now(&tick)));
    match posting {
        Some(posting) => Html(pages::job(&posting)).into_response(),
        None => not_found(),
    }
}

async fn product(State(tick): State<Tick>) -> Html<String> {
    Html(pages::product(now(&tick)))
}

async fn product_json(State(tick): State<Tick>) -> Json<serde_json::Value> {
    Json(pages::product_json(now(&tick)))
}

async fn status(State(tick): State<Tick>) -> Response {
    let (code, html) = pages::status(now(&tick));
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Html(html)).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!DOCTYPE html>\n<html><head><title>Not found</title></head><body><h1>Not found</h1></body></html>\n"),
    )
        .into_response()
}
