//! [`JobStore`] for SQLite: inserting, reading and the operator's
//! transitions (cancel, requeue).

use accord_model::{EventKind, Job, JobEvent, JobId, JobState, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::rows::{event_from_row, insert_event, job_from_row, ms, to_json, NewEvent};
use super::SqliteStore;
use crate::schema::{parse_state, JOB_COLUMNS, REQUEUEABLE, TERMINAL};
use crate::{
    CancelOutcome, InsertJob, InsertOutcome, JobFilter, JobStore, RetryOutcome, StoreError,
};

#[async_trait]
impl JobStore for SqliteStore {
    async fn job_insert(
        &self,
        insert: InsertJob,
        now: DateTime<Utc>,
    ) -> Result<InsertOutcome, StoreError> {
        crate::schema::check_storable(&insert)?;
        let mut tx = self.writer.begin().await?;
        if let Some(created) = insert_row(&mut tx, &insert, now).await? {
            tx.commit().await?;
            return Ok(InsertOutcome::Created(created));
        }
        // The key exists: answer with the original job if the request matches.
        let (key, hash) = insert
            .idempotency
            .as_ref()
            .map(|(key, hash)| (key.as_str(), hash.as_str()))
            .expect("only a keyed insert can conflict");
        let existing = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE workspace_id = ? AND idempotency_key = ?"
        ))
        .bind(insert.workspace_id.to_string())
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let stored_hash: Option<String> = existing.try_get("request_hash")?;
        Ok(if stored_hash.as_deref() == Some(hash) {
            InsertOutcome::Existing(job_from_row(&existing)?)
        } else {
            InsertOutcome::KeyReused
        })
    }

    async fn job_insert_many(
        &self,
        inserts: &[InsertJob],
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        for insert in inserts {
            crate::schema::check_storable(insert)?;
        }
        let mut tx = self.writer.begin().await?;
        let mut created = Vec::with_capacity(inserts.len());
        for insert in inserts {
            let job = insert_row(&mut tx, insert, now).await?.ok_or_else(|| {
                StoreError::corrupt(
                    "batch insert",
                    "a batch job cannot carry an idempotency key",
                )
            })?;
            created.push(job);
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn job_get(&self, workspace: WorkspaceId, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = ? AND id = ?"
        ))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_list(
        &self,
        workspace: WorkspaceId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, StoreError> {
        if crate::schema::label_filter_is_unmatchable(filter) {
            return Ok(Vec::new());
        }
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = ?");
        if filter.state.is_some() {
            sql.push_str(" AND state = ?");
        }
        if filter.queue.is_some() {
            sql.push_str(" AND queue = ?");
        }
        if filter.label.is_some() {
            sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(jobs.labels) WHERE json_each.key = ? AND json_each.value = ?)");
        }
        if filter.before.is_some() {
            sql.push_str(" AND id < ?");
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let mut query = sqlx::query(&sql).bind(workspace.to_string());
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        if let Some(queue) = &filter.queue {
            query = query.bind(queue.as_str());
        }
        if let Some((key, value)) = &filter.label {
            query = query.bind(key).bind(value);
        }
        if let Some(before) = filter.before {
            query = query.bind(before.to_string());
        }
        let rows = query.bind(filter.limit).fetch_all(&self.reader).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn job_events(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Option<Vec<JobEvent>>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let exists = sqlx::query("SELECT 1 FROM jobs WHERE workspace_id = ? AND id = ?")
            .bind(workspace.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id, job_id, at, kind, from_state, to_state, attempt, worker_id, message FROM job_events \
             WHERE workspace_id = ? AND job_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(workspace.to_string())
        .bind(id.to_string())
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(event_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    async fn job_cancel(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        let (workspace, id, now) = (workspace.to_string(), id.to_string(), ms(now));
        let mut tx = self.writer.begin().await?;
        // One statement, fenced on the state and attempt it finds; the
        // materialized look tells the state before (RETURNING shows after).
        let row = sqlx::query(&format!(
            "WITH current AS MATERIALIZED ( \
               SELECT id, state, attempt FROM jobs \
               WHERE workspace_id = ? AND id = ? AND state NOT IN {TERMINAL} \
             ) \
             UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ?, lease_expires_at = NULL \
             WHERE id = (SELECT id FROM current) AND state = (SELECT state FROM current) \
               AND attempt = (SELECT attempt FROM current) \
             RETURNING {JOB_COLUMNS}, (SELECT state FROM current) AS was"
        ))
        .bind(&workspace)
        .bind(&id)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(match current(&mut tx, &workspace, &id).await? {
                Some(job) => CancelOutcome::Finished(job),
                None => CancelOutcome::NotFound,
            });
        };
        let job = job_from_row(&row)?;
        let was = parse_state(row.try_get("was")?)?;
        insert_event(
            &mut tx,
            NewEvent {
                workspace_id: &workspace,
                job_id: &id,
                at: now,
                kind: EventKind::Cancelled,
                from: Some(was),
                to: JobState::Cancelled,
                attempt: i64::from(job.attempt),
                worker_id: None,
                message: None,
            },
        )
        .await?;
        super::lease::finish_run_in_error(&mut tx, &id, crate::schema::RUN_CANCELLED, now).await?;
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled { job, was })
    }

    async fn job_retry(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        let (workspace, id, now) = (workspace.to_string(), id.to_string(), ms(now));
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "WITH current AS MATERIALIZED ( \
               SELECT id, state FROM jobs WHERE workspace_id = ? AND id = ? AND state IN {REQUEUEABLE} \
             ) \
             UPDATE jobs SET state = 'available', attempt_offset = attempt, run_at = ?, updated_at = ?, \
               finished_at = NULL, result = NULL \
             WHERE id = (SELECT id FROM current) AND state = (SELECT state FROM current) \
             RETURNING {JOB_COLUMNS}, (SELECT state FROM current) AS was"
        ))
        .bind(&workspace)
        .bind(&id)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(match current(&mut tx, &workspace, &id).await? {
                Some(job) => RetryOutcome::NotRetryable(job),
                None => RetryOutcome::NotFound,
            });
        };
        let job = job_from_row(&row)?;
        insert_event(
            &mut tx,
            NewEvent {
                workspace_id: &workspace,
                job_id: &id,
                at: now,
                kind: EventKind::Requeued,
                from: Some(parse_state(row.try_get("was")?)?),
                to: JobState::Available,
                attempt: i64::from(job.attempt),
                worker_id: None,
                message: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(RetryOutcome::Requeued(job))
    }
}

/// The job as it is, for the answer to a transition that did not apply.
async fn current(
    conn: &mut SqliteConnection,
    workspace: &str,
    id: &str,
) -> Result<Option<Job>, StoreError> {
    let row: Option<SqliteRow> = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = ? AND id = ?"
    ))
    .bind(workspace)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(job_from_row).transpose()
}

/// Writes one job and its `created` event; `None` when its idempotency key
/// is taken (nothing written).
pub(super) async fn insert_row(
    conn: &mut SqliteConnection,
    insert: &InsertJob,
    now: DateTime<Utc>,
) -> Result<Option<Job>, StoreError> {
    let job = &insert.job;
    let now_ms = ms(now);
    let run_at = job.run_at.map_or(now_ms, ms);
    let state = if run_at > now_ms {
        JobState::Scheduled
    } else {
        JobState::Available
    };
    let id = insert.id.to_string();
    let workspace = insert.workspace_id.to_string();
    let (key, hash) = match &insert.idempotency {
        Some((key, hash)) => (Some(key.as_str()), Some(hash.as_str())),
        None => (None, None),
    };
    let row = sqlx::query(&format!(
        "INSERT INTO jobs (id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
         max_attempts, timeout_seconds, run_at, created_at, updated_at, idempotency_key, request_hash, \
         run_on, engine_reason) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING {JOB_COLUMNS}"
    ))
    .bind(&id)
    .bind(&workspace)
    .bind(job.queue.as_str())
    .bind(job.priority.rank())
    .bind(state.as_str())
    .bind(job.engine.as_str())
    .bind(to_json(&job.steps))
    .bind(to_json(&job.labels))
    .bind(to_json(&job.retry))
    .bind(job.max_attempts)
    .bind(job.timeout_seconds)
    .bind(run_at)
    .bind(now_ms)
    .bind(now_ms)
    .bind(key)
    .bind(hash)
    .bind(insert.run_on.as_str())
    .bind(insert.engine_reason.as_deref())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    insert_event(
        conn,
        NewEvent {
            workspace_id: &workspace,
            job_id: &id,
            at: now_ms,
            kind: EventKind::Created,
            from: None,
            to: state,
            attempt: 0,
            worker_id: None,
            message: None,
        },
    )
    .await?;
    job_from_row(&row).map(Some)
}
