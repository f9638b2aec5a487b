//! [`MaintenanceStore`] for SQLite: retention, due-time look-ups and counts.

use std::collections::BTreeMap;

use accord_model::{JobState, QueueName, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{from_ms, ms, placeholders};
use super::SqliteStore;
use crate::schema::{parse_priority, parse_queue, parse_state, CLAIMABLE, TERMINAL};
use crate::{JobCount, MaintenanceStore, QueueStats, StoreError};

fn counts_from_rows(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<JobCount>, StoreError> {
    rows.iter()
        .map(|row| {
            let priority: i64 = row.try_get("priority")?;
            Ok(JobCount {
                queue: parse_queue(row.try_get("queue")?)?,
                state: parse_state(row.try_get("state")?)?,
                priority: parse_priority(priority as i16)?,
                count: row.try_get::<i64, _>("n")? as u64,
            })
        })
        .collect()
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn job_prune_finished(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM jobs WHERE state IN {TERMINAL} AND finished_at < ? ORDER BY finished_at LIMIT ?"
        ))
        .bind(ms(cutoff))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = placeholders(ids.len());
        let sql = format!("DELETE FROM job_events WHERE job_id IN ({list})");
        let mut events = sqlx::query(&sql);
        for id in &ids {
            events = events.bind(id);
        }
        events.execute(&mut *tx).await?;
        // Their artifact rows go too; blobs no row holds any more are the
        // sweep's (a blob may be shared with jobs that stay).
        let sql = format!("DELETE FROM artifacts WHERE job_id IN ({list})");
        let mut artifacts = sqlx::query(&sql);
        for id in &ids {
            artifacts = artifacts.bind(id);
        }
        artifacts.execute(&mut *tx).await?;
        let sql = format!("DELETE FROM jobs WHERE id IN ({list}) AND state IN {TERMINAL}");
        let mut jobs = sqlx::query(&sql);
        for id in &ids {
            jobs = jobs.bind(id);
        }
        let deleted = jobs.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn job_next_due_at(
        &self,
        queues: &[QueueName],
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let filter = if queues.is_empty() {
            String::new()
        } else {
            format!(" AND queue IN ({})", placeholders(queues.len()))
        };
        let sql = format!("SELECT MIN(run_at) FROM jobs WHERE state IN {CLAIMABLE}{filter}");
        let mut query = sqlx::query_scalar::<_, Option<i64>>(&sql);
        for queue in queues {
            query = query.bind(queue.as_str());
        }
        query
            .fetch_one(&self.reader)
            .await?
            .map(from_ms)
            .transpose()
    }

    async fn queue_stats(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<QueueStats, StoreError> {
        let workspace = workspace.to_string();
        let mut conn = self.reader.acquire().await?;
        let rows = sqlx::query(
            "SELECT queue, state, priority, COUNT(*) AS n FROM jobs WHERE workspace_id = ? \
             GROUP BY queue, state, priority ORDER BY queue, state, priority",
        )
        .bind(&workspace)
        .fetch_all(&mut *conn)
        .await?;
        let counts = counts_from_rows(&rows)?;
        let oldest: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT MIN(run_at) FROM jobs WHERE workspace_id = ? AND state IN {CLAIMABLE} AND run_at <= ?"
        ))
        .bind(&workspace)
        .bind(ms(now))
        .fetch_one(&mut *conn)
        .await?;
        let finished = sqlx::query(&format!(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE state IN {TERMINAL} AND finished_at >= ? \
             AND workspace_id = ? GROUP BY state"
        ))
        .bind(ms(since))
        .bind(&workspace)
        .fetch_all(&mut *conn)
        .await?;
        let mut finished_since = BTreeMap::new();
        for row in &finished {
            let state: JobState = parse_state(row.try_get("state")?)?;
            finished_since.insert(state, row.try_get::<i64, _>("n")? as u64);
        }
        Ok(QueueStats {
            counts,
            oldest_due_at: oldest.map(from_ms).transpose()?,
            finished_since,
        })
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, state, priority, COUNT(*) AS n FROM jobs GROUP BY queue, state, priority",
        )
        .fetch_all(&self.reader)
        .await?;
        counts_from_rows(&rows)
    }
}
