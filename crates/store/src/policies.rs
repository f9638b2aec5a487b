//! [`PolicyStore`]: the domain policies of each workspace. Implemented in
//! each backend's `policies.rs`.
//!
//! A pattern is unique in its workspace (a unique index): a second policy
//! for the same pattern, created or renamed into, is refused as
//! [`PolicyWrite::Duplicate`] and nothing is written. Which policy applies
//! to a host is decided by the model ([`accord_model::effective_policy`]),
//! never in SQL.

use accord_model::{DomainPolicy, JobId, PolicyId, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// What became of a policy write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyWrite {
    Written,
    /// Another policy of the workspace has the pattern.
    Duplicate,
    /// No such policy (deleted, or changed since `expected_updated_at`).
    Missing,
}

#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Inserts a policy unless its workspace already has one for the
    /// pattern ([`PolicyWrite::Duplicate`]).
    async fn policy_insert(&self, policy: &DomainPolicy) -> Result<PolicyWrite, StoreError>;

    async fn policy_get(
        &self,
        workspace: WorkspaceId,
        id: PolicyId,
    ) -> Result<Option<DomainPolicy>, StoreError>;

    /// Every policy of the workspace (at most `limit`), in no set order.
    async fn policy_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<DomainPolicy>, StoreError>;

    /// Writes `policy` over the stored one if that one was last updated at
    /// `expected_updated_at`.
    async fn policy_update(
        &self,
        policy: &DomainPolicy,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<PolicyWrite, StoreError>;

    async fn policy_delete(&self, workspace: WorkspaceId, id: PolicyId)
        -> Result<bool, StoreError>;

    /// The policies of the workspace of each of `jobs` (a job whose
    /// workspace has none is absent): what a claim hands the worker.
    async fn policies_of_jobs(
        &self,
        jobs: &[JobId],
    ) -> Result<Vec<(JobId, DomainPolicy)>, StoreError>;
}
