//! Mapping between PostgreSQL rows and model values, and the SQL fragments
//! the PostgreSQL statements share (arrays read back by primary key, count
//! deltas).

use accord_model::{
    EventKind, Job, JobError, JobEvent, JobId, JobResult, JobState, RetryPolicy, Step, WorkspaceId,
};
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::types::Json;
use sqlx::{Decode, Row, Type};
use uuid::Uuid;

use crate::schema::{parse_engine, parse_priority, parse_queue, parse_state, parse_worker};
use crate::StoreError;

/// A `FROM` item that reads back `columns` of the rows picked by the CTE
/// `cte`, as one array per column in `id` order, unnested under `alias`.
///
/// The planner takes an array it cannot see for a handful of rows, so it
/// joins them to `jobs` by primary key. Joined to the CTE itself, it would
/// believe the statistics about how many rows the pick finds, which are
/// stale in a queue whose backlog swings by orders of magnitude between
/// two ANALYZE runs, and might hash-join with a scan of every job instead.
pub(super) fn rows_of(cte: &str, columns: &[&str], alias: &str) -> String {
    let arrays: Vec<String> = columns
        .iter()
        .map(|column| format!("ARRAY(SELECT {column} FROM {cte} ORDER BY id)"))
        .collect();
    format!(
        "unnest({}) AS {alias}({})",
        arrays.join(", "),
        columns.join(", ")
    )
}

/// A data-modifying CTE named `counted` that appends to `job_count_deltas`
/// the net change in job counts made by the rows of the CTE `source`, each
/// of which moved from the state `from` to the state `to` (SQL expressions
/// over `c`, a row of `source`; `NULL` for a job that starts or stops
/// existing). `source` must return `workspace_id`, `queue` and `priority`.
///
/// Every statement that writes `jobs` includes one, so that counts stay
/// exact without ever grouping the table (see migration 0003).
pub(super) fn counted(source: &str, from: &str, to: &str) -> String {
    format!(
        "counted AS ( \
           INSERT INTO job_count_deltas (workspace_id, queue, state, priority, n) \
           SELECT c.workspace_id, c.queue, m.state, c.priority, SUM(m.n) \
           FROM {source} AS c CROSS JOIN LATERAL (VALUES ({from}, -1), ({to}, 1)) AS m(state, n) \
           WHERE m.state IS NOT NULL \
           GROUP BY c.workspace_id, c.queue, m.state, c.priority HAVING SUM(m.n) <> 0 \
         )"
    )
}

/// Reads a column, reporting a value that does not fit the model as
/// corrupt rather than as a database failure.
pub(super) fn column<'r, T>(row: &'r PgRow, name: &str, what: &'static str) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(name).map_err(|err| match err {
        sqlx::Error::ColumnDecode { source, .. } => StoreError::corrupt(what, source),
        other => other.into(),
    })
}

pub(super) fn json<T: DeserializeOwned>(
    row: &PgRow,
    name: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    column::<Json<T>>(row, name, what).map(|Json(value)| value)
}

pub(super) fn opt_json<T: DeserializeOwned>(
    row: &PgRow,
    name: &str,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    column::<Option<Json<T>>>(row, name, what).map(|value| value.map(|Json(value)| value))
}

/// A non-negative `integer` column as the model's `u32`.
pub(super) fn count(row: &PgRow, name: &str, what: &'static str) -> Result<u32, StoreError> {
    let value: i32 = column(row, name, what)?;
    u32::try_from(value).map_err(|_| StoreError::corrupt(what, value))
}

pub(super) fn job_id(row: &PgRow, name: &str) -> Result<JobId, StoreError> {
    column::<Uuid>(row, name, "job id").map(JobId::from_uuid)
}

pub(super) fn state(row: &PgRow, name: &str) -> Result<JobState, StoreError> {
    parse_state(&column::<String>(row, name, "job state")?)
}

pub(super) fn steps(row: &PgRow) -> Result<Vec<Step>, StoreError> {
    json(row, "steps", "job steps")
}

pub(super) fn job_from_row(row: &PgRow) -> Result<Job, StoreError> {
    let max_attempts = count(row, "max_attempts", "max attempts")?;
    let attempt = count(row, "attempt", "attempt")?;
    let offset = count(row, "attempt_offset", "attempt offset")?;
    Ok(Job {
        id: job_id(row, "id")?,
        workspace_id: WorkspaceId::from_uuid(column(row, "workspace_id", "workspace id")?),
        queue: parse_queue(column(row, "queue", "queue name")?)?,
        priority: parse_priority(column(row, "priority", "priority")?)?,
        state: state(row, "state")?,
        engine: parse_engine(&column::<String>(row, "engine", "engine")?)?,
        steps: steps(row)?,
        labels: json(row, "labels", "job labels")?,
        retry: json::<RetryPolicy>(row, "retry", "retry policy")?,
        run_at: column(row, "run_at", "timestamp")?,
        max_attempts,
        timeout_seconds: count(row, "timeout_seconds", "timeout")?,
        attempt,
        attempts_left: max_attempts.saturating_sub(attempt.saturating_sub(offset)),
        created_at: column(row, "created_at", "timestamp")?,
        updated_at: column(row, "updated_at", "timestamp")?,
        started_at: column(row, "started_at", "timestamp")?,
        finished_at: column(row, "finished_at", "timestamp")?,
        worker_id: parse_worker(column(row, "worker_id", "worker id")?)?,
        lease_expires_at: column(row, "lease_expires_at", "timestamp")?,
        result: opt_json::<JobResult>(row, "result", "job result")?,
        last_error: opt_json::<JobError>(row, "last_error", "job error")?,
    })
}

pub(super) fn event_from_row(row: &PgRow) -> Result<JobEvent, StoreError> {
    let kind: String = column(row, "kind", "event kind")?;
    let from_state: Option<String> = column(row, "from_state", "job state")?;
    Ok(JobEvent {
        id: column(row, "id", "event id")?,
        job_id: job_id(row, "job_id")?,
        at: column(row, "at", "timestamp")?,
        kind: EventKind::parse(&kind).ok_or_else(|| StoreError::corrupt("event kind", &kind))?,
        from_state: from_state.as_deref().map(parse_state).transpose()?,
        to_state: state(row, "to_state")?,
        attempt: count(row, "attempt", "attempt")?,
        worker_id: parse_worker(column(row, "worker_id", "worker id")?)?,
        message: column(row, "message", "event message")?,
    })
}
