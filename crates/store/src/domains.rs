//! [`DomainStore`]: what the control plane has learned per domain. Today
//! that is which engine a domain needs (what the `auto` engine found out),
//! remembered until it expires so HTTP is tried again now and then.
//! Implemented in each backend's `domains.rs`; the memory is written by
//! [`LeaseStore::job_escalate_if_leased`](crate::LeaseStore::job_escalate_if_leased),
//! in the same transaction as the job it learned from.

use accord_model::{RunEngine, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// The engine a domain is remembered to need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEngine {
    /// The host, lowercase, as in the job's URL.
    pub domain: String,
    pub engine: RunEngine,
    /// What showed it, in a sentence.
    pub reason: String,
    pub decided_at: DateTime<Utc>,
    /// After this, `auto` jobs for the domain start on HTTP again.
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait DomainStore: Send + Sync {
    /// The engine remembered for `domain` in the workspace, unless it expired
    /// before `now`.
    async fn domain_engine_get(
        &self,
        workspace: WorkspaceId,
        domain: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DomainEngine>, StoreError>;

    /// Every unexpired memory of the workspace, by domain.
    async fn domain_engine_list(
        &self,
        workspace: WorkspaceId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DomainEngine>, StoreError>;
}
