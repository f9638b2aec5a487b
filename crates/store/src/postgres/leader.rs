//! Electing the one control plane that runs background duties: a
//! session-level advisory lock held on a connection of its own. If that
//! process dies or loses its connection, PostgreSQL ends the session and
//! releases the lock, and another replica takes over at its next try.

use async_trait::async_trait;
use sqlx::{Connection, PgConnection};

use super::PostgresStore;
use crate::{Leadership, StoreError};

/// The advisory lock key: "accord" in ASCII, so it is recognisable in `pg_locks`.
const LEADER_KEY: i64 = 0x6163_636f_7264;

#[derive(Debug)]
pub(super) struct AdvisoryLeader(PgConnection);

#[async_trait]
impl Leadership for AdvisoryLeader {
    async fn still_held(&mut self) -> bool {
        // The lock lives as long as the session; a live session still holds it.
        self.0.ping().await.is_ok()
    }
}

impl PostgresStore {
    pub(super) async fn lead(&self) -> Result<Option<AdvisoryLeader>, StoreError> {
        let mut session = PgConnection::connect(&self.url).await?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_KEY)
            .fetch_one(&mut session)
            .await?;
        if acquired {
            Ok(Some(AdvisoryLeader(session)))
        } else {
            session.close().await?;
            Ok(None)
        }
    }
}
