//! Pages that misbehave on purpose, as a page owner who does not want to
//! be watched might serve them: markup that is costly to parse, bodies
//! that never end. Served by the fixture under `/hostile/...`.
//!
//! | Route | Answer |
//! | --- | --- |
//! | `/hostile/nested/{n}` | `n` nested `<div>`s (150,000 is about 0.8 MB) |
//! | `/hostile/attributes/{n}` | one element with `n` distinct attributes |
//! | `/hostile/wide/{n}` | `n` sibling `<p>` elements |
//! | `/hostile/scopes/{n}` | 400 nested `<div>`s, then `n` `<p>`s: every `<p>` scans the open elements |
//! | `/hostile/endless` | a chunked body that never ends, one KiB every 10 ms |

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The hostile routes, to merge into the fixture's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/hostile/nested/{n}", get(nested))
        .route("/hostile/attributes/{n}", get(attributes))
        .route("/hostile/wide/{n}", get(wide))
        .route("/hostile/scopes/{n}", get(scopes))
        .route("/hostile/endless", get(endless))
}

/// Largest `n` any route takes, so a typo cannot exhaust the test's memory.
const MAX_N: usize = 2_000_000;

async fn nested(Path(n): Path<usize>) -> Html<String> {
    Html(format!("<html><body>{}deep", "<div>".repeat(n.min(MAX_N))))
}

async fn attributes(Path(n): Path<usize>) -> Html<String> {
    let mut page = String::from("<html><body><p");
    for i in 0..n.min(MAX_N) {
        page.push_str(&format!(" a{i}=\"v\""));
    }
    page.push_str(">x</p></body></html>");
    Html(page)
}

async fn wide(Path(n): Path<usize>) -> Html<String> {
    Html(format!(
        "<html><body>{}</body></html>",
        "<p>x</p>".repeat(n.min(MAX_N))
    ))
}

async fn scopes(Path(n): Path<usize>) -> Html<String> {
    Html(format!(
        "<html><body>{}{}",
        "<div>".repeat(400),
        "<p>x".repeat(n.min(MAX_N))
    ))
}

async fn endless() -> Response {
    let chunk = Bytes::from("<p>more</p>".repeat(93));
    let stream = futures::stream::unfold(chunk, |chunk| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Some((Ok::<_, Infallible>(chunk.clone()), chunk))
    });
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response()
}
