//! [`CoordinationStore`] for SQLite: the file is opened by one process, so
//! there is nobody to wake and nobody to elect.

use async_trait::async_trait;

use super::SqliteStore;
use crate::{CoordinationStore, JobWakeups, Leadership, StoreError};

/// SQLite is opened by one process, which therefore always leads.
#[derive(Debug)]
struct SoleProcess;

#[async_trait]
impl Leadership for SoleProcess {
    async fn still_held(&mut self) -> bool {
        true
    }
}

#[async_trait]
impl CoordinationStore for SqliteStore {
    async fn job_wakeups(&self) -> Result<Option<Box<dyn JobWakeups>>, StoreError> {
        Ok(None)
    }

    async fn leadership_try_acquire(&self) -> Result<Option<Box<dyn Leadership>>, StoreError> {
        Ok(Some(Box::new(SoleProcess)))
    }
}
