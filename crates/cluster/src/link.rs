//! The connection to Redis that the limiter and the event bus share: the
//! client, one multiplexed command connection (a `ConnectionManager`, which
//! reconnects on its own), the [`Health`] record, key naming, and the
//! background tasks' lifetime.
//!
//! Does not decide what to do when Redis is down (the limiter and the bus
//! do) nor when it is back (the prober does).

use std::future::Future;
use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::config::{ClusterConfig, CONNECT_TIMEOUT, REQUEST_TIMEOUT, RESPONSE_TIMEOUT};
use crate::error::ClusterError;
use crate::health::{Health, Part};

/// Why a command did not get an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("the connection closed")]
    Closed,
}

/// What the handles hold: the link, and the background tasks that stop
/// when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct RedisHandle {
    pub(crate) link: Arc<Link>,
    pub(crate) background: Arc<Background>,
}

impl RedisHandle {
    /// The link, while Redis is believed up and this cluster has not shut
    /// down: while it is known to be down, requests do not touch it at all
    /// (the prober finds out when it is back).
    pub(crate) fn usable_link(&self) -> Option<&Link> {
        (self.link.health.commands_up() && !self.background.is_stopped())
            .then_some(self.link.as_ref())
    }
}

/// The connection itself, shared with the background tasks (which must not
/// hold a [`Background`], or they would keep themselves alive).
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) client: redis::Client,
    commands: ConnectionManager,
    pub(crate) health: Health,
    key_prefix: String,
}

/// The background tasks of one link.
#[derive(Debug)]
pub(crate) struct Background {
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Dropping the last handle stops the tasks too, so a forgotten
    /// `shutdown` leaks nothing.
    _stop_on_drop: DropGuard,
}

impl Background {
    pub(crate) fn new() -> Self {
        let stop = CancellationToken::new();
        Self {
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            tasks: TaskTracker::new(),
        }
    }

    /// Runs a task until [`Background::shutdown`] or the last handle is dropped.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = task => {}
            }
        });
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops the tasks and waits until they have.
    pub(crate) async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Link {
    /// Parses the URL and prepares the connection without opening it: a
    /// Redis that is down at start is an outage like any other.
    pub(crate) fn new(url: &str, config: &ClusterConfig) -> Result<Self, ClusterError> {
        let client = redis::Client::open(url).map_err(ClusterError::InvalidRedisUrl)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // One attempt per reconnect: the prober paces the retries, and a
            // request must never wait behind a series of them.
            .set_number_of_retries(0);
        let commands = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(ClusterError::InvalidRedisUrl)?;
        Ok(Self {
            client,
            commands,
            health: Health::new(),
            key_prefix: config.key_prefix.clone(),
        })
    }

    /// `<prefix><name>`: every key and channel goes through here.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.key_prefix)
    }

    /// A handle on the command connection; cheap, shares the connection.
    pub(crate) fn commands(&self) -> ConnectionManager {
        self.commands.clone()
    }

    /// Runs one command under [`REQUEST_TIMEOUT`] and records a failure in
    /// the health (a success changes nothing: only the prober declares
    /// Redis back, so one lucky request cannot flap the status).
    pub(crate) async fn run<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CommandError> {
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, command).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => CommandError::Redis(err),
            Err(_) => CommandError::TimedOut(REQUEST_TIMEOUT),
        };
        self.health.record_down(Part::Commands, &outcome);
        Err(outcome)
    }
}
