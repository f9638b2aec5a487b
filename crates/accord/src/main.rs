//! `accord`: the binary. Parses the command line and the config file once,
//! sets up logging, wires the crates together and runs the chosen command.
//! The composition root: nothing depends on it.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI's output is its interface"
)]

/// mimalloc instead of glibc's malloc: the control plane and the engines
/// allocate many small, short-lived buffers across threads, where glibc's
/// allocator took about a fifth of the process's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[macro_use]
mod output;

mod artifacts_cmd;
mod bench;
mod bench_browser;
mod bench_engine;
mod bench_monitors;
mod bench_notify;
mod bench_policies;
mod cli;
mod config;
mod demo;
mod feeds_cmd;
mod jobs_cmd;
mod keys_cmd;
mod logging;
mod monitor_history_cmd;
mod monitors_cmd;
mod monitors_io_cmd;
mod notify_cmd;
mod notify_config;
mod policies_cmd;
mod politeness_config;
mod server;
mod workflow_run_cmd;

use std::io::IsTerminal;
use std::sync::Arc;

use accord_client::AccordClient;
use accord_egress::robots::RobotsConfig;
use accord_egress::{
    AllowAll, AllowList, EgressProxy, Guard, GuardConfig, ProxyConfig, ProxyHandle,
};
use accord_egress::{RobotsGate, RobotsGateConfig};
use accord_engine::browser::{detect_chromium, BrowserConfig, BrowserEngine, BrowserProxy};
use accord_engine::{EngineConfig, HttpEngine};
use accord_model::{EgressPolicy, SystemClock};
use accord_worker::{Engines, Worker, WorkerConfig};
use anyhow::{Context, Result};
use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::cli::{BenchCommand, Cli, Command, LogFormat};
use crate::config::{worker_settings, FileConfig, ServerSettings, DEFAULT_SERVER};
use crate::server::{stop_signal, ControlPlane};

/// How long the runtime waits, once a command is done, for blocking work
/// still under way. Engines stop theirs promptly when told (see
/// `accord_engine::Executor`); this only keeps a stray one from holding the
/// process after a graceful shutdown.
const RUNTIME_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn main() {
    let cli = Cli::parse();
    // Everything Accord writes (database, WAL, keys, artifacts) is for its
    // owner only.
    #[cfg(unix)]
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    let outcome = runtime.block_on(run(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    if let Err(err) = outcome {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let file = FileConfig::load(cli.config.as_deref())?;
    let quiet_by_default = matches!(
        cli.command,
        Command::Jobs(_)
            | Command::Keys(_)
            | Command::Workspaces(_)
            | Command::Bench(_)
            | Command::Openapi
            | Command::Migrate(_)
    );
    let default_filter = quiet_by_default.then_some("warn");
    let filter = cli
        .log
        .as_deref()
        .or(file.log.as_deref())
        .or(default_filter);
    let log_format = cli
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Text);
    logging::init(log_format, filter);

    match cli.command {
        Command::Up(args) => {
            let mut settings = ServerSettings::resolve(&args.server, &file.server)?;
            let demo_site = if args.demo {
                let (site, ip) = demo::start_site().await?;
                settings.queue.allow_targets = settings.queue.allow_targets.clone().with(ip);
                Some(site)
            } else {
                None
            };
            let worker = worker_settings(&args.worker, &file.worker)?;
            let egress = Egress {
                policy: settings.queue.egress,
                allow: settings.queue.allow_targets.clone(),
            };
            let engine = engine(&egress, user_agent(&args.worker, &file))?;
            let store = server::open_store(&settings.store).await?;
            let keys = keys_cmd::ensure_local_keys(&store, &settings.data_dir).await?;
            let demo_key = match &demo_site {
                Some(_) => Some(demo::key(&store).await?),
                None => None,
            };
            let control = ControlPlane::start_on(&settings, store).await?;
            let url = control.local_url();
            print_banner(&control, &settings);
            // The key itself goes only to a person at a terminal; under a
            // service manager standard output ends up in logs.
            let show_key = std::io::stdout().is_terminal() && matches!(log_format, LogFormat::Text);
            print_keys(&keys, &settings, show_key);
            let client = AccordClient::new(&url)?.with_api_key(&keys.worker)?;
            let browser = browser(&args.worker, &file, &egress, worker.browser_slots).await?;
            let engines = match &browser {
                Some(browser) => Engines::with_browser(engine, browser.engine.clone()),
                None => Engines::http_only(engine),
            };
            let stop = CancellationToken::new();
            let mut worker = Worker::new(client, engines, worker);
            if let Some(gate) = robots_gate(&args.worker, &file, &egress)? {
                worker = worker.with_robots(gate);
            }
            let worker = tokio::spawn(worker.run(stop.clone()));
            if let (Some(site), Some(key)) = (&demo_site, &demo_key) {
                let operator = AccordClient::new(&url)?.with_api_key(key)?;
                demo::create_monitors(&operator, site, &url).await?;
            }
            stop_signal().await;
            control.close_claims();
            stop.cancel();
            worker.await.context("worker task")?;
            if let Some(browser) = browser {
                browser.shutdown().await;
            }
            drop(demo_site);
            control.shutdown().await
        }
        Command::Serve(args) => {
            let settings = ServerSettings::resolve(&args.server, &file.server)?;
            let control = ControlPlane::start(&settings).await?;
            print_banner(&control, &settings);
            stop_signal().await;
            control.shutdown().await
        }
        Command::Worker(args) => {
            let server = args
                .server
                .clone()
                .or_else(|| file.worker.server.clone())
                .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
            let config = worker_settings(&args.worker, &file.worker)?;
            let egress = Egress {
                policy: EgressPolicy::from_allow_private(
                    args.allow_private_targets
                        || file.worker.allow_private_targets.unwrap_or(false),
                ),
                allow: config::allow_list(
                    &args.allow_targets,
                    file.worker.allow_targets.as_deref(),
                )?,
            };
            let engine = engine(&egress, user_agent(&args.worker, &file))?;
            let key = match (&args.api_key, args.api_key_file.as_ref().or(file.worker.api_key_file.as_ref())) {
                (Some(key), _) => key.clone(),
                (None, Some(path)) => keys_cmd::read_key_file(path)?,
                (None, None) => anyhow::bail!(
                    "a worker needs a worker-role API key: --api-key, ACCORD_API_KEY or --api-key-file \
                     (create one with `accord keys create --role worker`)"
                ),
            };
            let browser = browser(&args.worker, &file, &egress, config.browser_slots).await?;
            let robots = robots_gate(&args.worker, &file, &egress)?;
            run_worker_until_stopped(&server, &key, engine, browser, robots, config).await
        }
        Command::Jobs(command) => jobs_cmd::run(command, &file).await,
        Command::Monitors(command) => monitors_cmd::run(command, &file).await,
        Command::Workflows(command) => monitors_cmd::workflows(command, &file).await,
        Command::Targets(command) => notify_cmd::run(command, &file).await,
        Command::Policies(command) => policies_cmd::run(command, &file).await,
        Command::Feeds(command) => feeds_cmd::run(command, &file).await,
        Command::Bench(BenchCommand::Queue(args)) => bench::queue(args).await,
        Command::Bench(BenchCommand::Monitors(args)) => bench_monitors::monitors(args).await,
        Command::Bench(BenchCommand::Notifications(args)) => {
            bench_notify::notifications(args).await
        }
        Command::Bench(BenchCommand::Engine(args)) => {
            let page_args = args.clone();
            tokio::task::spawn_blocking(move || bench_engine::engine(page_args)).await??;
            bench_engine::http_throughput(&args).await?;
            bench_browser::browser_throughput(&args).await
        }
        Command::Migrate(args) => {
            let data_dir = args.data_dir.unwrap_or_else(|| "accord-data".into());
            let store = config::store_settings(args.database_url, data_dir)?;
            let opened = server::open_store(&store).await?;
            opened.close().await;
            println!("migrated {}", store.describe());
            Ok(())
        }
        Command::Keys(command) => keys_cmd::run_keys(command, &file).await,
        Command::Workspaces(command) => keys_cmd::run_workspaces(command, &file).await,
        Command::Openapi => {
            println!("{}", accord_api::openapi().to_pretty_json()?);
            Ok(())
        }
    }
}

fn user_agent(args: &cli::WorkerArgs, file: &FileConfig) -> Option<String> {
    args.user_agent
        .clone()
        .or_else(|| file.worker.user_agent.clone())
}

/// Where a worker's engines may go: the policy and the non-public networks
/// allowed all the same.
struct Egress {
    policy: EgressPolicy,
    allow: AllowList,
}

fn engine(egress: &Egress, user_agent: Option<String>) -> Result<Arc<HttpEngine>> {
    let defaults = EngineConfig::default();
    let config = EngineConfig {
        egress: egress.policy,
        allow_targets: egress.allow.clone(),
        user_agent: user_agent.unwrap_or(defaults.user_agent.clone()),
        ..defaults
    };
    Ok(Arc::new(
        HttpEngine::new(config).context("build the HTTP engine")?,
    ))
}

/// The worker's robots.txt answers, fetched through the same guard as its
/// engines and with the same user agent; `None` with `--ignore-robots`.
fn robots_gate(
    args: &cli::WorkerArgs,
    file: &FileConfig,
    egress: &Egress,
) -> Result<Option<RobotsGate>> {
    if args.ignore_robots || file.worker.ignore_robots.unwrap_or(false) {
        tracing::warn!(
            "robots.txt is not obeyed (--ignore-robots): use it only for your own sites"
        );
        return Ok(None);
    }
    let defaults = EngineConfig::default();
    let guard = Guard::new(GuardConfig {
        policy: egress.policy,
        allow: egress.allow.clone(),
        connect_timeout: defaults.connect_timeout,
    });
    let config = RobotsGateConfig {
        robots: RobotsConfig::new(ROBOTS_PRODUCT_TOKEN),
        user_agent: user_agent(args, file).unwrap_or(defaults.user_agent),
        timeout: ROBOTS_TIMEOUT,
    };
    let gate = RobotsGate::new(config, guard, Arc::new(SystemClock))
        .context("set up robots.txt fetching")?;
    Ok(Some(gate))
}

/// The name Accord goes by in robots.txt `User-agent` lines.
const ROBOTS_PRODUCT_TOKEN: &str = "accord";
/// Longest a robots.txt fetch may take before the site counts as unreachable.
const ROBOTS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a worker until Ctrl-C or SIGTERM, then lets it finish or give back its jobs.
async fn run_worker_until_stopped(
    server: &str,
    key: &str,
    engine: Arc<HttpEngine>,
    browser: Option<Browser>,
    robots: Option<RobotsGate>,
    config: WorkerConfig,
) -> Result<()> {
    let client = AccordClient::new(server)
        .with_context(|| format!("server URL {server}"))?
        .with_api_key(key)?;
    let engines = match &browser {
        Some(browser) => Engines::with_browser(engine, browser.engine.clone()),
        None => Engines::http_only(engine),
    };
    let stop = CancellationToken::new();
    let mut worker = Worker::new(client, engines, config);
    if let Some(gate) = robots {
        worker = worker.with_robots(gate);
    }
    let worker = tokio::spawn(worker.run(stop.clone()));
    stop_signal().await;
    stop.cancel();
    worker.await.context("worker task")?;
    if let Some(browser) = browser {
        browser.shutdown().await;
    }
    Ok(())
}

/// The worker's browser engine and the egress proxy every one of its
/// requests goes through.
struct Browser {
    engine: Arc<BrowserEngine>,
    proxy: ProxyHandle,
}

impl Browser {
    async fn shutdown(self) {
        self.engine.shutdown().await;
        self.proxy.shutdown().await;
    }
}

/// Starts the browser engine when a usable Chromium is found, behind a
/// loopback egress proxy that applies the SSRF guard to every request the
/// browser makes (sub-resources, XHR, WebSockets, workers). Without one the
/// worker still runs HTTP jobs, and says so.
async fn browser(
    args: &cli::WorkerArgs,
    file: &FileConfig,
    egress: &Egress,
    slots: usize,
) -> Result<Option<Browser>> {
    if args.no_browser || file.worker.no_browser.unwrap_or(false) {
        tracing::info!("browser jobs turned off (--no-browser): this worker takes HTTP jobs only");
        return Ok(None);
    }
    let configured = args
        .chromium_path
        .clone()
        .or_else(|| file.worker.chromium_path.clone());
    #[expect(
        clippy::disallowed_methods,
        reason = "Chromium is found on PATH like any program a shell would start"
    )]
    let path_var = std::env::var_os("PATH");
    let chromium = match detect_chromium(configured.as_deref(), path_var.as_deref()).await {
        Ok(chromium) => chromium,
        Err(err) => {
            tracing::warn!(error = %err, "no usable Chromium: this worker takes no browser jobs (HTTP jobs only)");
            return Ok(None);
        }
    };
    let guard = Guard::new(GuardConfig {
        policy: egress.policy,
        allow: egress.allow.clone(),
        ..GuardConfig::default()
    });
    let proxy = EgressProxy::start(guard.clone(), Arc::new(AllowAll), ProxyConfig::default())
        .await
        .context("start the egress proxy for the browser")?;
    // The browsers are this process's children: only they (and this
    // process) may use the proxy; any other local process is refused.
    proxy.admit_process_tree(std::process::id());
    let config = BrowserConfig {
        slots,
        proxy: Some(BrowserProxy {
            server: format!("http://{}", proxy.addr()),
        }),
        ..BrowserConfig::default()
    };
    tracing::info!(chromium = %chromium.path.display(), version = %chromium.version, slots, proxy = %proxy.addr(), "browser engine ready");
    // A job with domain policies gets a proxy of its own, from the same guard.
    let engine = Arc::new(BrowserEngine::start(chromium, config).with_job_proxies(guard));
    Ok(Some(Browser { engine, proxy }))
}

fn print_banner(control: &ControlPlane, settings: &ServerSettings) {
    let url = control.local_url();
    println!("Accord {} is listening on {url}", env!("CARGO_PKG_VERSION"));
    println!("  database:  {}", settings.store.describe());
    println!("  artifacts: {}", settings.blobs.describe());
    println!("  API docs:  {url}/docs");
    println!("  submit:    accord jobs submit job.json --wait --server {url}");
    if settings.queue.egress.allows_private() {
        println!("  note:      private and loopback targets are ALLOWED (--allow-private-targets)");
    }
    println!("Press Ctrl-C to stop.");
}

fn print_keys(keys: &keys_cmd::LocalKeys, settings: &ServerSettings, show_key: bool) {
    let path = settings.data_dir.join(keys_cmd::ADMIN_KEY_FILE);
    match &keys.new_admin {
        Some(_) if !show_key => println!(
            "  admin key: new, saved to {} (mode 0600), which the CLI uses for this server",
            path.display()
        ),
        Some(token) => {
            println!("  admin key: {token}");
            println!(
                "             shown only now; saved to {} (mode 0600), which the CLI uses for this server",
                path.display()
            );
        }
        None => println!(
            "  admin key: in {} (the CLI uses it for this server)",
            path.display()
        ),
    }
}
