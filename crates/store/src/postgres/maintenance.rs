//! [`MaintenanceStore`] for PostgreSQL: retention, due-time look-ups and
//! counts. Counts are read from the
//! counters every write keeps (migration 0003), never by grouping every job.

use std::collections::BTreeMap;

use accord_model::{QueueName, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::rows::{counted, state};
use super::PostgresStore;
use crate::schema::{parse_priority, parse_queue, CLAIMABLE, TERMINAL};
use crate::{JobCount, MaintenanceStore, QueueStats, StoreError};

/// Job counts as rows of `(workspace_id, queue, state, priority, n)` to
/// sum: the folded counts and the deltas appended since (see migration
/// 0003). Summed in one statement, they are exact for its snapshot, and
/// reading them costs the same with a million finished jobs as with none.
const COUNTED: &str = "SELECT workspace_id, queue, state, priority, n FROM job_counts \
    UNION ALL SELECT workspace_id, queue, state, priority, n FROM job_count_deltas";

fn counts_from_rows(rows: &[PgRow]) -> Result<Vec<JobCount>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(JobCount {
                queue: parse_queue(row.try_get("queue")?)?,
                state: state(row, "state")?,
                priority: parse_priority(row.try_get("priority")?)?,
                count: row.try_get::<i64, _>("n")?.unsigned_abs(),
            })
        })
        .collect()
}

#[async_trait]
impl MaintenanceStore for PostgresStore {
    async fn job_prune_finished(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // One statement: the doomed jobs, their events and artifact rows
        // (their blobs are the sweep's, being shareable), then the jobs. A job
        // being requeued right now is locked and skipped; one requeued since
        // the statement began is re-checked when locked and skipped too. The
        // rows stay locked until the deletes, which need no re-check of their
        // own (and, without one, can only go through the primary key).
        //
        // The plan must not depend on statistics (see `claim` in lease.rs):
        // the hidden limit keeps a walk of `jobs_finished` that stops after
        // one batch, and the arrays keep the deletes on the primary key and
        // `job_events_job`. A batch costs the same with a million jobs past
        // retention as with a thousand.
        let deleted: i64 = sqlx::query_scalar(&format!(
            "WITH doomed AS ( \
               SELECT id FROM jobs WHERE state IN {TERMINAL} AND finished_at < $1 \
               ORDER BY finished_at LIMIT (SELECT $2::int8) \
               FOR UPDATE SKIP LOCKED \
             ), events AS ( \
               DELETE FROM job_events WHERE job_id = ANY(ARRAY(SELECT id FROM doomed)) \
             ), artifacts AS ( \
               DELETE FROM artifacts WHERE job_id = ANY(ARRAY(SELECT id FROM doomed)) \
             ), deleted AS ( \
               DELETE FROM jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed)) \
               RETURNING workspace_id, queue, state, priority \
             ), {counted} \
             SELECT COUNT(*) FROM deleted",
            counted = counted("deleted", "c.state", "NULL"),
        ))
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await?;
        Ok(deleted.unsigned_abs())
    }

    async fn job_next_due_at(
        &self,
        queues: &[QueueName],
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let filter = if queues.is_empty() {
            ""
        } else {
            " AND queue = ANY($1)"
        };
        let sql = format!("SELECT MIN(run_at) FROM jobs WHERE state IN {CLAIMABLE}{filter}");
        let mut query = sqlx::query_scalar::<_, Option<DateTime<Utc>>>(&sql);
        if !queues.is_empty() {
            query = query.bind(queues.iter().map(QueueName::as_str).collect::<Vec<_>>());
        }
        Ok(query.fetch_one(&self.pool).await?)
    }

    async fn queue_stats(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<QueueStats, StoreError> {
        let workspace = workspace.as_uuid();
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT queue, state, priority, SUM(n)::int8 AS n FROM ({COUNTED}) AS c \
             WHERE workspace_id = $1 \
             GROUP BY queue, state, priority HAVING SUM(n) > 0 ORDER BY queue, state, priority"
        ))
        .bind(workspace)
        .fetch_all(&mut *conn)
        .await?;
        let counts = counts_from_rows(&rows)?;
        let oldest_due_at: Option<DateTime<Utc>> = sqlx::query_scalar(&format!(
            "SELECT MIN(run_at) FROM jobs WHERE workspace_id = $1 AND state IN {CLAIMABLE} AND run_at <= $2"
        ))
        .bind(workspace)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        let finished = sqlx::query(&format!(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE state IN {TERMINAL} AND finished_at >= $1 \
             AND workspace_id = $2 GROUP BY state"
        ))
        .bind(since)
        .bind(workspace)
        .fetch_all(&mut *conn)
        .await?;
        let mut finished_since = BTreeMap::new();
        for row in &finished {
            finished_since.insert(
                state(row, "state")?,
                row.try_get::<i64, _>("n")?.unsigned_abs(),
            );
        }
        Ok(QueueStats {
            counts,
            oldest_due_at,
            finished_since,
        })
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT queue, state, priority, SUM(n)::int8 AS n FROM ({COUNTED}) AS c \
             GROUP BY queue, state, priority HAVING SUM(n) > 0"
        ))
        .fetch_all(&self.pool)
        .await?;
        counts_from_rows(&rows)
    }
}

impl PostgresStore {
    /// Folds the count deltas appended so far into `job_counts`, so that
    /// reading counts stays cheap. Concurrent folds are safe: a delta row
    /// is deleted, and so added, once.
    pub(super) async fn fold_counts(&self) -> Result<(), StoreError> {
        sqlx::query(
            "WITH folded AS ( \
               DELETE FROM job_count_deltas RETURNING workspace_id, queue, state, priority, n \
             ) \
             INSERT INTO job_counts AS c (workspace_id, queue, state, priority, n) \
             SELECT workspace_id, queue, state, priority, SUM(n) FROM folded \
             GROUP BY workspace_id, queue, state, priority \
             ORDER BY workspace_id, queue, state, priority \
             ON CONFLICT (workspace_id, queue, state, priority) DO UPDATE SET n = c.n + EXCLUDED.n",
        )
        .execute(&self.pool)
        .await?;
        // Rows of queues no longer used; a fold that adds to one meanwhile
        // keeps it (the delete re-checks `n` after waiting for its lock).
        sqlx::query("DELETE FROM job_counts WHERE n = 0")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
