//! `accord bench engine`: what the page bounds cost on ordinary pages, then
//! what the HTTP engine does end to end.
//!
//! First the same pages and steps run through the engine's bounded
//! processing (chunked parse with node and depth counting, budget checks
//! while extracting) and through a plain scraper parse and select, on one
//! thread. Then whole jobs (navigate + extract of 6 fields) run through
//! the HTTP engine, many in flight, against a page served on loopback by a
//! server in the same process: pages per second and CPU time per page
//! (the process's, so the server's share is included), first without
//! domain policies, then as jobs of a workspace with policies (robots.txt,
//! politeness permits, every hop asked; see `bench_policies`). Prints
//! figures; asserts nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_egress::{Guard, GuardConfig};
use accord_engine::{process_page, EngineConfig, Executor, HttpEngine, PageLimits};
use accord_model::{EgressPolicy, Engine, JobSpec, RunEngine, Step};
use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::bench_policies::{self, Policies};
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

/// Runs `args.http_jobs` jobs through the HTTP engine, `args.in_flight` at
/// a time, against the article page served on loopback: first without
/// domain policies, then as jobs of a workspace with policies (see
/// `bench_policies`).
pub async fn http_throughput(args: &BenchEngineArgs) -> Result<()> {
    if args.http_jobs == 0 {
        return Ok(());
    }
    let page = samples()
        .into_iter()
        .next()
        .context("the article sample")?
        .body;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("bind a loopback port for the benchmark page")?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/article",
            axum::routing::get(move || {
                let page = page.clone();
                async move { axum::response::Html(page) }
            }),
        )
        .route(
            "/robots.txt",
            axum::routing::get(|| async { bench_policies::ROBOTS_TXT }),
        );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let config = EngineConfig {
        // The page is on loopback, which the guard refuses by default.
        egress: EgressPolicy::AllowPrivate,
        ..EngineConfig::default()
    };
    let engine = HttpEngine::new(config.clone()).context("build the HTTP engine")?;
    let policies = Policies::new(
        Guard::new(GuardConfig {
            policy: config.egress,
            allow: config.allow_targets.clone(),
            connect_timeout: config.connect_timeout,
        }),
        &config.user_agent,
    )?;
    let steps: Vec<Step> = serde_json::from_str(&format!(
        r#"[{{"action": "navigate", "url": "http://{addr}/article"}},
            {{"action": "extract", "fields": {{
                "title": {{"selector": "title"}},
                "headline": {{"selector": "h1"}},
                "sections": {{"selector": "nav a", "all": true}},
                "links": {{"selector": "a", "attribute": "href", "all": true}},
                "first": {{"selector": "main p"}},
                "bold": {{"selector": "b", "all": true}}}}}}]"#
    ))
    .context("benchmark steps")?;
    let spec = Arc::new(JobSpec {
        engine: Engine::Http,
        steps,
        timeout_seconds: 30,
    });
    println!();
    println!(
        "http engine: {} jobs (navigate + extract of 6 fields), {} in flight, behind the SSRF guard",
        args.http_jobs, args.in_flight,
    );
    println!(
        "{:<10} {:>8} {:>9} {:>14} {:>9} {:>7}",
        "policies", "failed", "pages/s", "CPU ms/page", "seconds", "cost"
    );
    let mut without: Option<Measured> = None;
    for policies in [None, Some(&policies)] {
        let measured = http_jobs(args, &engine, &spec, policies).await?;
        let cost = without
            .as_ref()
            .map(|base| {
                format!(
                    "{:+.1}%",
                    (base.pages_per_second() / measured.pages_per_second() - 1.0) * 100.0
                )
            })
            .unwrap_or_default();
        println!(
            "{:<10} {:>8} {:>9.0} {:>14.3} {:>9.2} {:>7}",
            if policies.is_some() {
                "workspace"
            } else {
                "none"
            },
            measured.failed,
            measured.pages_per_second(),
            measured.cpu.as_secs_f64() * 1e3 / measured.jobs as f64,
            measured.elapsed.as_secs_f64(),
            cost,
        );
        without.get_or_insert(measured);
    }
    if policies.waits() > 0 {
        println!(
            "  (jobs under policies waited {} times for a permit)",
            policies.waits()
        );
    }
    println!("(CPU: the process, i.e. the engine and the loopback server; cost: throughput lost to the policies)");
    server.abort();
    Ok(())
}

/// One measured run of jobs.
struct Measured {
    jobs: usize,
    failed: usize,
    elapsed: Duration,
    cpu: Duration,
}

impl Measured {
    fn pages_per_second(&self) -> f64 {
        self.jobs as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `args.http_jobs` jobs of `spec`, `args.in_flight` at a time, under
/// `policies` when given, after a warm-up round.
async fn http_jobs(
    args: &BenchEngineArgs,
    engine: &HttpEngine,
    spec: &Arc<JobSpec>,
    policies: Option<&Policies>,
) -> Result<Measured> {
    async fn one(
        engine: &HttpEngine,
        spec: &JobSpec,
        policies: Option<&Policies>,
        stop: &CancellationToken,
    ) -> Result<bool> {
        let outcome = match policies {
            Some(policies) => policies.run(engine, spec, RunEngine::Http, stop).await?,
            None => engine.run(spec, stop).await,
        };
        Ok(outcome.is_ok())
    }
    // Warm the connection pool, the page cache (and robots.txt) first.
    let stop = CancellationToken::new();
    for _ in 0..args.in_flight.min(args.http_jobs) {
        let outcome = match policies {
            Some(policies) => policies.run(engine, spec, RunEngine::Http, &stop).await?,
            None => engine.run(spec, &stop).await,
        };
        outcome.map_err(|failure| failure.error)?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let cpu_before = process_cpu()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.in_flight.max(1) {
        let (engine, spec, next, failed) =
            (engine.clone(), spec.clone(), next.clone(), failed.clone());
        let policies = policies.cloned();
        let total = args.http_jobs;
        tasks.spawn(async move {
            let stop = CancellationToken::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                if !one(&engine, &spec, policies.as_ref(), &stop).await? {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a benchmark task")??;
    }
    let elapsed = started.elapsed();
    let cpu = process_cpu()?.saturating_sub(cpu_before);
    Ok(Measured {
        jobs: args.http_jobs,
        failed: failed.load(Ordering::Relaxed),
        elapsed,
        cpu,
    })
}

/// CPU time (user + system) this process has used, from `/proc/self/stat`,
/// whose clock ticks are 1/100 s on Linux.
fn process_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("read /proc/self/stat")?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |at: usize| -> Result<u64> {
        fields
            .get(at)
            .and_then(|field| field.parse().ok())
            .context("parse /proc/self/stat")
    };
    // utime and stime are fields 14 and 15.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
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
