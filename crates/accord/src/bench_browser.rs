//! `accord bench engine`, the Chromium phase: jobs per second, CPU per job
//! and the browsers' memory at 1, 4 and 8 slots, with and without a
//! screenshot, then a long run at the widest level to show whether memory
//! grows.
//!
//! Every job is navigate + extract in a fresh incognito context, as the
//! worker runs them: through the pool, behind an egress proxy of its own
//! (the worker's engine is built `with_job_proxies`), against a page
//! served on loopback by a server in this process; each level runs once
//! without domain policies and once as jobs of a workspace with policies
//! (see `bench_policies`). CPU counts this
//! process (engine, proxy and page server) and every Chromium process,
//! live or already reaped. PSS is summed over every process of every
//! browser of the pool. Prints figures; asserts nothing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_egress::{AllowAll, EgressProxy, Guard, GuardConfig, ProxyConfig, ProxyHandle};
use accord_engine::browser::{detect_chromium, BrowserConfig, BrowserEngine, BrowserProxy};
use accord_engine::{EngineConfig, Executor};
use accord_model::{EgressPolicy, Engine, JobSpec, RunEngine, Step};
use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;

use crate::bench_policies::{Policies, ROBOTS_TXT};
use crate::cli::BenchEngineArgs;

/// One measured level.
struct Level {
    slots: usize,
    screenshot: bool,
    /// Whether the jobs run under the workspace's domain policies.
    policies: bool,
    jobs: usize,
}

/// Runs the Chromium phase unless `args.browser_jobs` is 0.
pub async fn browser_throughput(args: &BenchEngineArgs) -> Result<()> {
    if args.browser_jobs == 0 {
        return Ok(());
    }
    #[expect(
        clippy::disallowed_methods,
        reason = "Chromium is found on PATH like any program a shell would start"
    )]
    let path_var = std::env::var_os("PATH");
    let chromium = detect_chromium(args.chromium_path.as_deref(), path_var.as_deref())
        .await
        .context("find Chromium for the browser phase (--browser-jobs 0 skips it)")?;
    let page = Page::serve().await?;
    let guard = Guard::new(GuardConfig {
        // The page is on loopback, which the guard refuses by default.
        policy: EgressPolicy::AllowPrivate,
        ..GuardConfig::default()
    });
    let policies = Policies::new(guard.clone(), EngineConfig::DEFAULT_USER_AGENT)?;
    let proxy = EgressProxy::start(guard.clone(), Arc::new(AllowAll), ProxyConfig::default())
        .await
        .context("start the egress proxy")?;
    proxy.admit_process_tree(std::process::id());
    let work_dir = tempfile::tempdir().context("a work directory for the browsers")?;
    println!();
    println!(
        "chromium engine: {} {}, navigate + extract, a fresh incognito context per job, behind an egress proxy of its own (as the worker runs them)",
        chromium.path.display(),
        chromium.version
    );
    println!(
        "{:>5} {:>10} {:>10} {:>6} {:>8} {:>9} {:>14} {:>14} {:>8} {:>7}",
        "slots",
        "screenshot",
        "policies",
        "jobs",
        "failed",
        "jobs/s",
        "CPU ms/job",
        "PSS peak MB",
        "browsers",
        "cost"
    );
    let mut levels: Vec<Level> = Vec::new();
    for &slots in &args.browser_levels {
        for screenshot in [false, true] {
            for policies in [false, true] {
                levels.push(Level {
                    slots,
                    screenshot,
                    policies,
                    jobs: args.browser_jobs,
                });
            }
        }
    }
    // Jobs per second of the same level without policies.
    let mut without = None;
    for level in &levels {
        let config = BrowserConfig {
            slots: level.slots,
            work_dir: work_dir.path().to_path_buf(),
            proxy: Some(BrowserProxy {
                server: format!("http://{}", proxy.addr()),
            }),
            ..BrowserConfig::default()
        };
        // As the worker does: every job behind a proxy of its own.
        let engine = BrowserEngine::start(chromium.clone(), config).with_job_proxies(guard.clone());
        let spec = Arc::new(page.spec(level.screenshot)?);
        let policies = level.policies.then_some(&policies);
        // Start the browser and warm it before measuring.
        run_jobs(&engine, &spec, level.slots, level.slots * 2, policies).await?;
        let sampler = PssSampler::start(engine.clone());
        let cpu_before = cpu_used(&engine).await?;
        let started = Instant::now();
        let failed = run_jobs(&engine, &spec, level.slots, level.jobs, policies).await?;
        let elapsed = started.elapsed();
        let rate = level.jobs as f64 / elapsed.as_secs_f64();
        let cost = match without {
            Some(base) if level.policies => format!("{:+.1}%", (base / rate - 1.0) * 100.0),
            _ => String::new(),
        };
        without = (!level.policies).then_some(rate);
        let cpu = cpu_used(&engine).await?.saturating_sub(cpu_before);
        let pss = sampler.stop().await;
        let stats = engine.stats().await;
        println!(
            "{:>5} {:>10} {:>10} {:>6} {:>8} {:>9.1} {:>14.1} {:>14.0} {:>8} {:>7}",
            level.slots,
            if level.screenshot { "yes" } else { "no" },
            if level.policies { "workspace" } else { "none" },
            level.jobs,
            failed,
            rate,
            cpu.as_secs_f64() * 1e3 / level.jobs as f64,
            pss.peak as f64 / 1e6,
            stats.launches,
            cost,
        );
        engine.shutdown().await;
    }
    if args.growth_jobs > 0 {
        growth(
            args,
            &chromium,
            &page,
            &proxy,
            &guard,
            work_dir.path().to_path_buf(),
        )
        .await?;
    }
    if policies.waits() > 0 {
        println!(
            "  (jobs under policies waited {} times for a permit)",
            policies.waits()
        );
    }
    println!("(CPU: this process, which runs the engine, the proxies and the page server, plus every Chromium process; PSS summed over all of them; cost: throughput lost to the policies)");
    Ok(())
}

/// Runs `args.growth_jobs` jobs at the widest level and prints the
/// browsers' PSS at the 100th job and at the end.
async fn growth(
    args: &BenchEngineArgs,
    chromium: &accord_engine::browser::Chromium,
    page: &Page,
    proxy: &ProxyHandle,
    guard: &Guard,
    work_dir: PathBuf,
) -> Result<()> {
    let slots = args.browser_levels.iter().copied().max().unwrap_or(8);
    let config = BrowserConfig {
        slots,
        work_dir,
        proxy: Some(BrowserProxy {
            server: format!("http://{}", proxy.addr()),
        }),
        ..BrowserConfig::default()
    };
    let engine = BrowserEngine::start(chromium.clone(), config).with_job_proxies(guard.clone());
    let spec = Arc::new(page.spec(false)?);
    let marks = [100usize, args.growth_jobs / 2, args.growth_jobs];
    let mut done = 0usize;
    let mut readings = Vec::new();
    let mut failed = 0usize;
    for mark in marks {
        if mark <= done {
            continue;
        }
        failed += run_jobs(&engine, &spec, slots, mark - done, None).await?;
        done = mark;
        // Measured while the browsers are idle between batches: what they keep.
        readings.push((done, pool_pss(&engine).await));
    }
    let stats = engine.stats().await;
    engine.shutdown().await;
    println!();
    println!("memory over {done} jobs at {slots} slots (no screenshot), {failed} failed, {} browser launches, {} recycled:", stats.launches, stats.recycled);
    let first = readings.first().map(|(_, pss)| *pss).unwrap_or(0);
    for (jobs, pss) in &readings {
        let change = if first > 0 {
            (*pss as f64 / first as f64 - 1.0) * 100.0
        } else {
            0.0
        };
        println!(
            "  after {jobs:>5} jobs: PSS {:>6.0} MB ({change:+.1}% from the first reading)",
            *pss as f64 / 1e6
        );
    }
    Ok(())
}

/// Runs `jobs` jobs `slots` at a time, under `policies` when given;
/// answers how many failed.
async fn run_jobs(
    engine: &BrowserEngine,
    spec: &Arc<JobSpec>,
    slots: usize,
    jobs: usize,
    policies: Option<&Policies>,
) -> Result<usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..slots.max(1) {
        let (engine, spec, next, failed, error) = (
            engine.clone(),
            spec.clone(),
            next.clone(),
            failed.clone(),
            error.clone(),
        );
        let policies = policies.cloned();
        tasks.spawn(async move {
            let stop = CancellationToken::new();
            while next.fetch_add(1, Ordering::Relaxed) < jobs {
                let outcome = match &policies {
                    Some(policies) => {
                        policies
                            .run(&engine, &spec, RunEngine::Browser, &stop)
                            .await?
                    }
                    None => engine.run(&spec, &stop).await,
                };
                if let Err(failure) = outcome {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let mut error = error.lock().unwrap_or_else(|e| e.into_inner());
                    error.get_or_insert_with(|| failure.error.to_string());
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a benchmark task")??;
    }
    let failed = failed.load(Ordering::Relaxed);
    let error = error.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(message) = error {
        if failed == jobs {
            bail!("every browser job failed, the first with: {message}");
        }
        eprintln!("  {failed} of {jobs} jobs failed, the first with: {message}");
    }
    Ok(failed)
}

/// The peak of the pool's PSS, sampled every 250 ms while jobs run.
struct PssSampler {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<u64>,
}

struct PssReading {
    peak: u64,
}

impl PssSampler {
    fn start(engine: BrowserEngine) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                peak = peak.max(pool_pss(&engine).await);
                tokio::select! {
                    () = token.cancelled() => return peak,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        Self { stop, task }
    }

    async fn stop(self) -> PssReading {
        self.stop.cancel();
        PssReading {
            peak: self.task.await.unwrap_or(0),
        }
    }
}

/// PSS summed over every process of every browser in the pool.
async fn pool_pss(engine: &BrowserEngine) -> u64 {
    let browsers = engine.stats().await.browsers;
    tokio::task::spawn_blocking(move || {
        browsers
            .iter()
            .filter_map(|browser| accord_engine::browser::browser_pss_bytes(browser.pid))
            .sum()
    })
    .await
    .unwrap_or(0)
}

/// CPU used so far by this process, its reaped children and the live
/// processes of every browser in the pool.
async fn cpu_used(engine: &BrowserEngine) -> Result<Duration> {
    let browsers = engine.stats().await.browsers;
    tokio::task::spawn_blocking(move || {
        let own = read_cpu("self", true).context("read /proc/self/stat")?;
        let live: Duration = browsers
            .iter()
            .flat_map(|browser| accord_engine::browser::browser_processes(browser.pid))
            .filter_map(|process| read_cpu(&process.pid.to_string(), false))
            .sum();
        Ok(own + live)
    })
    .await
    .context("read CPU times")?
}

/// utime + stime (and, with `children`, the reaped children's) of one
/// process, from `/proc/<pid>/stat` (clock ticks of 1/100 s on Linux).
fn read_cpu(pid: &str, children: bool) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let tick = |at: usize| fields.get(at).and_then(|field| field.parse::<u64>().ok());
    // Fields 14-17 (utime, stime, cutime, cstime) are 11-14 after the name.
    let mut ticks = tick(11)? + tick(12)?;
    if children {
        ticks += tick(13)? + tick(14)?;
    }
    Some(Duration::from_millis(ticks * 10))
}

/// The benchmark page: a job board of 40 postings, served on loopback.
struct Page {
    url: String,
    _server: tokio::task::JoinHandle<()>,
}

impl Page {
    async fn serve() -> Result<Self> {
        let mut body = String::from(
            "<!doctype html><html><head><title>Openings</title><style>\
             body{font:16px sans-serif;margin:2em}li{margin:.4em 0}.co{color:#555}</style>\
             </head><body><h1>Open positions</h1><ul id=\"jobs\">",
        );
        for i in 0..40 {
            body.push_str(&format!(
                "<li><a href=\"/jobs/{i}\">Engineer {i}</a> <span class=\"co\">Company {}</span> \
                 <span class=\"loc\">City {}</span></li>",
                i % 7,
                i % 5
            ));
        }
        body.push_str("</ul><p id=\"updated\">Updated today</p></body></html>");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("bind a loopback port for the benchmark page")?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route(
                "/jobs",
                axum::routing::get(move || {
                    let body = body.clone();
                    async move { axum::response::Html(body) }
                }),
            )
            .route("/robots.txt", axum::routing::get(|| async { ROBOTS_TXT }));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}/jobs"),
            _server: server,
        })
    }

    fn spec(&self, screenshot: bool) -> Result<JobSpec> {
        let mut steps = serde_json::json!([
            {"action": "navigate", "url": self.url},
            {"action": "extract", "fields": {
                "title": {"selector": "h1"},
                "jobs": {"selector": "#jobs li a", "all": true},
                "updated": {"selector": "#updated"}}}
        ]);
        if screenshot {
            steps
                .as_array_mut()
                .context("steps are a list")?
                .push(serde_json::json!({"action": "screenshot", "width": 1280, "height": 800}));
        }
        let steps: Vec<Step> = serde_json::from_value(steps).context("benchmark steps")?;
        Ok(JobSpec {
            engine: Engine::Browser,
            steps,
            timeout_seconds: 30,
        })
    }
}
