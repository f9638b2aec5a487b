//! Retention, due-time look-ups and counts.

use std::collections::BTreeMap;

use accord_model::{QueueName, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::rows::{parse_priority, parse_queue, state, CLAIMABLE, TERMINAL};
use super::PostgresStore;
use crate::{JobCount, QueueStats, StoreError};

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

impl PostgresStore {
    pub(super) async fn prune(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        // One statement: the doomed jobs, their events, then the jobs. A job
        // being requeued right now is locked and skipped; one requeued since
        // the statement began fails the state re-check and is kept.
        let deleted: i64 = sqlx::query_scalar(&format!(
            "WITH doomed AS ( \
               SELECT id FROM jobs WHERE state IN {TERMINAL} AND finished_at < $1 \
               ORDER BY finished_at LIMIT $2 \
               FOR UPDATE SKIP LOCKED \
             ), events AS ( \
               DELETE FROM job_events WHERE job_id IN (SELECT id FROM doomed) \
             ), deleted AS ( \
               DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) AND state IN {TERMINAL} RETURNING 1 \
             ) \
             SELECT COUNT(*) FROM deleted"
        ))
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await?;
        Ok(deleted.unsigned_abs())
    }

    pub(super) async fn next_due_at(
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

    pub(super) async fn stats(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<QueueStats, StoreError> {
        let workspace = workspace.as_uuid();
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(
            "SELECT queue, state, priority, COUNT(*) AS n FROM jobs WHERE workspace_id = $1 \
             GROUP BY queue, state, priority ORDER BY queue, state, priority",
        )
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

    pub(super) async fn counts(&self) -> Result<Vec<JobCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, state, priority, COUNT(*) AS n FROM jobs GROUP BY queue, state, priority",
        )
        .fetch_all(&self.pool)
        .await?;
        counts_from_rows(&rows)
    }
}
