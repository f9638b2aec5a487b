//! Inserting, reading and the operator's transitions (cancel, retry).

use std::collections::{BTreeMap, HashMap};

use accord_model::{EventKind, Job, JobEvent, JobId, JobState, RetryPolicy, Step, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::rows::{
    counted, event_from_row, insert_event, job_from_row, state, NewEvent, JOB_COLUMNS,
};
use super::PostgresStore;
use crate::{CancelOutcome, InsertJob, InsertOutcome, JobFilter, RetryOutcome, StoreError};

impl PostgresStore {
    pub(super) async fn insert(
        &self,
        insert: InsertJob,
        now: DateTime<Utc>,
    ) -> Result<InsertOutcome, StoreError> {
        let workspace = insert.workspace_id.as_uuid();
        let (key, hash) = match &insert.idempotency {
            Some((key, hash)) => (Some(key.as_str()), Some(hash.as_str())),
            None => (None, None),
        };
        let row = insert_row(&self.pool, &insert, now).await?;
        if let Some(row) = row {
            return Ok(InsertOutcome::Created(job_from_row(&row)?));
        }

        // The key exists (a concurrent insert with it has committed, or we
        // would still be waiting on it): answer with the original job if
        // the request matches.
        let existing = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE workspace_id = $1 AND idempotency_key = $2"
        ))
        .bind(workspace)
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        let stored_hash: Option<String> = existing.try_get("request_hash")?;
        Ok(if stored_hash.as_deref() == hash {
            InsertOutcome::Existing(job_from_row(&existing)?)
        } else {
            InsertOutcome::KeyReused
        })
    }

    /// Inserts every job and its `created` event with one statement: all
    /// or none, and one round trip however long the batch is.
    pub(super) async fn insert_many(
        &self,
        inserts: &[InsertJob],
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        if inserts.iter().any(|insert| insert.idempotency.is_some()) {
            return Err(StoreError::corrupt(
                "batch insert",
                "a batch job cannot carry an idempotency key",
            ));
        }
        let mut columns = BatchColumns::with_capacity(inserts.len());
        for insert in inserts {
            columns.push(insert, now);
        }
        // Events go in in request order, as they would one job at a time.
        let rows = sqlx::query(&format!(
            "WITH input AS ( \
               SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int2[], $5::text[], \
                 $6::text[], $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::int8[], $11::int8[], \
                 $12::timestamptz[]) WITH ORDINALITY \
                 AS i(id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
                   max_attempts, timeout_seconds, run_at, ord) \
             ), inserted AS ( \
               INSERT INTO jobs (id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
                 max_attempts, timeout_seconds, run_at, created_at, updated_at) \
               SELECT id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
                 max_attempts, timeout_seconds, run_at, $13, $13 \
               FROM input ORDER BY ord \
               RETURNING {JOB_COLUMNS} \
             ), created AS ( \
               INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt) \
               SELECT inserted.workspace_id, inserted.id, inserted.created_at, 'created', NULL, \
                 inserted.state, inserted.attempt \
               FROM inserted JOIN input USING (id) ORDER BY input.ord \
             ), {counted} \
             SELECT {JOB_COLUMNS} FROM inserted",
            counted = counted("inserted", "NULL", "c.state"),
        ))
        .bind(columns.ids)
        .bind(columns.workspaces)
        .bind(columns.queues)
        .bind(columns.priorities)
        .bind(columns.states)
        .bind(columns.engines)
        .bind(columns.steps)
        .bind(columns.labels)
        .bind(columns.retries)
        .bind(columns.max_attempts)
        .bind(columns.timeouts)
        .bind(columns.run_ats)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut created: HashMap<JobId, Job> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let job = job_from_row(row)?;
            created.insert(job.id, job);
        }
        inserts
            .iter()
            .map(|insert| {
                created.remove(&insert.id).ok_or_else(|| {
                    StoreError::corrupt("batch insert", "a job of the batch was not returned")
                })
            })
            .collect()
    }

    pub(super) async fn get(
        &self,
        workspace: WorkspaceId,
        id: JobId,
    ) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub(super) async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, StoreError> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = $1");
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        if filter.state.is_some() {
            sql.push_str(&format!(" AND state = ${}", next()));
        }
        if filter.queue.is_some() {
            sql.push_str(&format!(" AND queue = ${}", next()));
        }
        if filter.label.is_some() {
            sql.push_str(&format!(" AND labels @> ${}", next()));
        }
        if filter.before.is_some() {
            sql.push_str(&format!(" AND id < ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", next()));
        let mut query = sqlx::query(&sql).bind(workspace.as_uuid());
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        if let Some(queue) = &filter.queue {
            query = query.bind(queue.as_str());
        }
        if let Some((key, value)) = &filter.label {
            query = query.bind(Json(BTreeMap::from([(key, value)])));
        }
        if let Some(before) = filter.before {
            query = query.bind(before.as_uuid());
        }
        let rows = query
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    pub(super) async fn events(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Option<Vec<JobEvent>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let exists = sqlx::query("SELECT 1 FROM jobs WHERE workspace_id = $1 AND id = $2")
            .bind(workspace.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id, job_id, at, kind, from_state, to_state, attempt, worker_id, message FROM job_events \
             WHERE workspace_id = $1 AND job_id = $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(event_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    pub(super) async fn cancel(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        let (workspace, id) = (workspace.as_uuid(), id.as_uuid());
        let mut tx = self.pool.begin().await?;
        // The row lock makes a racing worker report wait for the cancel (or
        // the cancel for it), so the decision below is made on the latest state.
        let Some(current) = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = $1 AND id = $2 FOR UPDATE"
        ))
        .bind(workspace)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(CancelOutcome::NotFound);
        };
        let was = job_from_row(&current)?;
        if was.state.is_terminal() {
            return Ok(CancelOutcome::Finished(was));
        }
        let row = sqlx::query(&format!(
            "WITH updated AS ( \
               UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1, lease_expires_at = NULL \
               WHERE workspace_id = $2 AND id = $3 AND state = $4 AND attempt = $5 RETURNING {JOB_COLUMNS} \
             ), {counted} \
             SELECT {JOB_COLUMNS} FROM updated",
            counted = counted("updated", "$4::text", "c.state"),
        ))
        .bind(now)
        .bind(workspace)
        .bind(id)
        .bind(was.state.as_str())
        .bind(i64::from(was.attempt))
        .fetch_one(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            NewEvent {
                workspace_id: workspace,
                job_id: id,
                at: now,
                kind: EventKind::Cancelled,
                from: Some(was.state),
                to: JobState::Cancelled,
                attempt: was.attempt,
                worker_id: None,
                message: None,
            },
        )
        .await?;
        let job = job_from_row(&row)?;
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled {
            job,
            was: was.state,
        })
    }

    pub(super) async fn retry(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        let (workspace, id) = (workspace.as_uuid(), id.as_uuid());
        let mut tx = self.pool.begin().await?;
        let Some(current) =
            sqlx::query("SELECT state FROM jobs WHERE workspace_id = $1 AND id = $2 FOR UPDATE")
                .bind(workspace)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(RetryOutcome::NotFound);
        };
        let was = state(&current, "state")?;
        let row = sqlx::query(&format!(
            "WITH updated AS ( \
               UPDATE jobs SET state = 'available', attempt_offset = attempt, run_at = $1, updated_at = $1, \
                 finished_at = NULL, result = NULL \
               WHERE workspace_id = $2 AND id = $3 AND state = $4 AND state IN ('dead', 'cancelled') \
               RETURNING {JOB_COLUMNS} \
             ), {counted} \
             SELECT {JOB_COLUMNS} FROM updated",
            counted = counted("updated", "$4::text", "c.state"),
        ))
        .bind(now)
        .bind(workspace)
        .bind(id)
        .bind(was.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let job = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = $1 AND id = $2"
            ))
            .bind(workspace)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            return Ok(RetryOutcome::NotRetryable(job_from_row(&job)?));
        };
        let job = job_from_row(&row)?;
        insert_event(
            &mut tx,
            NewEvent {
                workspace_id: workspace,
                job_id: id,
                at: now,
                kind: EventKind::Requeued,
                from: Some(was),
                to: JobState::Available,
                attempt: job.attempt,
                worker_id: None,
                message: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(RetryOutcome::Requeued(job))
    }
}

/// Writes one job and its `created` event in one statement; `None` when its
/// idempotency key is taken (nothing written).
async fn insert_row<'c, E>(
    executor: E,
    insert: &InsertJob,
    now: DateTime<Utc>,
) -> Result<Option<PgRow>, StoreError>
where
    E: sqlx::PgExecutor<'c>,
{
    let job = &insert.job;
    let run_at = job.run_at.unwrap_or(now);
    let state = initial_state(run_at, now);
    let workspace = insert.workspace_id.as_uuid();
    let (key, hash) = match &insert.idempotency {
        Some((key, hash)) => (Some(key.as_str()), Some(hash.as_str())),
        None => (None, None),
    };

    // The job and its `created` event are one statement, so one commit.
    let row = sqlx::query(&format!(
            "WITH inserted AS ( \
               INSERT INTO jobs (id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
                 max_attempts, timeout_seconds, run_at, created_at, updated_at, idempotency_key, request_hash) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15) \
               ON CONFLICT (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
               RETURNING {JOB_COLUMNS} \
             ), created AS ( \
               INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt) \
               SELECT workspace_id, id, created_at, 'created', NULL, state, attempt FROM inserted \
             ), {counted} \
             SELECT {JOB_COLUMNS} FROM inserted",
            counted = counted("inserted", "NULL", "c.state"),
        ))
        .bind(insert.id.as_uuid())
        .bind(workspace)
        .bind(job.queue.as_str())
        .bind(job.priority.rank())
        .bind(state.as_str())
        .bind(job.engine.as_str())
        .bind(Json(&job.steps))
        .bind(Json(&job.labels))
        .bind(Json(&job.retry))
        .bind(i64::from(job.max_attempts))
        .bind(i64::from(job.timeout_seconds))
        .bind(run_at)
        .bind(now)
        .bind(key)
        .bind(hash)
        .fetch_optional(executor)
        .await?;
    Ok(row)
}

/// A batch of jobs as one array per column, for `UNNEST`.
struct BatchColumns<'a> {
    ids: Vec<Uuid>,
    workspaces: Vec<Uuid>,
    queues: Vec<&'a str>,
    priorities: Vec<i16>,
    states: Vec<&'static str>,
    engines: Vec<&'static str>,
    steps: Vec<Json<&'a Vec<Step>>>,
    labels: Vec<Json<&'a BTreeMap<String, String>>>,
    retries: Vec<Json<&'a RetryPolicy>>,
    // As `int8`, like the single insert's parameters: a value too big for
    // the `integer` column is refused by the insert instead of wrapping.
    max_attempts: Vec<i64>,
    timeouts: Vec<i64>,
    run_ats: Vec<DateTime<Utc>>,
}

impl<'a> BatchColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            ids: Vec::with_capacity(n),
            workspaces: Vec::with_capacity(n),
            queues: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
            states: Vec::with_capacity(n),
            engines: Vec::with_capacity(n),
            steps: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
            retries: Vec::with_capacity(n),
            max_attempts: Vec::with_capacity(n),
            timeouts: Vec::with_capacity(n),
            run_ats: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, insert: &'a InsertJob, now: DateTime<Utc>) {
        let job = &insert.job;
        let run_at = job.run_at.unwrap_or(now);
        self.ids.push(insert.id.as_uuid());
        self.workspaces.push(insert.workspace_id.as_uuid());
        self.queues.push(job.queue.as_str());
        self.priorities.push(job.priority.rank());
        self.states.push(initial_state(run_at, now).as_str());
        self.engines.push(job.engine.as_str());
        self.steps.push(Json(&job.steps));
        self.labels.push(Json(&job.labels));
        self.retries.push(Json(&job.retry));
        self.max_attempts.push(i64::from(job.max_attempts));
        self.timeouts.push(i64::from(job.timeout_seconds));
        self.run_ats.push(run_at);
    }
}

/// A new job waits in `scheduled` until its `run_at`, else is `available` at once.
fn initial_state(run_at: DateTime<Utc>, now: DateTime<Utc>) -> JobState {
    if run_at > now {
        JobState::Scheduled
    } else {
        JobState::Available
    }
}
