//! Wiring the control plane: store, queue, maintenance loop and HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use accord_api::{router, ApiState};
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
    shutdown: CancellationToken,
    claims_closed: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    maintenance: JoinHandle<()>,
}

impl ControlPlane {
    pub async fn start(settings: &ServerSettings) -> Result<Self> {
        if !settings.listen.ip().is_loopback() && !settings.allow_unauthenticated_remote {
            bail!(
                "refusing to listen on {}: the API has no authentication yet, so it only listens on loopback \
                 addresses unless --allow-unauthenticated-remote is given",
                settings.listen
            );
        }
        let store = open_store(&settings.store).await?;
        let queue = Queue::new(
            store.clone(),
            Arc::new(SystemClock),
            settings.queue.clone(),
            Arc::new(QueueMetrics::new()),
        );
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        // Waiting claims end as soon as claims close, which happens first on shutdown.
        let claims_closed = shutdown.child_token();
        let app = router(ApiState::new(
            queue.clone(),
            settings.api.clone(),
            claims_closed.clone(),
        ));
        let server = tokio::spawn({
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned());
            async move { serve.await }
        });
        let maintenance = tokio::spawn({
            let queue = queue.clone();
            let shutdown = shutdown.clone();
            async move {
                tokio::join!(
                    queue.run_maintenance(shutdown.clone()),
                    queue.run_wakeup_listener(shutdown)
                );
            }
        });
        tracing::info!(%addr, store = %settings.store.describe(), "control plane started");
        Ok(Self {
            addr,
            store,
            shutdown,
            claims_closed,
            server,
            maintenance,
        })
    }

    /// The URL a local client (or the in-process worker) uses to reach this server.
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
        self.store.close().await;
        tracing::info!("control plane stopped");
        Ok(())
    }
}

/// Opens (and, unless told otherwise, migrates) the configured database.
pub async fn open_store(settings: &StoreSettings) -> Result<Arc<dyn Store>> {
    Ok(match settings {
        StoreSettings::Sqlite { data_dir, config } => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("create data directory {}", data_dir.display()))?;
            let store = SqliteStore::open(config)
                .await
                .with_context(|| format!("open database {}", config.path.display()))?;
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
