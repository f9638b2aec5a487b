//! The worker protocol, `/internal/v1/worker/*`: how workers lease, renew
//! and report jobs. Workers speak only this and never touch the database.

use accord_model::{
    ClaimRequest, ClaimResponse, CompleteRequest, FailRequest, HeartbeatRequest, HeartbeatResponse,
    ReleaseRequest, ReportResponse,
};
use axum::extract::State;
use axum::Json;

use crate::extract::JsonBody;
use crate::{ApiError, ApiState};
use accord_model::ErrorBody;

const MAX_BATCH: usize = 1_000;

fn check_batch(len: usize) -> Result<(), ApiError> {
    if len > MAX_BATCH {
        return Err(ApiError::Validation(format!(
            "at most {MAX_BATCH} items per call, not {len}"
        )));
    }
    Ok(())
}

/// Lease up to `limit` due jobs, most urgent first, waiting up to `wait_ms` for one.
#[utoipa::path(
    post, path = "/internal/v1/worker/claim", tag = "worker",
    request_body = ClaimRequest,
    responses((status = 200, body = ClaimResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub async fn claim(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<ClaimRequest>,
) -> Result<Json<ClaimResponse>, ApiError> {
    if !(1..=MAX_BATCH as u32).contains(&request.limit) {
        return Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_BATCH}"
        )));
    }
    // A shutting-down server answers waiting claims with nothing at once.
    let jobs = tokio::select! {
        jobs = state.queue.claim(&request) => jobs?,
        () = state.shutdown.cancelled() => Vec::new(),
    };
    Ok(Json(ClaimResponse { jobs }))
}

/// Extend every lease the worker holds; the answer lists jobs to abort.
#[utoipa::path(
    post, path = "/internal/v1/worker/heartbeat", tag = "worker",
    request_body = HeartbeatRequest,
    responses((status = 200, body = HeartbeatResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub async fn heartbeat(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    check_batch(request.leases.len())?;
    Ok(Json(
        state
            .queue
            .heartbeat(&request.worker_id, &request.leases)
            .await?,
    ))
}

/// Report successful attempts. `409 stale_lease` names the items refused.
#[utoipa::path(
    post, path = "/internal/v1/worker/complete", tag = "worker",
    request_body = CompleteRequest,
    responses(
        (status = 200, body = ReportResponse),
        (status = 409, description = "Some leases were stale; the rest were applied", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn complete(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<CompleteRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    check_batch(request.items.len())?;
    let accepted = state
        .queue
        .complete(&request.worker_id, &request.items)
        .await?;
    Ok(Json(ReportResponse { accepted }))
}

/// Report failed attempts; retryable ones are retried with backoff until
/// `max_attempts`, then dead-lettered.
#[utoipa::path(
    post, path = "/internal/v1/worker/fail", tag = "worker",
    request_body = FailRequest,
    responses(
        (status = 200, body = ReportResponse),
        (status = 409, description = "Some leases were stale; the rest were applied", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn fail(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<FailRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    check_batch(request.items.len())?;
    let accepted = state.queue.fail(&request.worker_id, request.items).await?;
    Ok(Json(ReportResponse { accepted }))
}

/// Give leases back unrun (worker shutting down); the attempt is not counted.
#[utoipa::path(
    post, path = "/internal/v1/worker/release", tag = "worker",
    request_body = ReleaseRequest,
    responses(
        (status = 200, body = ReportResponse),
        (status = 409, description = "Some leases were stale; the rest were applied", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn release(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<ReleaseRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    check_batch(request.leases.len())?;
    let accepted = state
        .queue
        .release(&request.worker_id, &request.leases)
        .await?;
    Ok(Json(ReportResponse { accepted }))
}
