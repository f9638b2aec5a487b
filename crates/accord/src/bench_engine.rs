//! `accord bench engine`: what the page bounds cost on ordinary pages. The
//! same pages and steps run through the engine's bounded processing
//! (chunked parse with node and depth counting, budget checks while
//! extracting) and through a plain scraper parse and select, on one thread.
//! Prints figures; asserts nothing.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use accord_engine::{process_page, PageLimits};
use accord_model::Step;
use anyhow::{Context, Result};

use crate::cli::BenchEngineArgs;

/// A page to measure, and what it is.
struct Sample {
    name: &'static str,
    body: String,
}

pub fn engine(args: BenchEngineArgs) -> Result<()> {
    let steps: Vec<Step> = serde_json::from_str(
        r#"[{"action": "extract", "fields": {
                "title": {"selector": "title"},
                "items": {"selector": "ul.jobs > li a", "all": true},
                "links": {"selector": "a", "attribute": "href", "all": true}}},
            {"action": "assert", "status": 200, "selector": "h1"}]"#,
    )
    .context("benchmark steps")?;
    let selectors: Vec<scraper::Selector> = ["title", "ul.jobs > li a", "a", "h1"]
        .iter()
        .map(|s| scraper::Selector::parse(s).expect("a valid selector"))
        .collect();
    let limits = PageLimits::default();
    let stop = AtomicBool::new(false);
    println!(
        "{:<28} {:>9} {:>12} {:>12} {:>9}",
        "page", "bytes", "plain p50", "bounded p50", "overhead"
    );
    for sample in samples() {
        let plain = median(args.runs, || {
            let html = scraper::Html::parse_document(&sample.body);
            let mut found = 0usize;
            for selector in &selectors {
                for element in html.select(selector) {
                    found += element.text().map(str::len).sum::<usize>();
                }
            }
            std::hint::black_box(found);
        });
        let bounded = median(args.runs, || {
            let out = process_page(&sample.body, 200, &steps, &limits, &stop)
                .expect("an ordinary page processes");
            std::hint::black_box(out);
        });
        let overhead = (bounded.as_secs_f64() / plain.as_secs_f64() - 1.0) * 100.0;
        println!(
            "{:<28} {:>9} {:>12} {:>12} {:>8.1}%",
            sample.name,
            sample.body.len(),
            format!("{:.3} ms", plain.as_secs_f64() * 1e3),
            format!("{:.3} ms", bounded.as_secs_f64() * 1e3),
            overhead
        );
    }
    println!(
        "(median of {} runs each; \"plain\" is scraper's parse and select without bounds)",
        args.runs
    );
    Ok(())
}

fn median(runs: usize, mut work: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Ordinary pages: a small article, a job board of 2,000 postings, and a
/// 1 MB text-heavy page.
fn samples() -> Vec<Sample> {
    let article = format!(
        "<!doctype html><html><head><title>News</title><style>p{{}}</style></head><body>\
         <header><nav>{}</nav></header><main><h1>Headline</h1>{}</main></body></html>",
        (0..30)
            .map(|i| format!("<a href=\"/s/{i}\">Section {i}</a>"))
            .collect::<String>(),
        "<p>Lorem ipsum <b>dolor</b> sit amet, <a href=\"/x\">consectetur</a> adipiscing.</p>"
            .repeat(60)
    );
    let board = format!(
        "<!doctype html><html><head><title>Jobs</title></head><body><h1>Open positions</h1>\
         <ul class=\"jobs\">{}</ul></body></html>",
        (0..2_000)
            .map(|i| {
                format!(
                    "<li class=\"job\"><div class=\"card\"><a href=\"/jobs/{i}\">Engineer {i}</a>\
                     <span class=\"loc\">Remote</span><time>2026-11-{:02}</time></div></li>",
                    1 + i % 28
                )
            })
            .collect::<String>()
    );
    let text = format!(
        "<!doctype html><html><head><title>Long</title></head><body><h1>Long read</h1>{}</body></html>",
        "<p>lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod</p>"
            .repeat(13_000)
    );
    vec![
        Sample {
            name: "article (60 paragraphs)",
            body: article,
        },
        Sample {
            name: "job board (2,000 items)",
            body: board,
        },
        Sample {
            name: "text page (~1 MB)",
            body: text,
        },
    ]
}
