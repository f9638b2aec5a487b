//! Pages that need a browser, served by the fixture under `/app/...`: what
//! the Chromium engine's tests drive. Their expected contents are exported
//! as constants so tests compare against the same values.
//!
//! | Route | Answer |
//! | --- | --- |
//! | `/app/list` | an empty list filled by a script from `/app/api/jobs` ([`APP_JOBS`]) |
//! | `/app/api/jobs` | the jobs as JSON: `{"total": 3, "jobs": [{"id", "title", "location"}]}` |
//! | `/app/login` | a login form; POST with [`APP_USER`]/[`APP_PASSWORD`] sets the session cookie and redirects to `/app/account` |
//! | `/app/account` | `#welcome` with the cookie, `#anonymous` without |
//! | `/app/form` | a form with a text field, a select and a checkbox, submitted (GET) to `/app/form/result` |
//! | `/app/form/result` | the submitted values in `#name`, `#size`, `#gift` |
//! | `/app/lazy` | [`APP_LAZY_PAGE`] items, [`APP_LAZY_PAGES`] more pages loaded as the page is scrolled down |
//! | `/app/api/items?page=N` | one page of lazy items as JSON |
//! | `/app/xhr` | a page whose script calls `/app/api/data` with an `Authorization` header |
//! | `/app/api/data` | [`APP_DATA_JSON`], with a `Set-Cookie` header |
//! | `/app/downloads` | a link (`#report`) to `/app/download/report.csv` |
//! | `/app/download/report.csv` | [`APP_REPORT_CSV`] as an attachment |
//! | `/app/download/big/{kib}` | `kib` KiB of zeros as an attachment |
//! | `/app/never` | a page whose image never loads: `DOMContentLoaded`, never `load` |
//! | `/app/console` | a page that logs an error and throws while loading |
//! | `/app/tall` | a page [`APP_TALL_HEIGHT`] pixels tall |

use axum::extract::Query;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

/// The jobs `/app/list` renders and `/app/api/jobs` serves: (id, title, location).
pub const APP_JOBS: [(&str, &str, &str); 3] = [
    ("101", "Rust Engineer", "Remote"),
    ("102", "Site Reliability Engineer", "Berlin"),
    ("103", "Data Analyst", "Lisbon"),
];
/// The user `/app/login` accepts.
pub const APP_USER: &str = "alice";
/// The password `/app/login` accepts.
pub const APP_PASSWORD: &str = "correct horse";
/// The session cookie a successful login sets.
pub const APP_SESSION_COOKIE: &str = "accord_session";
/// Items `/app/lazy` shows at first, and per page loaded on scroll.
pub const APP_LAZY_PAGE: usize = 10;
/// Pages `/app/lazy` loads on scroll after the first.
pub const APP_LAZY_PAGES: usize = 4;
/// The body of `/app/api/data`.
pub const APP_DATA_JSON: &str = r#"{"items":["alpha","beta"],"count":2}"#;
/// The file `/app/download/report.csv` serves.
pub const APP_REPORT_CSV: &str = "id,title\n101,Rust Engineer\n102,Site Reliability Engineer\n";
/// Height of `/app/tall`, in CSS pixels.
pub const APP_TALL_HEIGHT: u32 = 3000;

const SESSION_VALUE: &str = "signed-in-alice";

/// The browser routes, to merge into the fixture's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/app/list", get(list))
        .route("/app/api/jobs", get(jobs_json))
        .route("/app/login", get(login_form).post(login))
        .route("/app/account", get(account))
        .route("/app/form", get(form))
        .route("/app/form/result", get(form_result))
        .route("/app/lazy", get(lazy))
        .route("/app/api/items", get(lazy_items))
        .route("/app/xhr", get(xhr))
        .route("/app/api/data", get(data))
        .route("/app/downloads", get(downloads))
        .route("/app/download/report.csv", get(report))
        .route("/app/download/big/{kib}", get(big_download))
        .route("/app/never", get(never))
        .route("/app/console", get(console))
        .route("/app/tall", get(tall))
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body>{body}</body></html>"
    ))
}

async fn list() -> Html<String> {
    page(
        "Jobs",
        r#"<h1>Open positions</h1><ul id="jobs"></ul><p id="status">loading</p>
<script>
fetch('/app/api/jobs').then((r) => r.json()).then((data) => {
  const list = document.getElementById('jobs');
  for (const job of data.jobs) {
    const li = document.createElement('li');
    li.className = 'job';
    li.dataset.id = job.id;
    li.innerHTML = '<a href="/app/jobs/' + job.id + '"></a> <span class="loc"></span>';
    li.querySelector('a').textContent = job.title;
    li.querySelector('.loc').textContent = job.location;
    list.appendChild(li);
  }
  document.getElementById('status').textContent = data.total + ' jobs';
});
</script>"#,
    )
}

async fn jobs_json() -> Response {
    let jobs: Vec<serde_json::Value> = APP_JOBS
        .iter()
        .map(|(id, title, location)| {
            serde_json::json!({ "id": id, "title": title, "location": location })
        })
        .collect();
    let body = serde_json::json!({ "total": APP_JOBS.len(), "jobs": jobs });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn login_form() -> Html<String> {
    page(
        "Sign in",
        r#"<form id="login" method="post" action="/app/login">
<label>User <input id="user" name="user" required></label>
<label>Password <input id="password" name="password" type="password" required></label>
<button id="sign-in" type="submit">Sign in</button>
</form>"#,
    )
}

#[derive(Debug, Deserialize)]
struct Credentials {
    user: String,
    password: String,
}

async fn login(Form(credentials): Form<Credentials>) -> Response {
    if credentials.user == APP_USER && credentials.password == APP_PASSWORD {
        let cookie =
            format!("{APP_SESSION_COOKIE}={SESSION_VALUE}; Path=/; HttpOnly; SameSite=Lax");
        ([(header::SET_COOKIE, cookie)], Redirect::to("/app/account")).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            page("Sign in", r#"<p id="error">Invalid credentials</p>"#),
        )
            .into_response()
    }
}

async fn account(headers: HeaderMap) -> Html<String> {
    let signed_in = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .any(|pair| pair.trim() == format!("{APP_SESSION_COOKIE}={SESSION_VALUE}"));
    if signed_in {
        page(
            "Account",
            &format!(r#"<h1 id="welcome">Welcome, {APP_USER}</h1>"#),
        )
    } else {
        page("Account", r#"<p id="anonymous">Please sign in</p>"#)
    }
}

async fn form() -> Html<String> {
    page(
        "Order",
        r#"<form id="order" method="get" action="/app/form/result">
<input id="name" name="name">
<select id="size" name="size"><option value="s">Small</option><option value="m">Medium</option><option value="l">Large</option></select>
<label><input id="gift" name="gift" type="checkbox" value="yes"> Gift wrap</label>
<label><input id="newsletter" name="newsletter" type="checkbox" value="yes" checked> Newsletter</label>
<button id="send" type="submit">Order</button>
</form>"#,
    )
}

#[derive(Debug, Deserialize)]
struct Order {
    #[serde(default)]
    name: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    gift: Option<String>,
    #[serde(default)]
    newsletter: Option<String>,
}

async fn form_result(Query(order): Query<Order>) -> Html<String> {
    page(
        "Ordered",
        &format!(
            r#"<dl><dt>Name</dt><dd id="name">{}</dd><dt>Size</dt><dd id="size">{}</dd>
<dt>Gift</dt><dd id="gift">{}</dd><dt>Newsletter</dt><dd id="newsletter">{}</dd></dl>"#,
            escape(&order.name),
            escape(&order.size),
            order.gift.as_deref().unwrap_or("no"),
            order.newsletter.as_deref().unwrap_or("no"),
        ),
    )
}

async fn lazy() -> Html<String> {
    let first: String = (0..APP_LAZY_PAGE)
        .map(|n| format!(r#"<li class="item">Item {n}</li>"#))
        .collect();
    page(
        "Lazy",
        &format!(
            r#"<style>.item {{ height: 120px; }}</style><ul id="items">{first}</ul>
<script>
let next = 1, loading = false;
window.addEventListener('scroll', () => {{
  const atBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 50;
  if (!atBottom || loading || next > {pages}) return;
  loading = true;
  fetch('/app/api/items?page=' + next).then((r) => r.json()).then((items) => {{
    const list = document.getElementById('items');
    for (const text of items) {{
      const li = document.createElement('li');
      li.className = 'item';
      li.textContent = text;
      list.appendChild(li);
    }}
    next += 1;
    loading = false;
  }});
}});
</script>"#,
            pages = APP_LAZY_PAGES
        ),
    )
}

#[derive(Debug, Deserialize)]
struct LazyPage {
    page: usize,
}

async fn lazy_items(Query(query): Query<LazyPage>) -> Response {
    let page = query.page.min(APP_LAZY_PAGES);
    let items: Vec<String> = (0..APP_LAZY_PAGE)
        .map(|n| format!("Item {}", page * APP_LAZY_PAGE + n))
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&items).unwrap_or_default(),
    )
        .into_response()
}

async fn xhr() -> Html<String> {
    page(
        "Data",
        r#"<ul id="data"></ul>
<script>
fetch('/app/api/data', { headers: { 'Authorization': 'Bearer fixture-secret', 'X-Fixture': 'yes' } })
  .then((r) => r.json())
  .then((data) => {
    for (const item of data.items) {
      const li = document.createElement('li');
      li.textContent = item;
      document.getElementById('data').appendChild(li);
    }
  });
</script>"#,
    )
}

async fn data() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::SET_COOKIE, "tracking=fixture-cookie; Path=/"),
        ],
        APP_DATA_JSON,
    )
        .into_response()
}

async fn downloads() -> Html<String> {
    page(
        "Downloads",
        r#"<a id="report" href="/app/download/report.csv">Report</a>
<a id="big" href="/app/download/big/2048">Big file</a>"#,
    )
}

async fn report() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"report.csv\"",
            ),
        ],
        APP_REPORT_CSV,
    )
        .into_response()
}

async fn big_download(axum::extract::Path(kib): axum::extract::Path<usize>) -> Response {
    let bytes = vec![0u8; kib.min(64 * 1024) * 1024];
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"big.bin\"",
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn never() -> Html<String> {
    page(
        "Never",
        r#"<h1 id="title">Almost there</h1><img src="/hang" alt="never loads">"#,
    )
}

async fn console() -> Html<String> {
    page(
        "Console",
        r#"<h1>Console</h1>
<script>console.log('fixture says hello'); console.error('fixture error: broken widget');</script>
<script>throw new Error('fixture exception');</script>"#,
    )
}

async fn tall() -> Html<String> {
    page(
        "Tall",
        &format!(
            r#"<style>body {{ margin: 0; }} h1 {{ margin: 0; }} #tall {{ height: {APP_TALL_HEIGHT}px; background: linear-gradient(#fff, #36c); }}</style>
<div id="tall"><h1 id="head">Top of a tall page</h1></div>"#
        ),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
