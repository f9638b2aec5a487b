//! `impl Store for PostgresStore`: the trait's methods, each delegating to the
//! file that owns that part of the job's life.

use std::time::Duration;

use accord_model::{
    ApiKey, ApiKeyId, AuditEntry, ClaimedJob, CompleteItem, Job, JobEvent, JobId, LeaseRef,
    NewAuditEntry, QueueName, WorkerId, Workspace, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::{
    AuditFilter, CancelOutcome, ClaimParams, FailParams, HeartbeatOutcome, InsertJob,
    InsertOutcome, JobCount, JobFilter, QueueStats, ReportOutcome, RetryOutcome, Store, StoreError,
    StoredApiKey, Transition,
};

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn close(&self) {
        PostgresStore::close(self).await;
    }

    async fn leadership_try_acquire(
        &self,
    ) -> Result<Option<Box<dyn crate::Leadership>>, StoreError> {
        Ok(self
            .lead()
            .await?
            .map(|held| Box::new(held) as Box<dyn crate::Leadership>))
    }

    async fn job_wakeups(&self) -> Result<Option<Box<dyn crate::JobWakeups>>, StoreError> {
        Ok(Some(Box::new(self.listen().await?)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn workspace_create(&self, workspace: &Workspace) -> Result<bool, StoreError> {
        self.workspace_insert(workspace).await
    }

    async fn workspace_list(&self) -> Result<Vec<Workspace>, StoreError> {
        self.workspaces().await
    }

    async fn workspace_get(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        self.workspace_by("id", id.to_string()).await
    }

    async fn workspace_find(&self, name: &str) -> Result<Option<Workspace>, StoreError> {
        self.workspace_by("name", name.to_owned()).await
    }

    async fn api_key_insert(&self, key: &StoredApiKey) -> Result<(), StoreError> {
        self.key_insert(key).await
    }

    async fn api_key_get(&self, id: &ApiKeyId) -> Result<Option<StoredApiKey>, StoreError> {
        self.key_get(id).await
    }

    async fn api_key_list(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        self.keys(workspace).await
    }

    async fn api_key_revoke(
        &self,
        workspace: WorkspaceId,
        id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.key_revoke(workspace, id, now).await
    }

    async fn api_key_touch(&self, id: &ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.key_touch(id, now).await
    }

    async fn api_key_count_active(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.keys_active(now).await
    }

    async fn audit_insert(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        self.audit_write(entries).await
    }

    async fn audit_list(
        &self,
        workspace: WorkspaceId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_read(workspace, filter).await
    }

    async fn audit_prune(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        self.audit_delete_before(cutoff, limit).await
    }

    async fn job_insert(
        &self,
        insert: InsertJob,
        now: DateTime<Utc>,
    ) -> Result<InsertOutcome, StoreError> {
        let outcome = self.insert(insert, now).await?;
        if matches!(outcome, InsertOutcome::Created(_)) {
            self.announce();
        }
        Ok(outcome)
    }

    async fn job_insert_many(
        &self,
        inserts: &[InsertJob],
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        let created = self.insert_many(inserts, now).await?;
        self.announce();
        Ok(created)
    }

    async fn job_get(&self, workspace: WorkspaceId, id: JobId) -> Result<Option<Job>, StoreError> {
        self.get(workspace, id).await
    }

    async fn job_list(
        &self,
        workspace: WorkspaceId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, StoreError> {
        self.list(workspace, filter).await
    }

    async fn job_events(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Option<Vec<JobEvent>>, StoreError> {
        self.events(workspace, id, after, limit).await
    }

    async fn job_claim_available(
        &self,
        params: &ClaimParams,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.claim(params).await
    }

    async fn job_heartbeat_leased(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
        lease_ttl: Duration,
    ) -> Result<HeartbeatOutcome, StoreError> {
        self.heartbeat(worker, leases, now, lease_ttl).await
    }

    async fn job_complete_if_leased(
        &self,
        worker: &WorkerId,
        items: &[CompleteItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        self.complete(worker, items, now).await
    }

    async fn job_fail_if_leased(
        &self,
        params: &FailParams,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        self.fail(params).await
    }

    async fn job_release_if_leased(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let outcomes = self.release(worker, leases, now).await?;
        if outcomes
            .iter()
            .any(|o| matches!(o, ReportOutcome::Applied(_)))
        {
            self.announce();
        }
        Ok(outcomes)
    }

    async fn job_cancel(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        self.cancel(workspace, id, now).await
    }

    async fn job_retry(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        let outcome = self.retry(workspace, id, now).await?;
        if matches!(outcome, RetryOutcome::Requeued(_)) {
            self.announce();
        }
        Ok(outcome)
    }

    async fn job_reap_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transition>, StoreError> {
        let reaped = self.reap(now, limit).await?;
        if !reaped.is_empty() {
            self.announce();
        }
        Ok(reaped)
    }

    async fn job_prune_finished(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.prune(cutoff, limit).await
    }

    async fn job_next_due_at(
        &self,
        queues: &[QueueName],
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.next_due_at(queues).await
    }

    async fn queue_stats(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<QueueStats, StoreError> {
        self.stats(workspace, since, now).await
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
        self.counts().await
    }
}
