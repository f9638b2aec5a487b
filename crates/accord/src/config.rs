//! Resolving settings: flag, then `ACCORD_*` variable (clap does both),
//! then the TOML config file, then the default. The only place that reads
//! configuration; library crates get plain config structs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use accord_api::auth::RoleLimits;
use accord_api::{ApiConfig, ConnectionLimits};
use accord_artifacts::{BlobStoreConfig, S3Config};
use accord_egress::AllowList;
use accord_model::{EgressPolicy, Limits, QueueName, RateLimit, WorkerId};
use accord_queue::{ArtifactConfig, MonitorConfig, QueueConfig};
use accord_store::ArtifactLimits;
use accord_store::{PostgresConfig, SqliteConfig, Synchronous};
use accord_worker::WorkerConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::{ArtifactArgs, LogFormat, ServerArgs, WorkerArgs};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The config file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub log_format: Option<LogFormat>,
    #[serde(default)]
    pub log: Option<String>,
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub worker: FileWorker,
    #[serde(default)]
    pub client: FileClient,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_max_connections: Option<u32>,
    pub skip_migrations: Option<bool>,
    pub sqlite_synchronous: Option<String>,
    pub lease_seconds: Option<u64>,
    pub maintenance_interval_ms: Option<u64>,
    pub retention_hours: Option<u64>,
    pub audit_retention_days: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub body_read_timeout_seconds: Option<u64>,
    pub header_read_timeout_seconds: Option<u64>,
    pub idle_timeout_seconds: Option<u64>,
    pub max_connections: Option<usize>,
    pub allow_private_targets: Option<bool>,
    pub allow_targets: Option<Vec<String>>,
    pub allow_evaluate: Option<bool>,
    pub auto_memory_hours: Option<u64>,
    pub monitor_min_interval_seconds: Option<u64>,
    pub redis_url: Option<String>,
    pub event_poll_ms: Option<u64>,
    pub cors_origins: Option<Vec<String>>,
    #[serde(default)]
    pub rate_limits: FileRateLimits,
    #[serde(default)]
    pub notify: crate::notify_config::FileNotify,
    #[serde(default)]
    pub politeness: crate::politeness_config::FilePoliteness,
    pub artifact_max_bytes: Option<u64>,
    pub artifact_quota_bytes: Option<u64>,
    pub artifact_max_per_job: Option<u32>,
    pub artifact_sweep_interval_seconds: Option<u64>,
    pub artifact_sweep_grace_seconds: Option<u64>,
    /// `[server.s3]`: keep artifacts in an S3 bucket.
    #[serde(default)]
    pub s3: FileS3,
}

/// `[server.s3]`: every key optional; `bucket` turns S3 on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileS3 {
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
}

/// Where artifacts go and the limits they are held to, resolved.
fn artifact_settings(
    args: &ArtifactArgs,
    file: &FileServer,
    data_dir: &Path,
) -> Result<(BlobStoreConfig, ArtifactConfig)> {
    let defaults = ArtifactConfig::default();
    let config = ArtifactConfig {
        max_bytes: args
            .artifact_max_bytes
            .or(file.artifact_max_bytes)
            .unwrap_or(defaults.max_bytes),
        limits: ArtifactLimits {
            quota_bytes: args
                .artifact_quota_bytes
                .or(file.artifact_quota_bytes)
                .unwrap_or(defaults.limits.quota_bytes),
            max_per_job: args
                .artifact_max_per_job
                .or(file.artifact_max_per_job)
                .unwrap_or(defaults.limits.max_per_job),
        },
        sweep_interval: args
            .artifact_sweep_interval_seconds
            .or(file.artifact_sweep_interval_seconds)
            .map_or(defaults.sweep_interval, Duration::from_secs),
        sweep_grace: args
            .artifact_sweep_grace_seconds
            .or(file.artifact_sweep_grace_seconds)
            .map_or(defaults.sweep_grace, Duration::from_secs),
    };
    if config.max_bytes == 0 {
        bail!("artifact_max_bytes must be at least 1");
    }
    if config.limits.max_per_job == 0 {
        bail!("artifact_max_per_job must be at least 1");
    }
    let s3 = &file.s3;
    let blobs = match args.s3_bucket.clone().or_else(|| s3.bucket.clone()) {
        None => BlobStoreConfig::Local {
            root: data_dir.join("artifacts"),
        },
        Some(bucket) => {
            let access_key_id = args
                .s3_access_key_id
                .clone()
                .or_else(|| s3.access_key_id.clone())
                .context("an S3 bucket needs an access key id: --s3-access-key-id, ACCORD_S3_ACCESS_KEY_ID or [server.s3] access_key_id")?;
            let secret_access_key = args
                .s3_secret_access_key
                .clone()
                .or_else(|| s3.secret_access_key.clone())
                .context("an S3 bucket needs a secret access key: --s3-secret-access-key, ACCORD_S3_SECRET_ACCESS_KEY or [server.s3] secret_access_key")?;
            let endpoint = args.s3_endpoint.clone().or_else(|| s3.endpoint.clone());
            let allow_http = args.s3_allow_http || s3.allow_http.unwrap_or(false);
            if let Some(endpoint) = &endpoint {
                if endpoint.starts_with("http://") && !allow_http {
                    bail!("the S3 endpoint {endpoint} is plain HTTP: pass --s3-allow-http (ACCORD_S3_ALLOW_HTTP, [server.s3] allow_http) if that is intended");
                }
            }
            BlobStoreConfig::S3(S3Config {
                bucket,
                endpoint,
                region: args
                    .s3_region
                    .clone()
                    .or_else(|| s3.region.clone())
                    .unwrap_or_else(|| "us-east-1".to_owned()),
                access_key_id,
                secret_access_key,
                allow_http,
            })
        }
    };
    Ok((blobs, config))
}

/// `[server.rate_limits.<role>]` tables: `burst` and `per_second`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRateLimits {
    pub admin: Option<RateLimit>,
    pub operator: Option<RateLimit>,
    pub viewer: Option<RateLimit>,
    pub worker: Option<RateLimit>,
    pub failed_auth: Option<RateLimit>,
}

impl FileRateLimits {
    fn resolve(&self) -> Result<RoleLimits> {
        let defaults = RoleLimits::default();
        let pick =
            |name: &str, value: Option<RateLimit>, default: RateLimit| -> Result<RateLimit> {
                let limit = value.unwrap_or(default);
                limit
                    .check()
                    .map_err(|err| anyhow::anyhow!("[server.rate_limits.{name}]: {err}"))?;
                Ok(limit)
            };
        Ok(RoleLimits {
            admin: pick("admin", self.admin, defaults.admin)?,
            operator: pick("operator", self.operator, defaults.operator)?,
            viewer: pick("viewer", self.viewer, defaults.viewer)?,
            worker: pick("worker", self.worker, defaults.worker)?,
            failed_auth: pick("failed_auth", self.failed_auth, defaults.failed_auth)?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWorker {
    pub server: Option<String>,
    pub concurrency: Option<usize>,
    pub browser_slots: Option<usize>,
    pub chromium_path: Option<PathBuf>,
    pub no_browser: Option<bool>,
    pub queues: Option<Vec<String>>,
    pub worker_id: Option<String>,
    pub heartbeat_ms: Option<u64>,
    pub shutdown_grace_seconds: Option<u64>,
    pub allow_private_targets: Option<bool>,
    pub allow_targets: Option<Vec<String>>,
    pub user_agent: Option<String>,
    pub ignore_robots: Option<bool>,
    pub no_politeness: Option<bool>,
    pub api_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileClient {
    pub server: Option<String>,
    pub api_key: Option<String>,
    pub data_dir: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
    }
}

/// Which database the control plane uses.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// The embedded default: a file in the data directory.
    Sqlite {
        data_dir: PathBuf,
        config: SqliteConfig,
    },
    Postgres(PostgresConfig),
}

impl StoreSettings {
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { config, .. } => format!("sqlite {}", config.path.display()),
            Self::Postgres(config) => format!("postgres {}", config.redacted_url()),
        }
    }
}

/// The store of a one-off command (`migrate`, `keys create --offline`).
pub fn store_settings(database_url: Option<String>, data_dir: PathBuf) -> Result<StoreSettings> {
    Ok(match database_url {
        Some(url) => {
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                bail!("--database-url must be a postgres:// URL");
            }
            let mut config = PostgresConfig::new(url);
            config.max_connections = 2;
            StoreSettings::Postgres(config)
        }
        None => {
            let config = SqliteConfig::new(data_dir.join("accord.db"));
            StoreSettings::Sqlite { data_dir, config }
        }
    })
}

/// Everything the control plane needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Where the SQLite database and the key files of `accord up` live.
    pub data_dir: PathBuf,
    pub store: StoreSettings,
    pub queue: QueueConfig,
    pub api: ApiConfig,
    pub connections: ConnectionLimits,
    pub redis_url: Option<String>,
    /// Where artifact blobs and evidence manifests are kept.
    pub blobs: BlobStoreConfig,
    pub notify: crate::notify_config::NotifySettings,
}

impl ServerSettings {
    pub fn resolve(args: &ServerArgs, file: &FileServer) -> Result<Self> {
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address parses"));
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("accord-data"));
        let synchronous: Synchronous = args
            .sqlite_synchronous
            .as_deref()
            .or(file.sqlite_synchronous.as_deref())
            .unwrap_or("full")
            .parse()
            .map_err(anyhow::Error::msg)?;
        let lease_seconds = args.lease_seconds.or(file.lease_seconds).unwrap_or(30);
        if lease_seconds == 0 {
            bail!("lease_seconds must be at least 1");
        }
        let retention_hours = args
            .retention_hours
            .or(file.retention_hours)
            .unwrap_or(24 * 7);
        let audit_retention_days = args
            .audit_retention_days
            .or(file.audit_retention_days)
            .unwrap_or(90);
        let migrate = !(args.skip_migrations || file.skip_migrations.unwrap_or(false));
        let store = match args
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
        {
            Some(url) => {
                if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                    bail!("--database-url must be a postgres:// URL (SQLite is the default: use --data-dir)");
                }
                let mut config = PostgresConfig::new(url);
                config.max_connections = args
                    .database_max_connections
                    .or(file.database_max_connections)
                    .unwrap_or(16);
                config.migrate = migrate;
                StoreSettings::Postgres(config)
            }
            None => {
                let mut config = SqliteConfig::new(data_dir.join("accord.db"));
                config.synchronous = synchronous;
                StoreSettings::Sqlite {
                    data_dir: data_dir.clone(),
                    config,
                }
            }
        };
        let (blobs, artifacts) = artifact_settings(&args.artifacts, file, &data_dir)?;
        let mut queue = QueueConfig {
            lease_ttl: Duration::from_secs(lease_seconds),
            maintenance_interval: Duration::from_millis(
                args.maintenance_interval_ms
                    .or(file.maintenance_interval_ms)
                    .unwrap_or(1_000)
                    .max(10),
            ),
            retention: (retention_hours > 0).then(|| Duration::from_secs(retention_hours * 3600)),
            audit_retention: (audit_retention_days > 0)
                .then(|| Duration::from_secs(audit_retention_days * 24 * 3600)),
            egress: EgressPolicy::from_allow_private(
                args.allow_private_targets || file.allow_private_targets.unwrap_or(false),
            ),
            allow_targets: allow_list(&args.allow_targets, file.allow_targets.as_deref())?,
            limits: Limits {
                allow_evaluate: args.allow_evaluate || file.allow_evaluate.unwrap_or(false),
                ..Limits::default()
            },
            auto_memory: Duration::from_secs(
                args.auto_memory_hours
                    .or(file.auto_memory_hours)
                    .unwrap_or(24)
                    .max(1)
                    * 3600,
            ),
            artifacts,
            monitors: MonitorConfig {
                min_interval: Duration::from_secs(
                    args.monitor_min_interval_seconds
                        .or(file.monitor_min_interval_seconds)
                        .unwrap_or(accord_model::DEFAULT_MIN_INTERVAL_SECONDS)
                        .max(1),
                ),
                ..MonitorConfig::default()
            },
            ..QueueConfig::default()
        };
        let api = ApiConfig {
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(2 * 1024 * 1024),
            body_read_timeout: Duration::from_secs(
                args.body_read_timeout_seconds
                    .or(file.body_read_timeout_seconds)
                    .unwrap_or(30)
                    .max(1),
            ),
            rate_limits: file.rate_limits.resolve()?,
            cors_origins: if args.cors_origins.is_empty() {
                file.cors_origins.clone().unwrap_or_default()
            } else {
                args.cors_origins.clone()
            },
            event_poll_interval: Duration::from_millis(
                args.event_poll_ms
                    .or(file.event_poll_ms)
                    .unwrap_or(1_000)
                    .max(10),
            ),
            domain_limits: crate::politeness_config::resolve(&args.politeness, &file.politeness)?,
            ..ApiConfig::default()
        };
        let defaults = ConnectionLimits::default();
        let seconds = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file)
                .map_or(default, |s| Duration::from_secs(s.max(1)))
        };
        let connections = ConnectionLimits {
            header_read_timeout: seconds(
                args.header_read_timeout_seconds,
                file.header_read_timeout_seconds,
                defaults.header_read_timeout,
            ),
            idle_timeout: seconds(
                args.idle_timeout_seconds,
                file.idle_timeout_seconds,
                defaults.idle_timeout,
            ),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections)
                .max(1),
            ..defaults
        };
        if connections.idle_timeout <= queue.max_claim_wait {
            bail!(
                "idle_timeout_seconds must be longer than the longest claim wait ({} s)",
                queue.max_claim_wait.as_secs()
            );
        }
        let redis_url = args.redis_url.clone().or_else(|| file.redis_url.clone());
        let mut notify = crate::notify_config::NotifySettings::resolve(&args.notify, &file.notify)?;
        // Notifications leave through the same egress rules as jobs.
        notify.sender.egress = queue.egress;
        notify.sender.allow_targets = queue.allow_targets.clone();
        queue.email_targets = notify.smtp.is_some();
        let api = ApiConfig {
            public_url: notify.delivery.public_url.clone(),
            ..api
        };
        if let Some(smtp) = &notify.smtp {
            // Checked now: a bad SMTP setting stops the start, not the first email.
            notify.mailer(smtp.clone())?;
        }
        Ok(Self {
            notify,
            connections,
            listen,
            data_dir,
            store,
            queue,
            api,
            redis_url,
            blobs,
        })
    }
}

/// A worker's settings, resolved.
pub fn worker_settings(args: &WorkerArgs, file: &FileWorker) -> Result<WorkerConfig> {
    let worker_id = match args.worker_id.clone().or_else(|| file.worker_id.clone()) {
        Some(id) => id,
        None => default_worker_id(),
    };
    let mut config = WorkerConfig::new(WorkerId::new(worker_id).context("invalid worker id")?);
    config.concurrency = args.concurrency.or(file.concurrency).unwrap_or(8).max(1);
    if let Some(slots) = args.browser_slots.or(file.browser_slots) {
        config.browser_slots = slots.max(1);
    }
    let queues = if args.queues.is_empty() {
        file.queues.clone().unwrap_or_default()
    } else {
        args.queues.clone()
    };
    config.queues = queues
        .into_iter()
        .map(|q| QueueName::new(q.trim()).context("invalid queue name"))
        .collect::<Result<_>>()?;
    config.heartbeat_interval = Duration::from_millis(
        args.heartbeat_ms
            .or(file.heartbeat_ms)
            .unwrap_or(2_000)
            .max(50),
    );
    config.shutdown_grace = Duration::from_secs(
        args.shutdown_grace_seconds
            .or(file.shutdown_grace_seconds)
            .unwrap_or(30),
    );
    config.politeness = !(args.no_politeness || file.no_politeness.unwrap_or(false));
    Ok(config)
}

/// `<host>-<pid>-<random>`: unique per process, readable in logs.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}

/// The networks named by `--allow-target` (or, without any, the file's
/// `allow_targets`).
pub fn allow_list(flags: &[String], file: Option<&[String]>) -> Result<AllowList> {
    let named = if flags.is_empty() {
        file.unwrap_or_default()
    } else {
        flags
    };
    AllowList::parse(named.iter().map(String::as_str)).context("--allow-target")
}
