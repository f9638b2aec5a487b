//! Connecting to the server and running migrations; [`BackendStore`] for
//! PostgreSQL.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::{BackendStore, StoreError};

#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://` connection URL.
    pub url: String,
    pub max_connections: u32,
    /// Run pending migrations on connect (on by default).
    pub migrate: bool,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            migrate: true,
        }
    }

    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        redacted(&self.url)
    }
}

// The URL may carry a password, and configs end up in logs.
impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redacted(&self.url))
            .field("max_connections", &self.max_connections)
            .field("migrate", &self.migrate)
            .finish()
    }
}

/// The URL with its password, if any, replaced by `***`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
    /// For the listener, which needs a session connection of its own.
    pub(super) url: String,
    /// Asks the announcer task to NOTIFY other processes.
    pub(super) announcer: mpsc::UnboundedSender<()>,
}

impl PostgresStore {
    /// Connects to the database and, unless the config says otherwise,
    /// migrates it. Several processes may do this at once: migrations take
    /// an advisory lock.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            // While the database is down, requests fail (503) after this
            // long instead of hanging: the pool keeps retrying to connect
            // until then.
            .acquire_timeout(Duration::from_secs(3))
            // No round trip to check a connection before every statement:
            // on the hot path that ping cost as much as the statement. A
            // connection that died meanwhile (the server restarted) fails
            // its next statement instead, which reports the store as
            // unavailable (503, and the worker retries) and drops it.
            .test_before_acquire(false)
            .connect(&config.url)
            .await?;
        let (announcer, requests) = mpsc::unbounded_channel();
        tokio::spawn(announce_loop(pool.clone(), requests));
        let store = Self {
            pool,
            url: config.url.clone(),
            announcer,
        };
        if config.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl BackendStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for statements under way.
    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Sends one `NOTIFY` for every burst of requests: many inserts in a row
/// cost one notification, not one each. Requests are made after the
/// transition committed, so listeners always find the rows.
async fn announce_loop(pool: PgPool, mut requests: mpsc::UnboundedReceiver<()>) {
    while requests.recv().await.is_some() {
        while requests.try_recv().is_ok() {}
        if let Err(err) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(super::coordination::CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %err, "could not notify other processes; their polling will catch up");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    fn check(url: &str, expected: &str) {
        assert_eq!(redacted(url), expected, "{url}");
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        check(
            "postgres://u:secret@db:5432/accord",
            "postgres://u:***@db:5432/accord",
        );
        check("postgres://u:p@ss@db/accord", "postgres://u:***@db/accord");
        check("postgres://u@db/accord", "postgres://u@db/accord");
        check("postgres://db/accord?user=u", "postgres://db/accord?user=u");
        check("not a url", "not a url");
    }
}
