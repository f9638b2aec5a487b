//! `accord bench queue`: no-op jobs through the real API, queue, store and
//! worker protocol, with an executor that does nothing but note when each
//! job started. Prints figures; asserts nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_client::AccordClient;
use accord_engine::{Executor, RunFailure, RunOutput};
use accord_model::{
    JobResult, JobSpec, JobState, NewJob, QueueStatsView, RateLimit, Role, WorkerId, WorkspaceId,
};
use accord_queue::QueueConfig;
use accord_worker::{Engines, Worker, WorkerConfig};
use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::BenchQueueArgs;
use crate::config::{ServerSettings, StoreSettings};
use crate::keys_cmd::{create_key_in_store, KeySpec};
use crate::server::ControlPlane;

/// Runs nothing; tells the benchmark which job (by its URL) started when.
#[derive(Debug)]
struct NoopExecutor {
    started: mpsc::UnboundedSender<(String, Instant)>,
}

#[async_trait::async_trait]
impl Executor for NoopExecutor {
    async fn run(
        &self,
        spec: &JobSpec,
        _stop: &tokio_util::sync::CancellationToken,
    ) -> Result<RunOutput, RunFailure> {
        let now = Instant::now();
        let url = match spec.steps.first() {
            Some(accord_model::Step::Navigate { url, .. }) => url.to_string(),
            _ => String::new(),
        };
        let _ = self.started.send((url, now));
        Ok(RunOutput::from(JobResult {
            extracted: Default::default(),
            status: 200,
            final_url: "https://bench.invalid/".into(),
            timings: Default::default(),
            engine: accord_model::RunEngine::Http,
            engine_reason: None,
            artifacts: Vec::new(),
        }))
    }
}

const BURN_DOWN_URL: &str = "https://bench.invalid/burn-down";

fn bench_job(url: &str) -> NewJob {
    serde_json::from_str(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{url}"}}]}}"#
    ))
    .expect("valid job")
}

/// Jobs that are queued or running.
fn unfinished(stats: &QueueStatsView) -> u64 {
    [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retrying,
    ]
    .into_iter()
    .map(|state| stats.by_state.get(&state).copied().unwrap_or(0))
    .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts a control plane for a benchmark on `store`, with its files under
/// `dir`, and answers it with an operator's and a worker's client. The
/// benchmark's own keys have limits it cannot reach: it measures the
/// system, not the rate limiter.
pub(crate) async fn start_control(
    dir: &std::path::Path,
    store: StoreSettings,
    queue: QueueConfig,
    key_name: &str,
) -> Result<(ControlPlane, AccordClient, AccordClient)> {
    start_control_with(dir, store, queue, Default::default(), key_name).await
}

/// [`start_control`] with notification settings of the benchmark's own.
pub(crate) async fn start_control_with(
    dir: &std::path::Path,
    store: StoreSettings,
    queue: QueueConfig,
    notify: crate::notify_config::NotifySettings,
    key_name: &str,
) -> Result<(ControlPlane, AccordClient, AccordClient)> {
    let settings = ServerSettings {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.to_owned(),
        store,
        queue,
        api: Default::default(),
        connections: Default::default(),
        redis_url: None,
        blobs: accord_artifacts::BlobStoreConfig::Local {
            root: dir.join("artifacts"),
        },
        notify,
    };
    let opened = crate::server::open_store(&settings.store).await?;
    let mut keys = Vec::new();
    for role in [Role::Operator, Role::Worker] {
        let spec = KeySpec {
            workspace: WorkspaceId::DEFAULT,
            role,
            name: key_name.to_owned(),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::days(1)),
            rate_limit: Some(RateLimit {
                burst: 1_000_000,
                per_second: 1_000_000.0,
            }),
        };
        keys.push(create_key_in_store(opened.as_ref(), spec).await?.token);
    }
    let control = ControlPlane::start_on(&settings, opened).await?;
    let url = control.local_url();
    let client = AccordClient::new(&url)?.with_api_key(&keys[0])?;
    let worker_client = AccordClient::new(&url)?.with_api_key(&keys[1])?;
    Ok((control, client, worker_client))
}

pub async fn queue(args: BenchQueueArgs) -> Result<()> {
    let temp = tempfile::tempdir().context("create a temporary directory")?;
    let data_dir: PathBuf = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&data_dir)?;
    let store = match &args.database_url {
        Some(url) => StoreSettings::Postgres(accord_store::PostgresConfig::new(url.clone())),
        None => {
            let mut config = accord_store::SqliteConfig::new(data_dir.join("bench.db"));
            config.synchronous = args
                .sqlite_synchronous
                .parse()
                .map_err(anyhow::Error::msg)?;
            StoreSettings::Sqlite { data_dir, config }
        }
    };
    let described = match &store {
        StoreSettings::Sqlite { .. } => format!("sqlite (synchronous={})", args.sqlite_synchronous),
        StoreSettings::Postgres(config) => format!("postgres ({})", config.redacted_url()),
    };
    let queue = QueueConfig {
        retention: None,
        ..QueueConfig::default()
    };
    let (control, client, worker_client) =
        start_control(temp.path(), store, queue, "accord bench").await?;
    println!(
        "accord bench queue: store={}, jobs={}, samples={}, worker concurrency={}, cores={}",
        described,
        args.jobs,
        args.samples,
        args.concurrency,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Phase 1: insert N jobs through the API (in batches, as a producer of
    // many jobs would), then start the worker and burn them down.
    let job = bench_job(BURN_DOWN_URL);
    // A database with history (see --database-url) may hold finished jobs,
    // which do not matter; unfinished ones would skew every figure.
    let waiting = unfinished(&client.queue_stats().await?);
    if waiting > 0 {
        anyhow::bail!(
            "the benchmark needs an idle queue, but the database holds {waiting} unfinished jobs"
        );
    }
    let inserting = Instant::now();
    let batches: Vec<usize> = (0..args.jobs)
        .step_by(args.batch_size.max(1))
        .map(|start| args.batch_size.max(1).min(args.jobs - start))
        .collect();
    let submitters = 4.min(batches.len().max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..submitters {
        let (client, job) = (client.clone(), job.clone());
        let mine: Vec<usize> = batches
            .iter()
            .copied()
            .skip(n)
            .step_by(submitters)
            .collect();
        tasks.spawn(async move {
            for size in mine {
                client.submit_jobs(vec![job.clone(); size]).await?;
            }
            Ok::<_, accord_client::ClientError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let insert_time = inserting.elapsed();

    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let executor = Arc::new(NoopExecutor {
        started: started_tx,
    });
    let mut config = WorkerConfig::new(WorkerId::new("bench-worker")?);
    config.concurrency = args.concurrency;
    config.claim_wait = Duration::from_secs(5);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(worker_client, Engines::http_only(executor), config).run(stop.clone()),
    );

    let working = Instant::now();
    let mut burned = 0;
    while burned < args.jobs {
        let (url, _) = started_rx.recv().await.context("the worker stopped")?;
        if url == BURN_DOWN_URL {
            burned += 1;
        }
    }
    // Every job has started; wait for the last reports to land. The queue
    // was idle before, so it is done when nothing is unfinished again
    // (counting succeeded jobs instead would miscount while a pruner
    // deletes old ones).
    while unfinished(&client.queue_stats().await?) > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let work_time = working.elapsed();

    println!();
    println!("burn-down ({} jobs):", args.jobs);
    println!(
        "  insert through the API: {:>9.0} jobs/s ({:.2} s, {} concurrent submitters, {} jobs per request)",
        args.jobs as f64 / insert_time.as_secs_f64(),
        insert_time.as_secs_f64(),
        submitters,
        args.batch_size
    );
    println!(
        "  worked (claim, run, complete): {:>9.0} jobs/s ({:.2} s)",
        args.jobs as f64 / work_time.as_secs_f64(),
        work_time.as_secs_f64()
    );

    // Phase 2: closed-loop latency, one job at a time, from just before the
    // submit call to the moment the worker starts running it.
    let warmup = (args.samples / 10).clamp(10, 100);
    let mut samples = Vec::with_capacity(args.samples);
    for n in 0..warmup + args.samples {
        let url = format!("https://bench.invalid/latency/{n}");
        let sample = bench_job(&url);
        let before = Instant::now();
        client.submit_job(&sample, None).await?;
        let started = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some((started_url, at)) = started_rx.recv().await {
                if started_url == url {
                    return Some(at);
                }
            }
            None
        })
        .await
        .context("a job did not start within 30 s")?
        .context("the worker stopped")?;
        if n >= warmup {
            samples.push(started.saturating_duration_since(before));
        }
    }
    samples.sort();
    println!();
    println!(
        "insert-to-start latency ({} sequential samples after {} warm-up):",
        samples.len(),
        warmup
    );
    println!(
        "  p50 {:.2} ms   p95 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 95.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples.last().copied().unwrap_or_default())
    );

    stop.cancel();
    worker.await.context("worker task")?;
    control.shutdown().await?;
    Ok(())
}
