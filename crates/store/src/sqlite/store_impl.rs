//! `impl Store for SqliteStore`: the trait's methods, each delegating to the
//! file that owns that part of the job's life.

use std::time::Duration;

use accord_model::{
    ClaimedJob, CompleteItem, Job, JobEvent, JobId, LeaseRef, QueueName, WorkerId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::{
    CancelOutcome, ClaimParams, FailParams, HeartbeatOutcome, InsertJob, InsertOutcome, JobCount,
    JobFilter, QueueStats, ReportOutcome, RetryOutcome, Store, StoreError, Transition,
};

/// SQLite is opened by one process, which therefore always leads.
#[derive(Debug)]
struct SoleProcess;

#[async_trait]
impl crate::Leadership for SoleProcess {
    async fn still_held(&mut self) -> bool {
        true
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn leadership_try_acquire(
        &self,
    ) -> Result<Option<Box<dyn crate::Leadership>>, StoreError> {
        Ok(Some(Box::new(SoleProcess)))
    }

    async fn job_wakeups(&self) -> Result<Option<Box<dyn crate::JobWakeups>>, StoreError> {
        Ok(None)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn workspace_create(
        &self,
        id: WorkspaceId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(name)
            .bind(now.timestamp_millis())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn job_insert(
        &self,
        insert: InsertJob,
        now: DateTime<Utc>,
    ) -> Result<InsertOutcome, StoreError> {
        self.insert(insert, now).await
    }

    async fn job_insert_many(
        &self,
        inserts: &[InsertJob],
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        let created = self.insert_many(inserts, now).await?;
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
        self.release(worker, leases, now).await
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
        self.retry(workspace, id, now).await
    }

    async fn job_reap_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transition>, StoreError> {
        self.reap(now, limit).await
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
