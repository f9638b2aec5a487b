//! Cross-process wake-ups with LISTEN/NOTIFY: after a transition that makes
//! jobs claimable, the announcer sends one NOTIFY per burst; every control
//! plane listens on a session connection of its own (so a transaction-pooling
//! proxy in front of the pool does not break it) and wakes its waiting claims.

use async_trait::async_trait;
use sqlx::postgres::PgListener;

use super::PostgresStore;
use crate::{JobWakeups, StoreError};

/// The notification channel.
pub(super) const CHANNEL: &str = "accord_jobs";

#[derive(Debug)]
pub(super) struct PgWakeups(PgListener);

#[async_trait]
impl JobWakeups for PgWakeups {
    async fn next(&mut self) -> Result<(), StoreError> {
        // `recv` reconnects by itself after a lost connection.
        self.0.recv().await?;
        Ok(())
    }
}

impl PostgresStore {
    pub(super) async fn listen(&self) -> Result<PgWakeups, StoreError> {
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(CHANNEL).await?;
        Ok(PgWakeups(listener))
    }

    /// Tells other processes that jobs may have become claimable.
    pub(super) fn announce(&self) {
        let _ = self.announcer.send(());
    }
}
