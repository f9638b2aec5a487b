//! [`JobStore`] for PostgreSQL: inserting, reading and the operator's
//! transitions (cancel, requeue), each one statement that also writes its
//! job event and count deltas.

use std::collections::{BTreeMap, HashMap};

use accord_model::{Job, JobEvent, JobId, JobState, RetryPolicy, Step, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use super::rows::{counted, event_from_row, job_from_row};
use super::PostgresStore;
use crate::schema::{JOB_COLUMNS, REQUEUEABLE, TERMINAL};
use crate::{
    CancelOutcome, InsertJob, InsertOutcome, JobFilter, JobStore, RetryOutcome, StoreError,
};

#[async_trait]
impl JobStore for PostgresStore {
    async fn job_insert(
        &self,
        insert: InsertJob,
        now: DateTime<Utc>,
    ) -> Result<InsertOutcome, StoreError> {
        crate::schema::check_storable(&insert)?;
        let workspace = insert.workspace_id.as_uuid();
        let (key, hash) = match &insert.idempotency {
            Some((key, hash)) => (Some(key.as_str()), Some(hash.as_str())),
            None => (None, None),
        };
        let row = insert_row(&self.pool, &insert, now).await?;
        if let Some(row) = row {
            self.announce();
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
    async fn job_insert_many(
        &self,
        inserts: &[InsertJob],
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        for insert in inserts {
            crate::schema::check_storable(insert)?;
        }
        if inserts.iter().any(|insert| insert.idempotency.is_some()) {
            return Err(StoreError::corrupt(
                "batch insert",
                "a batch job cannot carry an idempotency key",
            ));
        }
        let jobs = insert_many(&self.pool, inserts.iter(), now).await?;
        self.announce();
        Ok(jobs)
    }

    async fn job_get(&self, workspace: WorkspaceId, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
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

    async fn job_events(
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

    async fn job_cancel(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        // One statement, fenced on the state and attempt it finds. The row
        // lock makes a racing worker report wait for the cancel (or the
        // cancel for it, then see the state the report left).
        let row = sqlx::query(&format!(
            "WITH current AS ( \
               SELECT id AS current_id, state AS was, attempt AS current_attempt FROM jobs \
               WHERE workspace_id = $2 AND id = $3 AND state NOT IN {TERMINAL} FOR UPDATE \
             ), updated AS ( \
               UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1, lease_expires_at = NULL \
               FROM current WHERE id = current_id AND state = was AND attempt = current_attempt \
               RETURNING {JOB_COLUMNS}, was \
             ), events AS ( \
               INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt) \
               SELECT workspace_id, id, $1, 'cancelled', was, state, attempt FROM updated \
             ), runs AS ( \
               UPDATE monitor_runs r SET state = 'error', error = $4, finished_at = $1 \
               FROM updated WHERE r.job_id = updated.id AND r.state = 'running' \
             ), {counted} \
             SELECT * FROM updated",
            counted = counted("updated", "c.was", "c.state"),
        ))
        .bind(now)
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .bind(crate::schema::RUN_CANCELLED)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(match self.current(workspace, id).await? {
                Some(job) => CancelOutcome::Finished(job),
                None => CancelOutcome::NotFound,
            });
        };
        Ok(CancelOutcome::Cancelled {
            job: job_from_row(&row)?,
            was: super::rows::state(&row, "was")?,
        })
    }

    async fn job_retry(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError> {
        let row = sqlx::query(&format!(
            "WITH current AS ( \
               SELECT id AS current_id, state AS was FROM jobs \
               WHERE workspace_id = $2 AND id = $3 AND state IN {REQUEUEABLE} FOR UPDATE \
             ), updated AS ( \
               UPDATE jobs SET state = 'available', attempt_offset = attempt, run_at = $1, updated_at = $1, \
                 finished_at = NULL, result = NULL \
               FROM current WHERE id = current_id AND state = was \
               RETURNING {JOB_COLUMNS}, was \
             ), events AS ( \
               INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt) \
               SELECT workspace_id, id, $1, 'requeued', was, state, attempt FROM updated \
             ), {counted} \
             SELECT * FROM updated",
            counted = counted("updated", "c.was", "c.state"),
        ))
        .bind(now)
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(match self.current(workspace, id).await? {
                Some(job) => RetryOutcome::NotRetryable(job),
                None => RetryOutcome::NotFound,
            });
        };
        self.announce();
        Ok(RetryOutcome::Requeued(job_from_row(&row)?))
    }
}

impl PostgresStore {
    /// The job as it is, for the answer to a transition that did not apply.
    async fn current(&self, workspace: WorkspaceId, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }
}

/// Writes one job and its `created` event in one statement; `None` when its
/// idempotency key is taken (nothing written).
pub(super) async fn insert_row<'c, E>(
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
                 max_attempts, timeout_seconds, run_at, created_at, updated_at, idempotency_key, request_hash, \
                 run_on, engine_reason) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17) \
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
        .bind(insert.run_on.as_str())
        .bind(insert.engine_reason.as_deref())
        .fetch_optional(executor)
        .await?;
    Ok(row)
}

/// Inserts the jobs (without idempotency keys) and their `created` events
/// with one statement, through `executor` (a transaction, for a batch that
/// writes more): the jobs in the order of `inserts`.
pub(super) async fn insert_many<'a, 'c, E>(
    executor: E,
    inserts: impl Iterator<Item = &'a InsertJob>,
    now: DateTime<Utc>,
) -> Result<Vec<Job>, StoreError>
where
    E: sqlx::PgExecutor<'c>,
{
    let inserts: Vec<&InsertJob> = inserts.collect();
    let mut columns = BatchColumns::with_capacity(inserts.len());
    for insert in &inserts {
        columns.push(insert, now);
    }
    // Events go in in request order, as they would one job at a time.
    let rows = sqlx::query(&format!(
        "WITH input AS ( \
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int2[], $5::text[], \
             $6::text[], $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::int8[], $11::int8[], \
             $12::timestamptz[], $14::text[], $15::text[]) WITH ORDINALITY \
             AS i(id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
               max_attempts, timeout_seconds, run_at, run_on, engine_reason, ord) \
         ), inserted AS ( \
           INSERT INTO jobs (id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
             max_attempts, timeout_seconds, run_at, created_at, updated_at, run_on, engine_reason) \
           SELECT id, workspace_id, queue, priority, state, engine, steps, labels, retry, \
             max_attempts, timeout_seconds, run_at, $13, $13, run_on, engine_reason \
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
    .bind(columns.run_ons)
    .bind(columns.engine_reasons)
    .fetch_all(executor)
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
    run_ons: Vec<&'static str>,
    engine_reasons: Vec<Option<&'a str>>,
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
            run_ons: Vec::with_capacity(n),
            engine_reasons: Vec::with_capacity(n),
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
        self.run_ons.push(insert.run_on.as_str());
        self.engine_reasons.push(insert.engine_reason.as_deref());
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
