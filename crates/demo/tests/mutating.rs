//! The benchmark's mutating site over real HTTP: pages change only when
//! mutated, exactly the pages mutated, and a page_change monitor sees it.

use accord_demo::{page_html, MutatingSite, PageOutOfRange};
use accord_workflows::{page_change, PageCapture, PageChangeInput, PreviousPage};

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn only_the_mutated_pages_change() {
    let site = MutatingSite::bind_loopback(100).await.unwrap();
    assert_eq!(site.len(), 100);
    let mut before = Vec::new();
    for page in 0..100 {
        let (status, body) = get(&site.url(page)).await;
        assert_eq!(status, 200);
        assert_eq!(body, page_html(page, 0));
        before.push(body);
    }
    let set = site.spread(10);
    assert_eq!(set, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    site.mutate(&set).unwrap();
    for (page, before) in before.iter().enumerate() {
        let (_, body) = get(&site.url(page)).await;
        let mutated = set.contains(&page);
        assert_eq!(&body != before, mutated, "page {page}");
        assert_eq!(site.version(page), Some(u64::from(mutated)));
        if mutated {
            assert!(body.contains("<p id=\"version\">Version 1</p>"));
        }
    }
    assert_eq!(site.requests(), 200);

    // A bad index changes nothing and says which.
    let err = site.mutate(&[1, 100]).unwrap_err();
    assert_eq!(
        err,
        PageOutOfRange {
            page: 100,
            pages: 100
        }
    );
    assert_eq!(
        err.to_string(),
        "mutate page 100: the site has 100 pages, numbered from 0"
    );
    assert_eq!(site.version(1), Some(0));

    assert_eq!(get(&format!("{}/p/100", site.base_url())).await.0, 404);
    assert_eq!(get(&format!("{}/p/x", site.base_url())).await.0, 404);
    let (status, robots) = get(&format!("{}/robots.txt", site.base_url())).await;
    assert_eq!(
        (status, robots.as_str()),
        (200, "User-agent: *\nAllow: /\n")
    );
    assert_eq!(site.spread(1_000).len(), 100);
}

#[tokio::test]
async fn a_page_change_monitor_sees_a_mutation_as_one_changed_line() {
    let site = MutatingSite::bind_loopback(3).await.unwrap();
    let input = PageChangeInput::default();
    let capture = |body: String| PageCapture {
        body,
        content_type: Some("text/html; charset=utf-8".to_owned()),
        screenshot_png: None,
    };
    let first = page_change(&input, &capture(get(&site.url(2)).await.1), None).unwrap();
    let same = page_change(
        &input,
        &capture(get(&site.url(2)).await.1),
        Some(previous(&first)),
    )
    .unwrap();
    assert!(!same.outcome.changed);
    site.mutate(&[2]).unwrap();
    let changed = page_change(
        &input,
        &capture(get(&site.url(2)).await.1),
        Some(previous(&same)),
    )
    .unwrap();
    assert!(changed.outcome.changed);
    let diff = changed.outcome.diff.unwrap();
    assert_eq!((diff.added, diff.removed), (1, 1));
    assert!(
        diff.unified.contains("-Version 0\n+Version 1\n"),
        "{}",
        diff.unified
    );
}

#[tokio::test]
async fn many_concurrent_requests_are_answered() {
    let site = MutatingSite::bind_loopback(1_000).await.unwrap();
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let client = client.clone();
        let urls: Vec<String> = (0..250)
            .map(|i| site.url((worker * 250 + i) % 1_000))
            .collect();
        tasks.spawn(async move {
            for url in urls {
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.status().as_u16(), 200);
                response.bytes().await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(site.requests(), 2_000);
}

fn previous(run: &accord_workflows::PageChangeRun) -> PreviousPage<'_> {
    PreviousPage {
        snapshot: &run.snapshot,
        screenshot_png: None,
    }
}
