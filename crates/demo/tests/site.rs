//! The demo site over real HTTP on loopback: every page serves, and its
//! content moves across `advance()` exactly as the script documents.

use accord_demo::{script, DemoSite};
use scraper::{Html, Selector};

struct Page {
    status: u16,
    content_type: String,
    body: String,
}

async fn get(site: &DemoSite, path: &str) -> Page {
    let response = reqwest::get(site.url(path)).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    Page {
        status,
        content_type,
        body,
    }
}

/// The collapsed text of every element matching `selector`.
fn texts(html: &str, selector: &str) -> Vec<String> {
    let html = Html::parse_document(html);
    let selector = Selector::parse(selector).unwrap();
    html.select(&selector)
        .map(|e| {
            e.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn attrs(html: &str, selector: &str, attribute: &str) -> Vec<String> {
    let html = Html::parse_document(html);
    let selector = Selector::parse(selector).unwrap();
    html.select(&selector)
        .filter_map(|e| e.value().attr(attribute).map(str::to_owned))
        .collect()
}

/// The links of every posting over all three pages, in page order.
async fn listed(site: &DemoSite) -> Vec<String> {
    let mut all = Vec::new();
    for page in 1..=3 {
        let body = get(site, &format!("/jobs?page={page}")).await.body;
        all.extend(attrs(&body, "li.job h3 a", "href"));
    }
    assert_eq!(all.len(), script::postings(site.tick()).len());
    all
}

async fn advance_to(site: &DemoSite, tick: u64) {
    while site.tick() < tick {
        site.advance();
    }
    assert_eq!(site.tick(), tick);
}

#[tokio::test]
async fn every_page_serves() {
    let site = DemoSite::bind_loopback().await.unwrap();
    for path in [
        "/",
        "/news",
        "/jobs",
        "/jobs?page=2",
        "/jobs?page=3",
        "/jobs/1",
        "/product",
        "/status",
    ] {
        let page = get(&site, path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.content_type.starts_with("text/html"),
            "{path}: {}",
            page.content_type
        );
        assert!(page.body.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(
            page.body.contains("<style>"),
            "{path}: the stylesheet is inline"
        );
    }
    let index = get(&site, "/").await;
    let links = attrs(&index.body, "main a", "href");
    assert_eq!(
        links,
        ["/news", "/jobs", "/product", "/api/product.json", "/status"]
    );

    let robots = get(&site, "/robots.txt").await;
    assert_eq!(robots.status, 200);
    assert!(robots.content_type.starts_with("text/plain"));
    assert_eq!(robots.body, "User-agent: *\nAllow: /\n");

    let json = get(&site, "/api/product.json").await;
    assert_eq!(json.status, 200);
    assert_eq!(json.content_type, "application/json");
    assert_eq!(get(&site, "/nowhere").await.status, 404);
}

#[tokio::test]
async fn news_headlines_change_every_third_tick_and_the_counter_every_tick() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let tick0 = get(&site, "/news").await.body;
    assert_eq!(
        texts(&tick0, "ul.headlines li a"),
        [
            "Library extends weekend opening hours",
            "University team builds a solar-powered boat",
            "Tram line extension opens two months early",
            "Local bakery wins national sourdough award",
            "City council approves new riverside park",
        ]
    );
    assert_eq!(texts(&tick0, "p.meta")[0], "Monday, 2 March 2026");
    assert_eq!(
        texts(&tick0, "#updated"),
        [format!(
            "Last updated 09:00:00 UTC · updated {} seconds ago",
            script::updated_seconds_ago(0)
        )]
    );
    let visitors0 = texts(&tick0, "#visitors");
    assert_eq!(
        visitors0,
        [format!(
            "{} visitors today",
            script::thousands(script::visitors(0))
        )]
    );

    let mut previous = tick0;
    for tick in 1..=6 {
        site.advance();
        let page = get(&site, "/news").await.body;
        assert_ne!(
            texts(&page, "#visitors"),
            texts(&previous, "#visitors"),
            "tick {tick}"
        );
        assert!(texts(&page, "#updated")[0].contains(&format!(
            "Last updated {} UTC",
            script::site_time(tick).format("%H:%M:%S")
        )));
        let changed = texts(&page, "ul.headlines li a") != texts(&previous, "ul.headlines li a");
        assert_eq!(changed, tick % 3 == 0, "tick {tick}");
        assert_eq!(texts(&page, "ul.headlines li a"), script::headlines(tick));
        previous = page;
    }
    // Tick 6 is two epochs on: two new stories on top, two old ones gone.
    assert_eq!(
        texts(&previous, "ul.headlines li a"),
        [
            "Startup raises funding to recycle old batteries",
            "Heatwave expected to ease by Thursday",
            "Library extends weekend opening hours",
            "University team builds a solar-powered boat",
            "Tram line extension opens two months early",
        ]
    );
}

#[tokio::test]
async fn the_job_board_paginates_over_three_pages() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let first = get(&site, "/jobs").await.body;
    assert_eq!(first, get(&site, "/jobs?page=1").await.body);
    let ids = |html: &str| attrs(html, "li.job h3 a", "href");
    assert_eq!(
        ids(&first),
        (15..=24)
            .rev()
            .map(|id| format!("/jobs/{id}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(attrs(&first, "a.next", "href"), ["/jobs?page=2"]);
    assert_eq!(attrs(&first, "a.prev", "href"), Vec::<String>::new());
    assert_eq!(texts(&first, "p.meta"), ["24 open positions · page 1 of 3"]);

    let second = get(&site, "/jobs?page=2").await.body;
    assert_eq!(
        ids(&second),
        (5..=14)
            .rev()
            .map(|id| format!("/jobs/{id}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(attrs(&second, "a.next", "href"), ["/jobs?page=3"]);

    let third = get(&site, "/jobs?page=3").await.body;
    assert_eq!(ids(&third), ["/jobs/4", "/jobs/3", "/jobs/2", "/jobs/1"]);
    assert_eq!(attrs(&third, "a.next", "href"), Vec::<String>::new());
    assert_eq!(attrs(&third, "a.prev", "href"), ["/jobs?page=2"]);

    // Every posting has each field the demo monitor reads.
    let posting = script::posting(24, 0).unwrap();
    let html = Html::parse_document(&first);
    let item = html
        .select(&Selector::parse("li.job").unwrap())
        .next()
        .unwrap();
    let field = |css: &str| {
        item.select(&Selector::parse(css).unwrap())
            .next()
            .unwrap()
            .text()
            .collect::<String>()
    };
    assert_eq!(field("h3"), posting.title);
    assert_eq!(field(".company"), posting.company);
    assert_eq!(field(".location"), posting.location);
    assert_eq!(attrs(&first, "li.job time", "datetime")[0], "2026-02-13");

    assert_eq!(get(&site, "/jobs?page=4").await.status, 404);
    assert_eq!(get(&site, "/jobs?page=0").await.status, 404);
    let bad = get(&site, "/jobs?page=two").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body, "page must be a number from 1 to 3\n");

    let detail = get(&site, "/jobs/24").await;
    assert_eq!(detail.status, 200);
    assert_eq!(texts(&detail.body, "h1.title"), [posting.title]);
    assert_eq!(get(&site, "/jobs/25").await.status, 404, "not posted yet");
    assert_eq!(get(&site, "/jobs/x").await.status, 404);
}

#[tokio::test]
async fn postings_come_expire_and_move_to_remote_on_their_ticks() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let ids = |range: std::ops::RangeInclusive<u64>| {
        range
            .rev()
            .map(|id| format!("/jobs/{id}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&site).await, ids(1..=24));
    site.advance();
    assert_eq!(
        listed(&site).await,
        ids(1..=25),
        "one new posting on tick 1"
    );
    assert_eq!(get(&site, "/jobs/25").await.status, 200);
    advance_to(&site, 3).await;
    assert_eq!(listed(&site).await, ids(1..=27));
    site.advance();
    assert_eq!(
        listed(&site).await,
        ids(5..=28),
        "the four oldest expire on tick 4"
    );
    assert_eq!(get(&site, "/jobs/1").await.status, 404);

    let location = |body: &str, id: u64| {
        let html = Html::parse_document(body);
        let selector = Selector::parse("li.job").unwrap();
        let location = Selector::parse(".location").unwrap();
        let link = Selector::parse("h3 a").unwrap();
        html.select(&selector)
            .find(|item| {
                item.select(&link).next().unwrap().value().attr("href")
                    == Some(&format!("/jobs/{id}"))
            })
            .map(|item| {
                item.select(&location)
                    .next()
                    .unwrap()
                    .text()
                    .collect::<String>()
            })
    };
    advance_to(&site, 5).await;
    let before = get(&site, "/jobs?page=2").await.body;
    assert_ne!(location(&before, 20).as_deref(), Some("Remote"));
    site.advance();
    let after = get(&site, "/jobs?page=2").await.body;
    assert_eq!(
        location(&after, 20).as_deref(),
        Some("Remote"),
        "id 20 moves on tick 6"
    );
}

#[tokio::test]
async fn the_price_crosses_the_mark_at_its_ticks_on_the_page_and_in_json() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let expected = [
        "$1,299.00",
        "$1,279.00",
        "$1,249.00",
        "$1,099.00",
        "$999.00",
        "$949.00",
        "$979.00",
        "$1,049.00",
        "$1,149.00",
        "$1,199.00",
        "$1,249.00",
        "$1,289.00",
        "$1,299.00",
    ];
    for (tick, price) in expected.into_iter().enumerate() {
        advance_to(&site, tick as u64).await;
        let page = get(&site, "/product").await.body;
        assert_eq!(texts(&page, "#price"), [price], "tick {tick}");
        let json: serde_json::Value =
            serde_json::from_str(&get(&site, "/api/product.json").await.body).unwrap();
        assert_eq!(json["price_text"], price);
        let number = json["price"].as_f64().unwrap();
        assert_eq!(number, script::price(tick as u64));
        assert_eq!(
            number < script::PRICE_MARK,
            (4..=6).contains(&tick),
            "tick {tick}"
        );
    }
}

#[tokio::test]
async fn the_status_page_fails_and_recovers_at_its_ticks() {
    let site = DemoSite::bind_loopback().await.unwrap();
    // (status, has #status-ok, says "Service degraded") for ticks 0 to 13.
    let ok = (200, true, false);
    let down = (500, false, false);
    let degraded = (200, false, true);
    let expected = [
        ok, ok, ok, ok, ok, down, down, ok, ok, degraded, ok, ok, ok, ok,
    ];
    for (tick, want) in expected.into_iter().enumerate() {
        advance_to(&site, tick as u64).await;
        let page = get(&site, "/status").await;
        let got = (
            page.status,
            !texts(&page.body, "#status-ok").is_empty(),
            page.body.contains("Service degraded"),
        );
        assert_eq!(got, want, "tick {tick}");
    }
}

#[tokio::test]
async fn set_tick_jumps_to_a_case_of_the_script() {
    let site = DemoSite::bind_loopback().await.unwrap();
    site.set_tick(9);
    let page = get(&site, "/status").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Service degraded"));
    site.set_tick(5);
    assert_eq!(get(&site, "/status").await.status, 500);
    assert_eq!(site.advance(), 6);
}

#[tokio::test(start_paused = true)]
async fn the_timer_advances_the_script() {
    let mut site = DemoSite::bind_loopback().await.unwrap();
    site.start_timer(std::time::Duration::from_secs(10));
    tokio::time::sleep(std::time::Duration::from_millis(9_990)).await;
    assert_eq!(site.tick(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(site.tick(), 1);
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert_eq!(site.tick(), 4);
    site.stop_timer();
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    assert_eq!(site.tick(), 4);
}
