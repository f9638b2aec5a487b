//! Data the fixture serves for extraction, download and capture tests: a
//! JSON API, a page listing records, and files to download.
//!
//! | Route | Answer |
//! | --- | --- |
//! | `/api/jobs` | [`JOBS_JSON`] as `application/json`, with a `Set-Cookie` (captures must drop it) |
//! | `/jobs` | [`JOBS_HTML`]: the same postings as `li.job` records, with a download link |
//! | `/files/report.csv` | [`REPORT_CSV`] as `text/csv` |
//! | `/files/blob/{kib}` | `kib` KiB of bytes `0..=255` repeated, as `application/octet-stream` |
//! | `/paged/{n}` | page `n` of [`PAGED_PAGES`] pages of two `li.job` records each, with `a[rel=next]` to the next page (relative) except on the last |

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

/// The JSON API's answer: three postings and a total.
pub const JOBS_JSON: &str = r#"{"total":3,"jobs":[
{"id":1,"title":"Rust engineer","salary":120000,"remote":true,"tags":["rust","async"]},
{"id":2,"title":"SRE","salary":110000,"remote":false,"tags":["ops"]},
{"id":3,"title":"Designer","salary":null,"remote":true,"tags":[]}
],"meta":{"page":1,"next":null}}"#;

/// The `Set-Cookie` the JSON API sends.
pub const JOBS_COOKIE: &str = "session=fixture-secret; HttpOnly";

/// A page of postings: `li.job` records with a `data-id`, a title link, a
/// location (missing on one) and tags; a link to [`REPORT_CSV`] as
/// `a#report` (relative) and one with no `href` as `a#nowhere`.
pub const JOBS_HTML: &str = concat!(
    "<html><head><title>Jobs</title></head><body><h1>Open positions</h1>",
    "<ul class=\"jobs\">",
    "<li class=\"job\" data-id=\"1\"><a href=\"/jobs/1\">Rust engineer</a>",
    "<span class=\"loc\">Remote</span><span class=\"tag\">rust</span><span class=\"tag\">async</span></li>",
    "<li class=\"job\" data-id=\"2\"><a href=\"/jobs/2\">SRE</a>",
    "<span class=\"loc\">Berlin</span><span class=\"tag\">ops</span></li>",
    "<li class=\"job\" data-id=\"3\"><a href=\"/jobs/3\">Designer</a></li>",
    "</ul>",
    "<p><a id=\"report\" href=\"files/report.csv\">Download the report</a>",
    "<a id=\"nowhere\">No link</a></p>",
    "</body></html>",
);

/// The file at `/files/report.csv`.
pub const REPORT_CSV: &str = "id,title\n1,Rust engineer\n2,SRE\n3,Designer\n";

/// The data routes, to merge into the fixture's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/api/jobs", get(jobs_json))
        .route("/jobs", get(jobs_html))
        .route("/files/report.csv", get(report))
        .route("/files/blob/{kib}", get(blob))
        .route("/paged/{n}", get(paged))
}

/// How many pages `/paged/{n}` has.
pub const PAGED_PAGES: u32 = 3;

/// Page `n` of a paginated list: records `job-{n}-1` and `job-{n}-2`.
async fn paged(axum::extract::Path(n): axum::extract::Path<u32>) -> Html<String> {
    let next = if n < PAGED_PAGES {
        format!("<a rel=\"next\" href=\"{}\">Next</a>", n + 1)
    } else {
        String::new()
    };
    Html(format!(
        "<html><body><ul>\
         <li class=\"job\"><span class=\"title\">job-{n}-1</span></li>\
         <li class=\"job\"><span class=\"title\">job-{n}-2</span></li>\
         </ul>{next}</body></html>"
    ))
}

/// Largest blob served, so a typo cannot exhaust the test's memory.
const MAX_BLOB_KIB: usize = 64 * 1024;

async fn jobs_json() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::SET_COOKIE, JOBS_COOKIE),
        ],
        JOBS_JSON,
    )
}

async fn jobs_html() -> Html<&'static str> {
    Html(JOBS_HTML)
}

async fn report() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/csv")], REPORT_CSV)
}

async fn blob(axum::extract::Path(kib): axum::extract::Path<usize>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        blob_bytes(kib.min(MAX_BLOB_KIB)),
    )
}

/// The bytes `/files/blob/{kib}` serves.
pub fn blob_bytes(kib: usize) -> Vec<u8> {
    (0..=255u8).cycle().take(kib * 1024).collect()
}
