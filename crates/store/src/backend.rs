//! [`BackendStore`]: the database as a whole: which backend it is, whether
//! it answers, closing it. Implemented in each backend's `connect.rs`.

use async_trait::async_trait;

use crate::StoreError;

/// The connection to the database itself.
#[async_trait]
pub trait BackendStore: Send + Sync {
    /// Which backend this is, for logs and `/ready`.
    fn backend(&self) -> &'static str;

    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the connections, waiting for statements under way.
    async fn close(&self);
}
