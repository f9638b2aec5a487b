//! Wiring the control plane: store, blob store, queue, maintenance loop and
//! HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use accord_api::{router, ApiState, AuditRecorder};
use accord_artifacts::BlobStore;
use accord_cluster::{Cluster, ClusterConfig, DEFAULT_KEY_PREFIX};
use accord_model::SystemClock;
use accord_queue::{Queue, QueueMetrics};
use accord_store::{PostgresStore, SqliteStore, Store};
use anyhow::{bail, Context, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ServerSettings, StoreSettings};

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    pub addr: SocketAddr,
    store: Arc<dyn Store>,
    cluster: Cluster,
    shutdown: CancellationToken,
    claims_closed: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    maintenance: JoinHandle<()>,
    audit: JoinHandle<()>,
}

impl ControlPlane {
    pub async fn start(settings: &ServerSettings) -> Result<Self> {
        let store = open_store(&settings.store).await?;
        Self::start_on(settings, store).await
    }

    /// Starts on an opened store (`accord up` makes its keys on it first).
    pub async fn start_on(settings: &ServerSettings, store: Arc<dyn Store>) -> Result<Self> {
        if !settings.listen.ip().is_loopback() {
            let keys = store
                .api_key_count_active(chrono::Utc::now())
                .await
                .context("count API keys")?;
            if keys == 0 {
                bail!(
                    "refusing to listen on {}: no API key exists yet, so nobody could use this server \
                     and it must not be reachable without one. Create an admin key first: \
                     `accord keys create --offline --role admin --save-to admin.key` (with the same \
                     --database-url or --data-dir)",
                    settings.listen
                );
            }
        }
        let cluster = Cluster::connect(ClusterConfig {
            redis_url: settings.redis_url.clone(),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            replica_id: uuid::Uuid::new_v4().simple().to_string(),
        })
        .await
        .context("connect to Redis")?;
        if matches!(settings.store, StoreSettings::Postgres(_))
            && matches!(
                settings.blobs,
                accord_artifacts::BlobStoreConfig::Local { .. }
            )
        {
            tracing::warn!(artifacts = %settings.blobs.describe(), "artifacts are kept in a local folder: every control plane sharing this database must see the same folder, or use an S3 bucket (--s3-bucket)");
        }
        let blobs = BlobStore::open(&settings.blobs)
            .with_context(|| format!("open the artifact store ({})", settings.blobs.describe()))?;
        let queue = Queue::new(
            store.clone(),
            Arc::new(SystemClock),
            settings.queue.clone(),
            Arc::new(QueueMetrics::new()),
        )
        .with_events(cluster.events().clone())
        .with_blobs(blobs);
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        // Waiting claims end as soon as claims close, which happens first on shutdown.
        let claims_closed = shutdown.child_token();
        let (recorder, audit) = AuditRecorder::start(store.clone());
        let app = router(ApiState::new(
            queue.clone(),
            store.clone(),
            cluster.clone(),
            recorder,
            settings.api.clone(),
            claims_closed.clone(),
        ));
        let server = tokio::spawn(accord_api::serve(
            listener,
            app,
            settings.connections,
            shutdown.clone(),
        ));
        // Every replica delivers: the outbox's claims never hand one
        // message to two of them.
        let deliverer = accord_notify::Deliverer::new(
            store.clone(),
            Arc::new(SystemClock),
            accord_notify::Sender::new(&settings.notify.sender)
                .context("build the notification sender")?,
            settings.notify.delivery.clone(),
        );
        let deliverer = match &settings.notify.smtp {
            Some(smtp) => deliverer.with_mailer(settings.notify.mailer(smtp.clone())?),
            None => deliverer,
        };
        let maintenance = tokio::spawn({
            let queue = queue.clone();
            let shutdown = shutdown.clone();
            async move {
                tokio::join!(
                    queue.run_maintenance(shutdown.clone()),
                    queue.run_scheduler(shutdown.clone()),
                    deliverer.run(shutdown.clone()),
                    queue.run_wakeup_listener(shutdown)
                );
            }
        });
        tracing::info!(%addr, store = %settings.store.describe(), artifacts = %settings.blobs.describe(), "control plane started");
        Ok(Self {
            addr,
            store,
            cluster,
            shutdown,
            claims_closed,
            server,
            maintenance,
            audit,
        })
    }

    /// The URL a local client (or the in-process worker) uses to reach this server.
    /// The store this control plane runs on (benchmarks write to it
    /// directly).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn local_url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() {
            "127.0.0.1".parse().expect("valid address")
        } else {
            self.addr.ip()
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Answers waiting and future claims with no jobs, so workers can stop
    /// without waiting out their long-poll.
    pub fn close_claims(&self) {
        self.claims_closed.cancel();
    }

    /// Stops accepting requests, ends waiting claims, finishes requests under way.
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown.cancel();
        self.server
            .await
            .context("server task")?
            .context("serve HTTP")?;
        self.maintenance.await.context("maintenance task")?;
        // The router is gone, and with it every sender: the recorder drains and ends.
        self.audit.await.context("audit task")?;
        self.cluster.shutdown().await;
        self.store.close().await;
        tracing::info!("control plane stopped");
        Ok(())
    }
}

/// Opens (and, unless told otherwise, migrates) the configured database.
pub async fn open_store(settings: &StoreSettings) -> Result<Arc<dyn Store>> {
    Ok(match settings {
        StoreSettings::Sqlite { data_dir, config } => {
            create_private_dir(data_dir)?;
            let store = SqliteStore::open(config)
                .await
                .with_context(|| format!("open database {}", config.path.display()))?;
            // Files made by an older version, or with a looser umask, are
            // tightened too; SQLite gives its WAL and shared-memory files
            // the database file's mode when it creates them.
            for suffix in ["", "-wal", "-shm"] {
                let mut path = config.path.clone().into_os_string();
                path.push(suffix);
                make_private(std::path::Path::new(&path), 0o600)?;
            }
            Arc::new(store)
        }
        StoreSettings::Postgres(config) => {
            let store = PostgresStore::connect(config)
                .await
                .with_context(|| format!("connect to {}", config.redacted_url()))?;
            Arc::new(store)
        }
    })
}

/// Creates the data directory (and its parents) readable by its owner only.
pub fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("create data directory {}", dir.display()))?;
    make_private(dir, 0o700)
}

/// Sets `path`'s mode when it exists.
fn make_private(path: &std::path::Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err).with_context(|| format!("restrict access to {}", path.display()))
            }
            _ => {}
        }
    }
    let _ = (path, mode);
    Ok(())
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("stop requested; shutting down gracefully");
}
