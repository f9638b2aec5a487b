//! `accord bench monitors`: many `page_change` monitors on the HTTP engine
//! against a local site whose pages change only when the benchmark says,
//! through the real API, scheduler, queue, store, worker protocol and
//! engine, in one process. Prints figures; asserts nothing.
//!
//! Figures: checks per second while every monitor runs on its schedule;
//! the scheduler's lateness (when a check's job started on the engine
//! minus the slot it was due at, p50/p99); how long after a known set of
//! pages changed every one of them was reported changed, also counted from
//! each monitor's next due slot; and this process's peak RSS (control
//! plane and worker together: they share the process here).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord_demo::MutatingSite;
use accord_egress::AllowList;
use accord_engine::{EngineConfig, Executor, HttpEngine, RunFailure, RunOutput};
use accord_model::{
    Engine, JobSpec, MonitorId, NewMonitor, ScheduleSpec, TargetUrl, WorkerId, WorkflowKind,
};
use accord_queue::{MonitorConfig, QueueConfig};
use accord_worker::{Engines, Worker, WorkerConfig};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::cli::BenchMonitorsArgs;
use crate::config::StoreSettings;

/// The HTTP engine, noting when each page's job started.
#[derive(Debug)]
struct Timed {
    engine: HttpEngine,
    starts: Mutex<Vec<(String, DateTime<Utc>)>>,
}

#[async_trait::async_trait]
impl Executor for Timed {
    async fn run(&self, spec: &JobSpec, stop: &CancellationToken) -> Result<RunOutput, RunFailure> {
        let url = match spec.steps.first() {
            Some(accord_model::Step::Navigate { url, .. }) => url.to_string(),
            _ => String::new(),
        };
        let now = Utc::now();
        self.starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((url, now));
        self.engine.run(spec, stop).await
    }
}

/// One monitor: its page and the first slot it was due at.
struct Watched {
    id: MonitorId,
    first_due: DateTime<Utc>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub async fn monitors(args: BenchMonitorsArgs) -> Result<()> {
    let temp = tempfile::tempdir().context("create a temporary directory")?;
    let interval = Duration::from_secs(args.interval_seconds.max(1));
    let site = MutatingSite::bind_loopback(args.monitors)
        .await
        .context("serve the benchmark site")?;
    let store = match &args.database_url {
        Some(url) => StoreSettings::Postgres(accord_store::PostgresConfig::new(url.clone())),
        None => StoreSettings::Sqlite {
            data_dir: temp.path().to_owned(),
            config: accord_store::SqliteConfig::new(temp.path().join("bench.db")),
        },
    };
    let described = match &store {
        StoreSettings::Sqlite { .. } => "sqlite".to_owned(),
        StoreSettings::Postgres(config) => format!("postgres ({})", config.redacted_url()),
    };
    let allow = AllowList::parse(["127.0.0.1"]).context("the site's address")?;
    let queue = QueueConfig {
        retention: None,
        allow_targets: allow.clone(),
        monitors: MonitorConfig {
            min_interval: Duration::from_secs(1),
            scheduler_batch: 2_000,
            ..MonitorConfig::default()
        },
        ..QueueConfig::default()
    };
    let (control, client, worker_client) =
        crate::bench::start_control(temp.path(), store, queue, "accord bench monitors").await?;
    println!(
        "accord bench monitors: store={described}, monitors={}, every {} s, measured for {} s, {} mutated pages, worker concurrency={}, politeness permits={}, cores={}",
        args.monitors,
        interval.as_secs(),
        args.duration_seconds,
        args.mutations,
        args.concurrency,
        if args.politeness { "on" } else { "off" },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Create the monitors (their first runs start at once, spread by jitter).
    let creating = Instant::now();
    let watched: Arc<Mutex<HashMap<usize, Watched>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let creators = 16.min(args.monitors.max(1));
    for n in 0..creators {
        let (client, watched) = (client.clone(), watched.clone());
        let pages: Vec<(usize, String)> = (n..args.monitors)
            .step_by(creators)
            .map(|i| (i, site.url(i)))
            .collect();
        let every = format!("{}s", interval.as_secs());
        tasks.spawn(async move {
            for (i, page) in pages {
                let new = NewMonitor {
                    name: format!("bench page {i}"),
                    workflow: WorkflowKind::PageChange,
                    url: TargetUrl::parse(&page)?,
                    engine: Engine::Http,
                    input: serde_json::json!({}),
                    schedule: ScheduleSpec {
                        every: Some(every.clone()),
                        cron: None,
                        time_zone: None,
                    },
                    tags: ["bench".to_owned()].into_iter().collect(),
                    paused: false,
                    notify: Vec::new(),
                };
                let created = client.create_monitor(&new).await?;
                watched.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    i,
                    Watched {
                        id: created.id,
                        first_due: created.next_due_at,
                    },
                );
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let create_time = creating.elapsed();
    println!(
        "created {} monitors through the API in {:.1} s ({:.0}/s)",
        args.monitors,
        create_time.as_secs_f64(),
        args.monitors as f64 / create_time.as_secs_f64()
    );

    let engine = HttpEngine::new(EngineConfig {
        allow_targets: allow,
        ..EngineConfig::default()
    })
    .context("build the HTTP engine")?;
    let timed = Arc::new(Timed {
        engine,
        starts: Mutex::default(),
    });
    let mut config = WorkerConfig::new(WorkerId::new("bench-worker")?);
    config.concurrency = args.concurrency;
    config.politeness = args.politeness;
    config.claim_wait = Duration::from_secs(5);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(worker_client, Engines::http_only(timed.clone()), config).run(stop.clone()),
    );

    // Warm up for one interval (the first runs, which build baselines),
    // then measure the steady state.
    tokio::time::sleep(interval).await;
    let requests_before = site.requests();
    let measured_from = Utc::now();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration_seconds)).await;
    let window = started.elapsed();
    let measured_to = Utc::now();
    let requests = site.requests() - requests_before;

    // Lateness: each check's start minus the latest slot at or before it.
    let by_url: HashMap<String, (usize, DateTime<Utc>)> = {
        let watched = watched.lock().unwrap_or_else(|e| e.into_inner());
        watched
            .iter()
            .map(|(i, w)| (site.url(*i), (*i, w.first_due)))
            .collect()
    };
    let step = chrono::Duration::from_std(interval)?;
    let mut lateness: Vec<f64> = Vec::new();
    let mut checks = 0usize;
    for (url, at) in timed
        .starts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        if *at < measured_from || *at > measured_to {
            continue;
        }
        checks += 1;
        let Some((_, first_due)) = by_url.get(url) else {
            continue;
        };
        let since = *at - *first_due;
        if since < chrono::Duration::zero() {
            continue;
        }
        let periods = since.num_milliseconds() / step.num_milliseconds().max(1);
        let slot = *first_due + step * periods as i32;
        lateness.push((*at - slot).num_milliseconds() as f64 / 1e3);
    }
    lateness.sort_by(f64::total_cmp);
    println!();
    println!(
        "steady state ({:.0} s): {:.0} checks/s ({checks} checks started; the site answered {requests} requests)",
        window.as_secs_f64(),
        checks as f64 / window.as_secs_f64()
    );
    println!(
        "  lateness (engine start minus due slot): p50 {:.3} s   p99 {:.3} s   max {:.3} s",
        percentile(&lateness, 50.0),
        percentile(&lateness, 99.0),
        lateness.last().copied().unwrap_or(0.0)
    );

    // Mutations: change a known set of pages, then wait until every one
    // of their monitors reports a change.
    let mutated = site.spread(args.mutations);
    site.mutate(&mutated)
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let changed_at = Utc::now();
    let ids: Vec<(usize, MonitorId, DateTime<Utc>)> = {
        let watched = watched.lock().unwrap_or_else(|e| e.into_inner());
        mutated
            .iter()
            .filter_map(|i| watched.get(i).map(|w| (*i, w.id, w.first_due)))
            .collect()
    };
    let deadline = Instant::now() + interval * 4 + Duration::from_secs(10);
    let mut reported: HashMap<usize, DateTime<Utc>> = HashMap::new();
    let mut behind_due: Vec<f64> = Vec::new();
    while reported.len() < ids.len() && Instant::now() < deadline {
        for (i, id, first_due) in &ids {
            if reported.contains_key(i) {
                continue;
            }
            let runs = client.monitor_runs(*id, None, Some(3)).await?.items;
            let found = runs.iter().find(|run| {
                run.slot >= changed_at - step
                    && run.finished_at.is_some_and(|at| at >= changed_at)
                    && run
                        .outcome
                        .as_ref()
                        .and_then(|o| o["summary"]["changed"].as_bool())
                        == Some(true)
            });
            if let Some(run) = found {
                let at = run.finished_at.unwrap_or(changed_at);
                reported.insert(*i, at);
                // The first slot due after the change, on this monitor's grid.
                let since = changed_at - *first_due;
                let periods = since.num_milliseconds() / step.num_milliseconds().max(1) + 1;
                let next_due = *first_due + step * periods as i32;
                behind_due.push((at - next_due).num_milliseconds() as f64 / 1e3);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    behind_due.sort_by(f64::total_cmp);
    let last = reported.values().max().copied();
    println!();
    println!(
        "mutations: {} of {} changed pages reported changed{}",
        reported.len(),
        ids.len(),
        match last {
            Some(last) => format!(
                ", the last {:.2} s after the change",
                (last - changed_at).num_milliseconds() as f64 / 1e3
            ),
            None => String::new(),
        }
    );
    println!(
        "  from each monitor's next due slot to its report: p50 {:.2} s   max {:.2} s",
        percentile(&behind_due, 50.0),
        behind_due.last().copied().unwrap_or(0.0)
    );
    println!();
    println!(
        "peak RSS of this process (control plane, scheduler, worker, engine and the site together): {:.0} MB",
        peak_rss().unwrap_or(0) as f64 / 1e6
    );

    stop.cancel();
    worker.await.context("worker task")?;
    control.shutdown().await?;
    Ok(())
}
