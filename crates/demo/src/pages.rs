//! The demo site's HTML and JSON at a given tick, rendered from the script.
//!
//! Pages look like the real thing (a shared stylesheet inline, no external
//! assets, no scripts), so the HTTP engine sees what it would see on the
//! web. Element names the demo monitors rely on are documented on each
//! function. Deliberately does no IO.

use std::fmt::Write as _;

use crate::script::{self, Posting, StatusPhase, JOB_PAGES};

/// The stylesheet every page inlines.
const STYLE: &str = "\
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}\
header{background:#24292f;color:#fff;padding:.8rem 1.5rem}\
header a{color:#fff;margin-right:1rem;text-decoration:none}\
main{max-width:46rem;margin:1.5rem auto;background:#fff;padding:1.5rem;border:1px solid #d0d7de;border-radius:6px}\
h1{margin-top:0}.meta{color:#57606a;font-size:.9rem}\
ul.headlines li,ul.jobs li{margin:.6rem 0}\
li.job h3{margin:0;font-size:1.05rem}.company{font-weight:600;margin-right:.5rem}\
.price{font-size:2rem;font-weight:700;color:#1a7f37}.was{text-decoration:line-through;color:#57606a}\
.ok{background:#dafbe1;padding:.8rem;border-radius:6px}.bad{background:#ffebe9;padding:.8rem;border-radius:6px}\
nav.pages a{margin-right:1rem}footer{text-align:center;color:#57606a;font-size:.8rem;margin:1rem}";

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `main` (already HTML).
fn layout(title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Accord demo</title><style>{STYLE}</style></head>\n<body>\
         <header><a href=\"/\"><strong>Accord demo</strong></a>\
         <a href=\"/news\">News</a><a href=\"/jobs\">Jobs</a>\
         <a href=\"/product\">Product</a><a href=\"/status\">Status</a></header>\n\
         <main>\n{main}</main>\n\
         <footer>A demo site served by Accord on loopback. Its pages change on a script.</footer>\
         </body></html>\n",
        title = escape(title),
    )
}

/// `/`: links to every page and what to watch on it.
pub fn index() -> String {
    layout(
        "Welcome",
        "<h1>Accord demo site</h1>\n\
         <p>Every page here changes while you watch. Accord's demo monitors check them \
         every few seconds.</p>\n<ul>\n\
         <li><a href=\"/news\">News</a>: a new top story every few ticks; the clock and \
         visitor counter change every tick and are ignored.</li>\n\
         <li><a href=\"/jobs\">Jobs</a>: a board over three pages that gains and loses \
         postings.</li>\n\
         <li><a href=\"/product\">Product</a>: a price that moves, and the same as \
         <a href=\"/api/product.json\">JSON</a>.</li>\n\
         <li><a href=\"/status\">Status</a>: healthy, then failing, then recovered.</li>\n\
         </ul>\n",
    )
}

/// `/robots.txt`: everything allowed.
pub const ROBOTS_TXT: &str = "User-agent: *\nAllow: /\n";

/// `/news` at `tick`. Headlines are `ul.headlines li a`; the clock and
/// "updated N seconds ago" are `#updated`; the visitor counter is
/// `#visitors`.
pub fn news(tick: u64) -> String {
    let time = script::site_time(tick);
    let mut main = String::with_capacity(2048);
    main.push_str("<h1>The Daily Loopback</h1>\n");
    let _ = writeln!(
        main,
        "<p class=\"meta\">{date}</p>\n\
         <p class=\"meta\" id=\"updated\">Last updated {clock} UTC · updated {ago} seconds ago</p>",
        date = time.format("%A, %-d %B %Y"),
        clock = time.format("%H:%M:%S"),
        ago = script::updated_seconds_ago(tick),
    );
    main.push_str("<h2>Top stories</h2>\n<ul class=\"headlines\">\n");
    for (i, headline) in script::headlines(tick).into_iter().enumerate() {
        let slug: String = headline
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let _ = writeln!(
            main,
            "<li><a href=\"/news#{slug}\">{headline}</a>{badge}</li>",
            headline = escape(headline),
            badge = if i == 0 { " <em>New</em>" } else { "" },
        );
    }
    main.push_str("</ul>\n");
    let _ = writeln!(
        main,
        "<p id=\"visitors\" class=\"meta\">{} visitors today</p>",
        script::thousands(script::visitors(tick)),
    );
    layout("News", &main)
}

/// `/jobs?page=N` at `tick`, or none past the last page. Each posting is an
/// `li.job` with `h3 a` (title, `href` `/jobs/ID`), `.company`,
/// `.location` and `time[datetime]`; the next page's link is `a.next`
/// (also `rel="next"`), on every page but the last.
pub fn jobs(tick: u64, page: usize) -> Option<String> {
    let postings = script::job_page(tick, page)?;
    let total = script::postings(tick).len();
    let mut main = String::with_capacity(4096);
    main.push_str("<h1>Loopback Jobs</h1>\n");
    let _ = writeln!(
        main,
        "<p class=\"meta\">{total} open positions · page {page} of {JOB_PAGES}</p>"
    );
    main.push_str("<ul class=\"jobs\">\n");
    for posting in &postings {
        let _ = writeln!(
            main,
            "<li class=\"job\"><h3><a href=\"/jobs/{id}\">{title}</a></h3>\
             <span class=\"company\">{company}</span> · \
             <span class=\"location\">{location}</span> · \
             <time datetime=\"{date}\">{shown}</time></li>",
            id = posting.id,
            title = escape(posting.title),
            company = escape(posting.company),
            location = escape(posting.location),
            date = posting.posted.format("%Y-%m-%d"),
            shown = posting.posted.format("%b %-d, %Y"),
        );
    }
    if postings.is_empty() {
        main.push_str("<li>No more positions.</li>\n");
    }
    main.push_str("</ul>\n<nav class=\"pages\">");
    if page > 1 {
        let _ = write!(
            main,
            "<a class=\"prev\" rel=\"prev\" href=\"/jobs?page={}\">Previous</a>",
            page - 1
        );
    }
    if page < JOB_PAGES {
        let _ = write!(
            main,
            "<a class=\"next\" rel=\"next\" href=\"/jobs?page={}\">Next page</a>",
            page + 1
        );
    }
    main.push_str("</nav>\n");
    Some(layout(&format!("Jobs, page {page}"), &main))
}

/// `/jobs/ID`: one posting, while it is listed.
pub fn job(posting: &Posting) -> String {
    let main = format!(
        "<h1 class=\"title\">{title}</h1>\n\
         <p><span class=\"company\">{company}</span> · <span class=\"location\">{location}</span> · \
         posted <time datetime=\"{date}\">{shown}</time></p>\n\
         <p>We are looking for a {title} to join {company}. Apply by email.</p>\n\
         <p><a href=\"/jobs\">All positions</a></p>\n",
        title = escape(posting.title),
        company = escape(posting.company),
        location = escape(posting.location),
        date = posting.posted.format("%Y-%m-%d"),
        shown = posting.posted.format("%b %-d, %Y"),
    );
    layout(posting.title, &main)
}

/// The product's name.
pub const PRODUCT_NAME: &str = "Loopback Pro 14\" Laptop";

/// `/product` at `tick`. The price is `#price` (text like `$1,299.00`).
pub fn product(tick: u64) -> String {
    let main = format!(
        "<h1>{name}</h1>\n\
         <div class=\"product-info\">\n\
         <p class=\"price\" id=\"price\">{price}</p>\n\
         <p>List price <span class=\"was\">$1,499.00</span> · <span class=\"stock\">In stock</span></p>\n\
         </div>\n\
         <p class=\"meta\" id=\"viewers\">{viewers} people are looking at this right now</p>\n\
         <p>14-inch display, 32 GB memory, 1 TB storage. Ships in 2 days.</p>\n",
        name = escape(PRODUCT_NAME),
        price = script::format_price(script::price_cents(tick)),
        viewers = script::viewers(tick),
    );
    layout("Product", &main)
}

/// `/api/product.json` at `tick`: the same price, as JSON (`/price` is the
/// number of dollars).
pub fn product_json(tick: u64) -> serde_json::Value {
    let cents = script::price_cents(tick);
    serde_json::json!({
        "sku": "LBP-14",
        "name": PRODUCT_NAME,
        "price": script::price(tick),
        "price_text": script::format_price(cents),
        "currency": "USD",
        "in_stock": true,
    })
}

/// `/status` at `tick`: the HTTP status to answer with and the page.
/// Healthy shows `#status-ok` with "All systems operational"; degraded
/// shows "Service degraded" and no `#status-ok`; down is a bare 500 page.
pub fn status(tick: u64) -> (u16, String) {
    let phase = script::status_at(tick);
    let time = script::site_time(tick).format("%H:%M:%S");
    let latency = script::api_latency_ms(tick);
    match phase {
        StatusPhase::Healthy => (
            200,
            layout(
                "Status",
                &format!(
                    "<h1>Loopback status</h1>\n\
                     <div id=\"status-ok\" class=\"ok\">All systems operational</div>\n\
                     <ul><li>API: {latency} ms</li><li>Website: up</li><li>Jobs: up</li></ul>\n\
                     <p class=\"meta\">Checked at {time} UTC</p>\n"
                ),
            ),
        ),
        StatusPhase::Degraded => (
            200,
            layout(
                "Status",
                &format!(
                    "<h1>Loopback status</h1>\n\
                     <div id=\"status-degraded\" class=\"bad\">Service degraded: the API is \
                     answering slowly</div>\n\
                     <ul><li>API: {latency} ms</li><li>Website: up</li><li>Jobs: up</li></ul>\n\
                     <p class=\"meta\">Checked at {time} UTC</p>\n"
                ),
            ),
        ),
        StatusPhase::Down => (
            500,
            "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\
             <body><h1>Internal Server Error</h1><p>The server could not answer.</p></body></html>\n"
                .to_owned(),
        ),
    }
}
