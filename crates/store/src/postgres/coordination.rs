//! [`CoordinationStore`] for PostgreSQL: how the control planes sharing the
//! database work together.
//!
//! Wake-ups use LISTEN/NOTIFY: after a transition that makes jobs claimable,
//! the announcer sends one NOTIFY per burst; every control plane listens on a
//! session connection of its own (so a transaction-pooling proxy in front of
//! the pool does not break it) and wakes its waiting claims.
//!
//! The one control plane that runs background duties holds a session-level
//! advisory lock on a connection of its own. If that process dies or loses
//! its connection, PostgreSQL ends the session and releases the lock, and
//! another replica takes over at its next try.

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};

use super::PostgresStore;
use crate::{CoordinationStore, JobWakeups, Leadership, StoreError};

/// The notification channel.
pub(super) const CHANNEL: &str = "accord_jobs";

/// The advisory lock key: "accord" in ASCII, so it is recognisable in `pg_locks`.
const LEADER_KEY: i64 = 0x6163_636f_7264;

#[derive(Debug)]
struct PgWakeups(PgListener);

#[async_trait]
impl JobWakeups for PgWakeups {
    async fn next(&mut self) -> Result<(), StoreError> {
        // `recv` reconnects by itself after a lost connection.
        self.0.recv().await?;
        Ok(())
    }
}

#[derive(Debug)]
struct AdvisoryLeader(PgConnection);

#[async_trait]
impl Leadership for AdvisoryLeader {
    async fn still_held(&mut self) -> bool {
        // The lock lives as long as the session; a live session still holds it.
        self.0.ping().await.is_ok()
    }
}

#[async_trait]
impl CoordinationStore for PostgresStore {
    async fn job_wakeups(&self) -> Result<Option<Box<dyn JobWakeups>>, StoreError> {
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Box::new(PgWakeups(listener))))
    }

    async fn leadership_try_acquire(&self) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        let mut session = PgConnection::connect(&self.url).await?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_KEY)
            .fetch_one(&mut session)
            .await?;
        if acquired {
            Ok(Some(Box::new(AdvisoryLeader(session))))
        } else {
            session.close().await?;
            Ok(None)
        }
    }
}

impl PostgresStore {
    /// Tells other processes that jobs may have become claimable.
    pub(super) fn announce(&self) {
        let _ = self.announcer.send(());
    }
}
