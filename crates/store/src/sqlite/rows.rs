//! Mapping between SQLite rows and model values: timestamps as milliseconds,
//! JSON as text, and the job event every transition writes.

use accord_model::{
    EventKind, Job, JobError, JobEvent, JobId, JobResult, JobState, RetryPolicy, Step, WorkspaceId,
};
use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::schema::{parse_engine, parse_priority, parse_queue, parse_state, parse_worker};
use crate::StoreError;

pub(super) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(super) fn from_ms(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::corrupt("timestamp", ms))
}

pub(super) fn opt_ms(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(from_ms).transpose()
}

pub(super) fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("model values always serialize")
}

fn from_json<T: DeserializeOwned>(what: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::corrupt(what, err))
}

pub(super) fn parse_id(text: &str) -> Result<JobId, StoreError> {
    text.parse()
        .map_err(|err| StoreError::corrupt("job id", err))
}

pub(super) fn parse_steps(text: &str) -> Result<Vec<Step>, StoreError> {
    from_json("job steps", text)
}

pub(super) fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
    let id: String = row.try_get("id")?;
    let workspace: String = row.try_get("workspace_id")?;
    let priority: i64 = row.try_get("priority")?;
    let max_attempts: i64 = row.try_get("max_attempts")?;
    let attempt: i64 = row.try_get("attempt")?;
    let offset: i64 = row.try_get("attempt_offset")?;
    let result: Option<String> = row.try_get("result")?;
    let last_error: Option<String> = row.try_get("last_error")?;
    Ok(Job {
        id: parse_id(&id)?,
        workspace_id: workspace
            .parse::<WorkspaceId>()
            .map_err(|err| StoreError::corrupt("workspace id", err))?,
        queue: parse_queue(row.try_get("queue")?)?,
        priority: parse_priority(priority as i16)?,
        state: parse_state(row.try_get("state")?)?,
        engine: parse_engine(row.try_get("engine")?)?,
        steps: parse_steps(row.try_get("steps")?)?,
        labels: from_json("job labels", row.try_get("labels")?)?,
        retry: from_json::<RetryPolicy>("retry policy", row.try_get("retry")?)?,
        run_at: from_ms(row.try_get("run_at")?)?,
        max_attempts: max_attempts as u32,
        timeout_seconds: row.try_get::<i64, _>("timeout_seconds")? as u32,
        attempt: attempt as u32,
        attempts_left: (max_attempts - (attempt - offset)).max(0) as u32,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
        started_at: opt_ms(row.try_get("started_at")?)?,
        finished_at: opt_ms(row.try_get("finished_at")?)?,
        worker_id: parse_worker(row.try_get("worker_id")?)?,
        lease_expires_at: opt_ms(row.try_get("lease_expires_at")?)?,
        result: result
            .map(|r| from_json::<JobResult>("job result", &r))
            .transpose()?,
        last_error: last_error
            .map(|e| from_json::<JobError>("job error", &e))
            .transpose()?,
    })
}

pub(super) fn event_from_row(row: &SqliteRow) -> Result<JobEvent, StoreError> {
    let kind: String = row.try_get("kind")?;
    let from_state: Option<String> = row.try_get("from_state")?;
    Ok(JobEvent {
        id: row.try_get("id")?,
        job_id: parse_id(row.try_get("job_id")?)?,
        at: from_ms(row.try_get("at")?)?,
        kind: EventKind::parse(&kind).ok_or_else(|| StoreError::corrupt("event kind", &kind))?,
        from_state: from_state.as_deref().map(parse_state).transpose()?,
        to_state: parse_state(row.try_get("to_state")?)?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        worker_id: parse_worker(row.try_get("worker_id")?)?,
        message: row.try_get("message")?,
    })
}

/// One row of `job_events` to write.
#[derive(Debug)]
pub(super) struct NewEvent<'a> {
    pub workspace_id: &'a str,
    pub job_id: &'a str,
    pub at: i64,
    pub kind: EventKind,
    pub from: Option<JobState>,
    pub to: JobState,
    pub attempt: i64,
    pub worker_id: Option<&'a str>,
    pub message: Option<&'a str>,
}

pub(super) async fn insert_event(
    conn: &mut SqliteConnection,
    event: NewEvent<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt, worker_id, message) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(event.workspace_id)
    .bind(event.job_id)
    .bind(event.at)
    .bind(event.kind.as_str())
    .bind(event.from.map(JobState::as_str))
    .bind(event.to.as_str())
    .bind(event.attempt)
    .bind(event.worker_id)
    .bind(event.message)
    .execute(conn)
    .await?;
    Ok(())
}

/// `?, ?, ?` for an IN list of `n` values.
pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
