//! `/api/v1/jobs`: submit, read, list, follow, cancel and retry jobs.

use accord_model::{Job, JobId, JobState, NewJob, QueueName};
use accord_store::JobFilter;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{AuditTarget, Workspace};
use crate::extract::{page_limit, JobIdPath, JsonBody, QueryParams};
use crate::{ApiError, ApiState};
use accord_model::{ErrorBody, EventPage, JobBatch, JobPage, NewJobBatch};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this queue.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub queue: Option<QueueName>,
    /// Only jobs with this label, as `key:value`.
    #[param(pattern = "^[^:]+:")]
    pub label: Option<String>,
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(format = Uuid)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events after this event id.
    pub after: Option<i64>,
    /// 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn idempotency_key(headers: &HeaderMap, max_len: usize) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty() && key.len() <= max_len && key.chars().all(|c| c.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::InvalidIdempotencyKey(format!(
                "Idempotency-Key must be 1 to {max_len} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// Submit a job.
///
/// With an `Idempotency-Key` header, a repeat of the same request returns the
/// original job (200) and a different request with the same key is refused (409).
#[utoipa::path(
    post, path = "/api/v1/jobs", tag = "jobs",
    request_body = NewJob,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request safe")),
    responses(
        (status = 201, description = "Job created", body = Job),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = Job),
        (status = 400, description = "Malformed JSON or header", body = ErrorBody),
        (status = 409, description = "Idempotency key reused with a different body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field, bad value or invalid job", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_job(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    headers: HeaderMap,
    JsonBody(job): JsonBody<NewJob>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Job>), ApiError> {
    let key = idempotency_key(&headers, state.config.max_idempotency_key_len)?;
    let enqueued = state.queue.enqueue(workspace, job, key).await?;
    let status = if enqueued.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let target = AuditTarget(enqueued.job.id.to_string());
    Ok((status, Extension(target), Json(enqueued.job)))
}

/// Submit many jobs at once (1 to 1000), all or none: one invalid job
/// rejects the batch, naming its index. Idempotency keys are not supported
/// here; submit jobs one by one to use them.
#[utoipa::path(
    post, path = "/api/v1/jobs/batch", tag = "jobs",
    request_body = NewJobBatch,
    responses(
        (status = 201, description = "Jobs created, in request order", body = JobBatch),
        (status = 400, description = "Malformed JSON, or an Idempotency-Key header", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field, bad value or an invalid job", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_jobs(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    headers: HeaderMap,
    JsonBody(batch): JsonBody<NewJobBatch>,
) -> Result<(StatusCode, Json<JobBatch>), ApiError> {
    if headers.contains_key("idempotency-key") {
        return Err(ApiError::InvalidIdempotencyKey(
            "Idempotency-Key is not supported on batch submissions".to_owned(),
        ));
    }
    if !(1..=MAX_BATCH_JOBS).contains(&batch.jobs.len()) {
        return Err(ApiError::Validation(format!(
            "jobs: a batch holds 1 to {MAX_BATCH_JOBS} jobs, not {}",
            batch.jobs.len()
        )));
    }
    let jobs = state.queue.enqueue_many(workspace, batch.jobs).await?;
    Ok((StatusCode::CREATED, Json(JobBatch { jobs })))
}

const MAX_BATCH_JOBS: usize = 1_000;

/// List jobs, newest first.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    params(ListParams),
    responses(
        (status = 200, body = JobPage),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_jobs(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<JobPage>, ApiError> {
    let limit = page_limit(params.limit, 50, 500)?;
    let label = params
        .label
        .map(|label| match label.split_once(':') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(ApiError::InvalidQuery(format!(
                "label must be key:value, not {label:?}"
            ))),
        })
        .transpose()?;
    let before = params
        .cursor
        .map(|cursor| {
            cursor
                .parse::<JobId>()
                .map_err(|_| ApiError::InvalidQuery(format!("invalid cursor {cursor:?}")))
        })
        .transpose()?;
    let filter = JobFilter {
        state: params.state,
        queue: params.queue,
        label,
        before,
        limit,
    };
    let items = state.queue.list(workspace, &filter).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|job| job.id.to_string()))
        .flatten();
    Ok(Json(JobPage { items, next_cursor }))
}

/// Get one job, with its result once it has one.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, format = Uuid, description = "Job id")),
    responses(
        (status = 200, body = Job),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn get_job(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.queue.get(workspace, id).await?))
}

/// The job's history: every state transition, oldest first.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, format = Uuid, description = "Job id"), EventParams),
    responses(
        (status = 200, body = EventPage),
        (status = 400, description = "Not a job id, or bad paging", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn job_events(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JobIdPath(id): JobIdPath,
    QueryParams(params): QueryParams<EventParams>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = page_limit(params.limit, 100, 1000)?;
    let items = state
        .queue
        .events(workspace, id, params.after, limit)
        .await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    Ok(Json(EventPage { items, next_cursor }))
}

/// Cancel a job: at once when queued; a running job is stopped by its worker
/// at the next heartbeat, and nothing it reports afterwards is accepted.
/// Cancelling a cancelled job is a no-op.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, format = Uuid, description = "Job id")),
    responses(
        (status = 200, body = Job),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Already succeeded or dead", body = ErrorBody),
    )
)]
pub async fn cancel_job(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.queue.cancel(workspace, id).await?))
}

/// Requeue a dead or cancelled job with a fresh set of attempts.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, format = Uuid, description = "Job id")),
    responses(
        (status = 200, body = Job),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Not dead or cancelled", body = ErrorBody),
    )
)]
pub async fn retry_job(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.queue.retry(workspace, id).await?))
}
