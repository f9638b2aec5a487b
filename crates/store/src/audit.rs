//! [`AuditStore`]: the audit log of API calls. Implemented in each
//! backend's `audit.rs`.

use accord_model::{ApiKeyId, AuditEntry, AuditOutcome, NewAuditEntry, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// Filters for reading the audit log. Results are newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub key_id: Option<ApiKeyId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries older than this one (the cursor).
    pub before: Option<i64>,
    pub limit: u32,
}

/// What was called, by whom, and how it ended.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn audit_insert(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError>;

    async fn audit_list(
        &self,
        workspace: WorkspaceId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Deletes up to `limit` audit entries older than `cutoff`.
    async fn audit_prune(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}
