//! The command line: every subcommand and flag, with the environment
//! variable that can stand in for it. Values left unset here fall back to
//! the TOML config file, then to the defaults (see `config.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "accord",
    version,
    about = "Self-hosted, policy-driven web automation",
    propagate_version = true
)]
pub struct Cli {
    /// A TOML config file; flags and ACCORD_* variables override it.
    #[arg(long, global = true, env = "ACCORD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, env = "ACCORD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `accord=debug,info`.
    #[arg(long, global = true, env = "ACCORD_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: control plane and worker on an embedded SQLite database.
    Up(UpArgs),
    /// Run the control plane only (API, queue, maintenance).
    Serve(ServeArgs),
    /// Run a worker that takes jobs from a control plane over HTTP.
    Worker(WorkerCmdArgs),
    /// Submit, inspect and manage jobs on a running server.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Create, list and watch monitors (a workflow on a schedule) and their runs.
    #[command(subcommand)]
    Monitors(MonitorsCommand),
    /// List the built-in workflows and show their input schema.
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// Create, test and inspect notification targets (webhooks, Slack,
    /// Discord, email) and their deliveries.
    #[command(subcommand)]
    Targets(crate::notify_cmd::TargetsCommand),
    /// Create, list, change and delete domain policies (which hosts jobs
    /// may visit, with which engines and steps, how politely).
    #[command(subcommand)]
    Policies(crate::policies_cmd::PoliciesCommand),
    /// Feed tokens for Atom feed readers (the token goes in the feed URL).
    #[command(subcommand)]
    Feeds(crate::feeds_cmd::FeedsCommand),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create and list workspaces (admins of the default workspace).
    #[command(subcommand)]
    Workspaces(WorkspacesCommand),
    /// Measure performance.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Apply database migrations and exit.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database to migrate.
    #[arg(long, env = "ACCORD_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// The SQLite data directory to migrate (when no --database-url is given).
    #[arg(long, env = "ACCORD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Also serve a small demo site on loopback whose pages change while you
    /// watch, and create one monitor of each kind against it. Only the demo
    /// site's own address is opened to jobs; every other private target
    /// stays refused.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct WorkerCmdArgs {
    /// The control plane to take jobs from.
    #[arg(long, env = "ACCORD_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Let the engine fetch private, loopback and link-local addresses (tests and local demos only).
    #[arg(long, env = "ACCORD_ALLOW_PRIVATE_TARGETS", value_parser = BoolishValueParser::new())]
    pub allow_private_targets: bool,
    /// A non-public network the engine may fetch all the same (a CIDR like
    /// 10.20.0.0/16 or one address); repeat for more.
    #[arg(long = "allow-target", value_name = "CIDR")]
    pub allow_targets: Vec<String>,
    /// A worker-role API key (`acc_<id>_<secret>`).
    #[arg(
        long,
        env = "ACCORD_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// A file holding the worker-role API key.
    #[arg(long, env = "ACCORD_API_KEY_FILE", value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// Control-plane settings.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "ACCORD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Where the SQLite database lives (ignored with --database-url).
    #[arg(long, env = "ACCORD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use PostgreSQL (`postgres://user:password@host/db`) instead of the embedded SQLite file.
    #[arg(long, env = "ACCORD_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// PostgreSQL connection pool size.
    #[arg(long, env = "ACCORD_DATABASE_MAX_CONNECTIONS", value_name = "N")]
    pub database_max_connections: Option<u32>,
    /// Do not apply database migrations on start (run `accord migrate` instead).
    #[arg(long, env = "ACCORD_SKIP_MIGRATIONS", value_parser = BoolishValueParser::new())]
    pub skip_migrations: bool,
    /// SQLite durability: `full` (fsync every commit) or `normal`.
    #[arg(long, env = "ACCORD_SQLITE_SYNCHRONOUS", value_name = "MODE")]
    pub sqlite_synchronous: Option<String>,
    /// How long a lease lasts without a heartbeat.
    #[arg(long, env = "ACCORD_LEASE_SECONDS", value_name = "SECONDS")]
    pub lease_seconds: Option<u64>,
    /// How often the reaper and the pruner run.
    #[arg(long, env = "ACCORD_MAINTENANCE_INTERVAL_MS", value_name = "MS")]
    pub maintenance_interval_ms: Option<u64>,
    /// Delete finished jobs after this many hours (0 keeps them forever).
    #[arg(long, env = "ACCORD_RETENTION_HOURS", value_name = "HOURS")]
    pub retention_hours: Option<u64>,
    /// Delete audit entries after this many days (0 keeps them forever).
    #[arg(long, env = "ACCORD_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    pub audit_retention_days: Option<u64>,
    /// Largest request body, in bytes.
    #[arg(long, env = "ACCORD_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest time a client may take to send a request body [default: 30].
    #[arg(long, env = "ACCORD_BODY_READ_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub body_read_timeout_seconds: Option<u64>,
    /// Longest time a client may take to send a request's headers [default: 10].
    #[arg(
        long,
        env = "ACCORD_HEADER_READ_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub header_read_timeout_seconds: Option<u64>,
    /// Close a connection that sends and receives nothing for this long [default: 60].
    #[arg(long, env = "ACCORD_IDLE_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Most client connections open at once; more are answered 503 and closed [default: 1024].
    #[arg(long, env = "ACCORD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Allow jobs to target private, loopback and link-local addresses (tests and local demos only).
    #[arg(long, env = "ACCORD_ALLOW_PRIVATE_TARGETS", value_parser = BoolishValueParser::new())]
    pub allow_private_targets: bool,
    /// A non-public network jobs may reach all the same (a CIDR like
    /// 10.20.0.0/16 or one address), while every other one stays refused;
    /// repeat for more.
    #[arg(long = "allow-target", value_name = "CIDR")]
    pub allow_targets: Vec<String>,
    /// Accept `evaluate` steps (JavaScript chosen by whoever submits the job runs in the page).
    #[arg(long, env = "ACCORD_ALLOW_EVALUATE", value_parser = BoolishValueParser::new())]
    pub allow_evaluate: bool,
    /// How long `auto` remembers that a domain needs a browser before trying HTTP again [default: 24].
    #[arg(long, env = "ACCORD_AUTO_MEMORY_HOURS", value_name = "HOURS")]
    pub auto_memory_hours: Option<u64>,
    /// The shortest interval a monitor may be scheduled at, in seconds [default: 10].
    #[arg(
        long,
        env = "ACCORD_MONITOR_MIN_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub monitor_min_interval_seconds: Option<u64>,
    /// Share rate limits and job-event notices across replicas through Redis (`redis://host:6379`).
    #[arg(long, env = "ACCORD_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// How often live event streams re-read the event log when no change notice arrives.
    #[arg(long, env = "ACCORD_EVENT_POLL_MS", value_name = "MS")]
    pub event_poll_ms: Option<u64>,
    /// Origins allowed to call the API from a browser, comma-separated (default: none, CORS off).
    #[arg(
        long,
        env = "ACCORD_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGINS"
    )]
    pub cors_origins: Vec<String>,
    #[command(flatten)]
    pub artifacts: ArtifactArgs,
    #[command(flatten)]
    pub notify: crate::notify_config::NotifyArgs,
    #[command(flatten)]
    pub politeness: crate::politeness_config::PolitenessArgs,
}

/// Where artifacts are kept and how much of them. Without an S3 bucket they
/// go to `<data-dir>/artifacts`.
#[derive(Debug, Args)]
pub struct ArtifactArgs {
    /// Largest artifact a worker may upload, in bytes [default: 104857600].
    #[arg(long, env = "ACCORD_ARTIFACT_MAX_BYTES", value_name = "BYTES")]
    pub artifact_max_bytes: Option<u64>,
    /// Most bytes of artifacts one workspace may hold [default: 10737418240].
    #[arg(long, env = "ACCORD_ARTIFACT_QUOTA_BYTES", value_name = "BYTES")]
    pub artifact_quota_bytes: Option<u64>,
    /// Most artifacts one job may hold, manifests included [default: 1000].
    #[arg(long, env = "ACCORD_ARTIFACT_MAX_PER_JOB", value_name = "N")]
    pub artifact_max_per_job: Option<u32>,
    /// How often blobs no artifact holds any more are swept [default: 3600].
    #[arg(
        long,
        env = "ACCORD_ARTIFACT_SWEEP_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub artifact_sweep_interval_seconds: Option<u64>,
    /// Blobs younger than this are never swept (an upload may be about to claim one) [default: 3600].
    #[arg(
        long,
        env = "ACCORD_ARTIFACT_SWEEP_GRACE_SECONDS",
        value_name = "SECONDS"
    )]
    pub artifact_sweep_grace_seconds: Option<u64>,
    /// Keep artifacts in this S3 bucket instead of the data directory.
    #[arg(long, env = "ACCORD_S3_BUCKET", value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// An S3-compatible server (`https://…`); default: AWS.
    #[arg(long, env = "ACCORD_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The bucket's region [default: us-east-1].
    #[arg(long, env = "ACCORD_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    #[arg(long, env = "ACCORD_S3_ACCESS_KEY_ID", value_name = "ID")]
    pub s3_access_key_id: Option<String>,
    #[arg(
        long,
        env = "ACCORD_S3_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
    /// Allow a plain-HTTP S3 endpoint (a server on loopback).
    #[arg(long, env = "ACCORD_S3_ALLOW_HTTP", value_parser = BoolishValueParser::new())]
    pub s3_allow_http: bool,
}

/// Worker settings.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// HTTP jobs run at the same time.
    #[arg(long, env = "ACCORD_WORKER_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<usize>,
    /// Browser jobs run at the same time, apart from HTTP ones [default: one per core].
    #[arg(long, env = "ACCORD_BROWSER_SLOTS", value_name = "N")]
    pub browser_slots: Option<usize>,
    /// The Chromium to run browser jobs with [default: `chromium-headless-shell`, else `chromium`, on PATH].
    #[arg(long, env = "ACCORD_CHROMIUM_PATH", value_name = "PATH")]
    pub chromium_path: Option<PathBuf>,
    /// Take no browser jobs, even with a usable Chromium.
    #[arg(long, env = "ACCORD_NO_BROWSER", value_parser = BoolishValueParser::new())]
    pub no_browser: bool,
    /// Queues to serve, comma-separated (default: all).
    #[arg(
        long,
        env = "ACCORD_WORKER_QUEUES",
        value_delimiter = ',',
        value_name = "QUEUES"
    )]
    pub queues: Vec<String>,
    /// This worker's name (default: host name, process id and a random suffix).
    #[arg(long, env = "ACCORD_WORKER_ID", value_name = "ID")]
    pub worker_id: Option<String>,
    /// How often leases are renewed.
    #[arg(long, env = "ACCORD_HEARTBEAT_MS", value_name = "MS")]
    pub heartbeat_ms: Option<u64>,
    /// On shutdown, how long running jobs may take to finish.
    #[arg(long, env = "ACCORD_SHUTDOWN_GRACE_SECONDS", value_name = "SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,
    /// The User-Agent the engine sends; add a contact address for the sites you visit.
    #[arg(long, env = "ACCORD_USER_AGENT", value_name = "TEXT")]
    pub user_agent: Option<String>,
    /// Fetch pages without asking the sites' robots.txt first (only for
    /// sites you run yourself).
    #[arg(long, env = "ACCORD_IGNORE_ROBOTS", value_parser = BoolishValueParser::new())]
    pub ignore_robots: bool,
    /// Run jobs without asking the control plane for per-domain permits
    /// (rate, concurrency cap, least gap, Retry-After, circuit breaker):
    /// only for benchmarks against sites you run yourself.
    #[arg(long, env = "ACCORD_NO_POLITENESS", value_parser = BoolishValueParser::new())]
    pub no_politeness: bool,
}

/// Where a client command finds the server, and the key it uses.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The Accord server.
    #[arg(long, env = "ACCORD_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The API key (`acc_<id>_<secret>`). Default for a local server: `<data-dir>/admin.key`.
    #[arg(
        long,
        env = "ACCORD_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Where a local server keeps its data (and `admin.key`).
    #[arg(long, env = "ACCORD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Submit a job from a JSON file (`-` reads standard input).
    Submit {
        file: PathBuf,
        /// Wait until the job finishes, showing its progress.
        #[arg(long)]
        wait: bool,
        /// Makes re-running this command safe.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a job.
    Get {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List jobs, newest first.
    List {
        /// Only jobs in this state (scheduled, available, running, retrying, succeeded, dead, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this queue.
        #[arg(long)]
        queue: Option<String>,
        /// `key:value`
        #[arg(long)]
        label: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a job's events.
    Events {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a job.
    Cancel {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Requeue a dead or cancelled job.
    Retry {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a job's artifacts (what its runs captured, and the evidence
    /// manifest of each finished attempt).
    Artifacts {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Download one artifact, checking its SHA-256 on the way.
    Artifact {
        id: String,
        name: String,
        /// Where to write it (`-` for standard output) [default: NAME in the current directory].
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        server: ServerAccess,
    },
    /// Print a job's evidence manifest (the latest attempt's unless --attempt).
    Manifest {
        id: String,
        #[arg(long)]
        attempt: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Re-download every artifact of the job's latest manifest, re-hash it
    /// and compare with the manifest (and the manifest with its recorded
    /// hash). Exits non-zero unless everything matches.
    Verify {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Where a client command finds the server and its key, for commands whose
/// `-o` means something else than the output format.
#[derive(Debug, Args)]
pub struct ServerAccess {
    /// The Accord server.
    #[arg(long, env = "ACCORD_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The API key (`acc_<id>_<secret>`). Default for a local server: `<data-dir>/admin.key`.
    #[arg(
        long,
        env = "ACCORD_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Where a local server keeps its data (and `admin.key`).
    #[arg(long, env = "ACCORD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl ServerAccess {
    pub fn into_client_args(self) -> ClientArgs {
        ClientArgs {
            server: self.server,
            api_key: self.api_key,
            data_dir: self.data_dir,
            output: Output::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    Operator,
    Viewer,
    Worker,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (its secret is shown only this once).
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// What the key is for.
        #[arg(long, default_value = "cli")]
        name: String,
        /// The workspace (name or id); default: the caller's (offline: `default`).
        #[arg(long)]
        workspace: Option<String>,
        /// The key stops working after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
        /// Own rate limit: requests at once (with --rate-per-second).
        #[arg(long, requires = "rate_per_second")]
        rate_burst: Option<u32>,
        /// Own rate limit: requests per second (with --rate-burst).
        #[arg(long, requires = "rate_burst")]
        rate_per_second: Option<f64>,
        /// Also write the key to this file (mode 0600).
        #[arg(long, value_name = "FILE")]
        save_to: Option<PathBuf>,
        /// Write the key straight into the database instead of calling a
        /// server: how the first key of a deployment is made.
        #[arg(long)]
        offline: bool,
        /// With --offline: the PostgreSQL database.
        #[arg(
            long,
            env = "ACCORD_DATABASE_URL",
            value_name = "URL",
            requires = "offline"
        )]
        database_url: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List keys (never their secrets).
    List {
        /// Another workspace (admins of the default workspace).
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a key at once, on every replica.
    Revoke {
        /// The key's id (the part after `acc_`).
        id: String,
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspacesCommand {
    /// Create a workspace.
    Create {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List workspaces.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Queue throughput and insert-to-start latency with no-op jobs, through the real API and worker protocol.
    Queue(BenchQueueArgs),
    /// What the page bounds cost (ordinary pages through the engine's bounded processing and through a plain parse), then the HTTP engine's throughput against a local server.
    Engine(BenchEngineArgs),
    /// Many page_change monitors on the HTTP engine against a local site that changes a known set of pages: checks per second, scheduler lateness, time to report every change, peak RSS.
    Monitors(BenchMonitorsArgs),
    /// The notification delivery loop against a fast local receiver: deliveries per second draining a burst, and time from queuing to delivery at a steady rate (p50/p99).
    Notifications(BenchNotificationsArgs),
}

#[derive(Debug, Args)]
pub struct BenchNotificationsArgs {
    /// Messages queued at once for the burst phase (deliveries per second); 0 skips it.
    #[arg(long, default_value_t = 20_000)]
    pub burst: usize,
    /// Messages per second for the paced phase (latency); 0 skips it.
    #[arg(long, default_value_t = 1_000)]
    pub rate: usize,
    /// How long the paced phase queues messages, in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_seconds: u64,
    /// Messages the delivery loop claims and sends at once.
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
    /// How long the delivery loop waits when nothing was due, in ms.
    #[arg(long, default_value_t = 10)]
    pub poll_ms: u64,
    /// Longest wait for a phase's last delivery, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,
    /// Run on this PostgreSQL database instead of a temporary SQLite file (a scratch database: the messages stay in it).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchMonitorsArgs {
    /// Monitors (each on its own page).
    #[arg(long, default_value_t = 10_000)]
    pub monitors: usize,
    /// Each monitor's interval, in seconds.
    #[arg(long, default_value_t = 5)]
    pub interval_seconds: u64,
    /// How long the steady state is measured, in seconds (after one interval of warm-up).
    #[arg(long, default_value_t = 30)]
    pub duration_seconds: u64,
    /// Pages changed after the steady state; every one must be reported.
    #[arg(long, default_value_t = 100)]
    pub mutations: usize,
    /// Worker concurrency.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Run on this PostgreSQL database instead of a temporary SQLite file.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Ask the control plane for per-domain politeness permits, as a
    /// production worker does. Off by default: every page of the bench
    /// site is on one host, whose default cap of 16 requests in flight
    /// would measure politeness rather than the scheduler and the store.
    #[arg(long)]
    pub politeness: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BenchEngineArgs {
    /// Runs per page and variant; the median is reported.
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Jobs (navigate + extract of 6 fields) for the HTTP throughput phase,
    /// run once without domain policies and once with them; 0 skips it.
    #[arg(long, default_value_t = 20_000)]
    pub http_jobs: usize,
    /// Jobs in flight at once in the HTTP throughput phase.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Jobs per level (slots x with or without a screenshot x without or
    /// with domain policies) of the Chromium phase; 0 skips it and the
    /// memory run.
    #[arg(long, default_value_t = 300)]
    pub browser_jobs: usize,
    /// Browser slot counts to measure, e.g. `1,4,8`.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    pub browser_levels: Vec<usize>,
    /// Jobs of the memory run at the widest level (PSS after the 100th job
    /// and at the end); 0 skips it.
    #[arg(long, default_value_t = 1_000)]
    pub growth_jobs: usize,
    /// The Chromium executable (default: `chromium-headless-shell`, else
    /// `chromium`, found on PATH).
    #[arg(long, value_name = "PATH")]
    pub chromium_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchQueueArgs {
    /// Jobs for the burn-down phase.
    #[arg(long, default_value_t = 5_000)]
    pub jobs: usize,
    /// Sequential samples for the latency phase.
    #[arg(long, default_value_t = 1_000)]
    pub samples: usize,
    /// Worker concurrency.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Jobs per insert request in the burn-down phase (`POST /api/v1/jobs/batch`).
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Where the benchmark's database lives (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// SQLite durability for the run: `full` or `normal`.
    #[arg(long, default_value = "full")]
    pub sqlite_synchronous: String,
    /// Benchmark PostgreSQL instead of SQLite. Use a scratch database: the benchmark's jobs stay in it.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MonitorsCommand {
    /// Create a monitor from a JSON file (`-` reads standard input), as
    /// `POST /api/v1/monitors` takes it, or from flags.
    Create {
        /// The monitor as JSON; without it, --workflow, --url and --every say what to watch.
        file: Option<PathBuf>,
        /// page_change, extract_items or smoke_check.
        #[arg(long, conflicts_with = "file")]
        workflow: Option<String>,
        #[arg(long, conflicts_with = "file")]
        url: Option<String>,
        /// An interval: `30s`, `5m`, `2h`.
        #[arg(long, conflicts_with = "file")]
        every: Option<String>,
        /// With page_change: compare only what these CSS selectors match.
        #[arg(long = "selector", conflicts_with = "file")]
        selectors: Vec<String>,
        /// A name for people (default: the URL).
        #[arg(long, conflicts_with = "file")]
        name: Option<String>,
        #[arg(long = "tag", conflicts_with = "file")]
        tags: Vec<String>,
        /// http, browser or auto.
        #[arg(long, default_value = "http", conflicts_with = "file")]
        engine: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List monitors.
    List {
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a monitor.
    Get {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A monitor's runs, newest first, with what each found.
    Runs {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// What changed between two runs' snapshots: the text diff of a
    /// page_change monitor, the new, removed and changed items of an
    /// extract_items one. Without --from and --to: the latest run that found
    /// a change (or --run) against the snapshot before it.
    Diff {
        id: String,
        /// The run to show against the snapshot before it.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        run: Option<i64>,
        /// The earlier run (with --to).
        #[arg(long, requires = "to")]
        from: Option<i64>,
        /// The later run (with --from).
        #[arg(long, requires = "from")]
        to: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Every item an extract_items monitor has seen, with when it was first
    /// and last seen and whether it is still listed.
    Items {
        id: String,
        /// Print CSV (one column per field) instead of a table.
        #[arg(long)]
        csv: bool,
        /// Which items: current (still listed), removed or all.
        #[arg(long, default_value = "all", value_parser = ["current", "removed", "all"])]
        state: String,
        /// Only items whose key or a field value contains this text
        /// (ignoring case).
        #[arg(long = "query", short = 'q')]
        query: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create monitors from a file: a plain list of URLs (one a line, `#`
    /// starts a comment line) with the defaults the flags give, or a JSON
    /// array of monitors as `export` writes them. Every line or entry is
    /// checked before any monitor is created.
    Import {
        /// The file (`-` reads standard input).
        file: PathBuf,
        /// For a list of URLs: page_change, extract_items or smoke_check.
        #[arg(long, default_value = "page_change")]
        workflow: String,
        /// For a list of URLs: an interval (`30s`, `5m`, `2h`).
        #[arg(long, default_value = "1h")]
        every: String,
        /// For a list of URLs: http, browser or auto.
        #[arg(long, default_value = "http")]
        engine: String,
        /// For a list of URLs: tags for every monitor.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// For a list of URLs: create them paused.
        #[arg(long)]
        paused: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Every monitor (or those with a tag) as the JSON array `import` reads.
    Export {
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The values a monitor tracked, oldest first.
    Series {
        id: String,
        /// Only the values of this name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop scheduling a monitor.
    Pause {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Schedule a paused monitor again.
    Resume {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a monitor now, outside its schedule.
    Run {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a monitor.
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// The built-in workflows.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A workflow's description and the JSON Schema of its input.
    Get {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a workflow once on a page (outside any monitor) and show its
    /// outcome.
    Run {
        /// page_change, extract_items or smoke_check.
        name: String,
        /// The workflow's input as JSON (`-` reads standard input); or a
        /// whole request with `url`, `engine` and `input`.
        #[arg(long, value_name = "FILE.json")]
        input: PathBuf,
        /// The page (required unless the file gives `url`).
        #[arg(long)]
        url: Option<String>,
        /// http, browser or auto (default: the file's, else http).
        #[arg(long)]
        engine: Option<String>,
        /// Wait for the outcome instead of printing the started run.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this long (`30s`, `5m`).
        #[arg(long, default_value = "2m")]
        timeout: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}
