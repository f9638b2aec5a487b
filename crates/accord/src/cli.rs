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
    /// Largest request body, in bytes.
    #[arg(long, env = "ACCORD_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Allow jobs to target private, loopback and link-local addresses (tests and local demos only).
    #[arg(long, env = "ACCORD_ALLOW_PRIVATE_TARGETS", value_parser = BoolishValueParser::new())]
    pub allow_private_targets: bool,
    /// Listen on a non-loopback address although the API has no authentication yet.
    #[arg(long, env = "ACCORD_ALLOW_UNAUTHENTICATED_REMOTE", value_parser = BoolishValueParser::new())]
    pub allow_unauthenticated_remote: bool,
}

/// Worker settings.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Jobs run at the same time.
    #[arg(long, env = "ACCORD_WORKER_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<usize>,
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
}

/// Where a client command finds the server.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The Accord server.
    #[arg(long, env = "ACCORD_SERVER", value_name = "URL")]
    pub server: Option<String>,
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
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Queue throughput and insert-to-start latency with no-op jobs, through the real API and worker protocol.
    Queue(BenchQueueArgs),
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
