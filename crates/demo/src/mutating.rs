//! `MutatingSite`: N small pages `/p/{i}` whose content changes only when
//! told, for `accord bench monitors` (N `page_change` monitors, then a known
//! set of pages mutated and timed until all are reported changed).
//!
//! Built to stay out of the benchmark's way: each page is a version number
//! in an atomic, read without a lock, and a request costs one small string;
//! no logging, no per-request state. Deliberately does not time anything
//! (the benchmark does).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::pages::ROBOTS_TXT;

/// A page index past the site's last page; reads after "failed to".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mutate page {page}: the site has {pages} pages, numbered from 0")]
pub struct PageOutOfRange {
    pub page: usize,
    pub pages: usize,
}

#[derive(Debug)]
struct Pages {
    versions: Box<[AtomicU64]>,
    requests: AtomicU64,
}

/// N pages on loopback, `/p/0` to `/p/{N-1}`, each showing its version
/// (`<p id="version">Version 3</p>`) among text that never changes.
/// `/robots.txt` allows everything; other paths are 404.
#[derive(Debug)]
pub struct MutatingSite {
    addr: SocketAddr,
    pages: Arc<Pages>,
    /// Dropping the sender is the shutdown signal.
    _shutdown: watch::Sender<()>,
}

impl MutatingSite {
    /// Binds `127.0.0.1:0` and serves `pages` pages, all at version 0.
    pub async fn bind_loopback(pages: usize) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        Self::serve(listener, pages)
    }

    /// Serves `pages` pages on `listener`, all at version 0.
    pub fn serve(listener: TcpListener, pages: usize) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let pages = Arc::new(Pages {
            versions: (0..pages).map(|_| AtomicU64::new(0)).collect(),
            requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/p/{page}", get(page))
            .route("/robots.txt", get(robots))
            .with_state(pages.clone());
        let (shutdown, mut signal) = watch::channel(());
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = signal.changed().await;
            });
            let _ = serve.await;
        });
        Ok(Self {
            addr,
            pages,
            _shutdown: shutdown,
        })
    }

    /// How many pages the site serves.
    pub fn len(&self) -> usize {
        self.pages.versions.len()
    }

    /// Whether the site serves no page at all.
    pub fn is_empty(&self) -> bool {
        self.pages.versions.is_empty()
    }

    /// Bumps the version of every page in `pages` (a page listed twice is
    /// bumped twice). Checks every index first, so an error changes nothing.
    pub fn mutate(&self, pages: &[usize]) -> Result<(), PageOutOfRange> {
        let len = self.len();
        if let Some(&page) = pages.iter().find(|&&page| page >= len) {
            return Err(PageOutOfRange { page, pages: len });
        }
        for &page in pages {
            self.pages.versions[page].fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// `count` pages spread evenly over the site (`0, N/count, ...`), a
    /// known set to mutate; all pages when `count` is at least N.
    pub fn spread(&self, count: usize) -> Vec<usize> {
        let len = self.len();
        if count >= len {
            return (0..len).collect();
        }
        (0..count).map(|i| i * len / count).collect()
    }

    /// The version page `page` shows now, if the site has it.
    pub fn version(&self, page: usize) -> Option<u64> {
        self.pages
            .versions
            .get(page)
            .map(|v| v.load(Ordering::SeqCst))
    }

    /// Requests answered for `/p/{i}` so far (any page, found or not).
    pub fn requests(&self) -> u64 {
        self.pages.requests.load(Ordering::Relaxed)
    }

    /// The address the site listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site's base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URL of page `page`.
    pub fn url(&self, page: usize) -> String {
        format!("http://{}/p/{page}", self.addr)
    }
}

/// The body of page `page` at `version`.
pub fn page_html(page: usize, version: u64) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>Page {page}</title></head><body>\
         <h1>Page {page}</h1><p>A page of the Accord benchmark site. Its text changes \
         only when the benchmark mutates it.</p><p id=\"version\">Version {version}</p>\
         </body></html>\n"
    )
}

async fn page(State(pages): State<Arc<Pages>>, Path(page): Path<String>) -> Response {
    pages.requests.fetch_add(1, Ordering::Relaxed);
    let version = page
        .parse::<usize>()
        .ok()
        .and_then(|i| Some((i, pages.versions.get(i)?.load(Ordering::SeqCst))));
    match version {
        Some((i, version)) => Html(page_html(i, version)).into_response(),
        None => (StatusCode::NOT_FOUND, "no such page\n").into_response(),
    }
}

async fn robots() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        ROBOTS_TXT,
    )
}
