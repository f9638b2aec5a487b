//! [`CoordinationStore`]: how the processes sharing one database work
//! together: wake-up hints when jobs become claimable, and the election of
//! the one process that runs background duties. Implemented in each
//! backend's `coordination.rs`.

use std::fmt;

use async_trait::async_trait;

use crate::StoreError;

/// Hints, from other processes sharing the database, that jobs may have
/// become claimable. Hints can be lost (while reconnecting); claims keep a
/// polling backstop.
#[async_trait]
pub trait JobWakeups: Send + fmt::Debug {
    /// Waits for the next hint. After an error the caller may call again:
    /// the listener reconnects.
    async fn next(&mut self) -> Result<(), StoreError>;
}

/// Held by the one process that runs the background duties (reaper,
/// pruner) among all that share the database; dropping it steps down.
#[async_trait]
pub trait Leadership: Send + fmt::Debug {
    /// Whether this process still leads (its session is alive).
    async fn still_held(&mut self) -> bool;
}

/// Working together with other processes on the same database.
#[async_trait]
pub trait CoordinationStore: Send + Sync {
    /// Subscribes to wake-up hints from other processes; `None` when the
    /// backend is used by one process only (SQLite).
    async fn job_wakeups(&self) -> Result<Option<Box<dyn JobWakeups>>, StoreError>;

    /// Tries to become the process that runs background duties; `None` when
    /// another process leads. A single-process store always grants it.
    async fn leadership_try_acquire(&self) -> Result<Option<Box<dyn Leadership>>, StoreError>;
}
