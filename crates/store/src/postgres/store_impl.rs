//! `impl Store for PostgresStore`: the trait's methods, each delegating to the
//! file that owns that part of the job's life.

use std::time::Duration;

use accord_model::{
    ClaimedJob, CompleteItem, Job, JobEvent, JobId, LeaseRef, QueueName, WorkerId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::{
    CancelOutcome, ClaimParams, FailParams, HeartbeatOutcome, InsertJob, InsertOutcome, JobCount,
    JobFilter, QueueStats, ReportOutcome, RetryOutcome, Store, StoreError, Transition,
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

    async fn workspace_create(
        &self,
        id: WorkspaceId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.as_uuid())
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
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
