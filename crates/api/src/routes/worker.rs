//! The worker protocol, `/internal/v1/worker/*`: how workers lease, renew
//! and report jobs. Workers speak only this and never touch the database.

use accord_model::{
    ClaimRequest, ClaimResponse, CompleteRequest, EscalateRequest, FailRequest, HeartbeatRequest,
    HeartbeatResponse, ReleaseRequest, ReportResponse, WorkerId,
};
use axum::extract::State;
use axum::Json;

use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::{ApiError, ApiState};
use accord_model::ErrorBody;

const MAX_BATCH: usize = 1_000;

/// The worker id as stored: prefixed with the caller's key id, so a lease
/// can only be renewed or reported with the key that took it (and so only
/// within the key's workspaces). A report about anyone else's job, or a
/// job of another workspace, is answered exactly like one about a job that
/// does not exist: rejected as a `stale_lease`.
pub(super) fn bound(caller: &Caller, worker_id: &WorkerId) -> Result<WorkerId, ApiError> {
    WorkerId::new(format!("{}.{}", caller.key_id, worker_id)).map_err(|_| {
        ApiError::Validation(format!(
            "worker_id must be at most {} characters",
            128 - accord_model::ApiKeyId::LEN - 1
        ))
    })
}

pub(super) fn check_batch(len: usize) -> Result<(), ApiError> {
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
    responses(
        (status = 200, body = ClaimResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn claim(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(mut request): JsonBody<ClaimRequest>,
) -> Result<Json<ClaimResponse>, ApiError> {
    request.worker_id = bound(&caller, &request.worker_id)?;
    if !(1..=MAX_BATCH as u32).contains(&request.limit) {
        return Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_BATCH}"
        )));
    }
    if request.engines.is_empty() {
        return Err(ApiError::Validation(
            "engines must name at least one engine the worker has room for".to_owned(),
        ));
    }
    // The document says at most two items (there are two engines); a
    // repeated name is harmless and read once.
    if request.engines.len() > 2 {
        return Err(ApiError::Validation(
            "engines lists at most the two engines, http and browser".to_owned(),
        ));
    }
    request.engines.sort();
    request.engines.dedup();
    // A shutting-down server answers waiting claims with nothing at once.
    let jobs = tokio::select! {
        jobs = state.queue.claim(caller.worker_scope(), &request) => jobs?,
        () = state.shutdown.cancelled() => Vec::new(),
    };
    Ok(Json(ClaimResponse { jobs }))
}

/// Extend every lease the worker holds; the answer lists jobs to abort.
#[utoipa::path(
    post, path = "/internal/v1/worker/heartbeat", tag = "worker",
    request_body = HeartbeatRequest,
    responses(
        (status = 200, body = HeartbeatResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn heartbeat(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(mut request): JsonBody<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    request.worker_id = bound(&caller, &request.worker_id)?;
    check_batch(request.leases.len())?;
    Ok(Json(
        state
            .queue
            .heartbeat(&request.worker_id, &request.leases)
            .await?,
    ))
}

/// Report successful attempts. Items whose lease the worker no longer
/// holds are listed under `rejected`; the rest are applied.
#[utoipa::path(
    post, path = "/internal/v1/worker/complete", tag = "worker",
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "Accepted items were applied; rejected ones changed nothing", body = ReportResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn complete(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(mut request): JsonBody<CompleteRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    request.worker_id = bound(&caller, &request.worker_id)?;
    check_batch(request.items.len())?;
    Ok(Json(
        state
            .queue
            .complete(&request.worker_id, &request.items)
            .await?,
    ))
}

/// Report failed attempts; retryable ones are retried with backoff until
/// `max_attempts`, then dead-lettered.
#[utoipa::path(
    post, path = "/internal/v1/worker/fail", tag = "worker",
    request_body = FailRequest,
    responses(
        (status = 200, description = "Accepted items were applied; rejected ones changed nothing", body = ReportResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn fail(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(mut request): JsonBody<FailRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    request.worker_id = bound(&caller, &request.worker_id)?;
    check_batch(request.items.len())?;
    Ok(Json(
        state.queue.fail(&request.worker_id, request.items).await?,
    ))
}

/// Give leases back unrun (worker shutting down); the attempt is not counted.
#[utoipa::path(
    post, path = "/internal/v1/worker/release", tag = "worker",
    request_body = ReleaseRequest,
    responses(
        (status = 200, description = "Accepted items were applied; rejected ones changed nothing", body = ReportResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn release(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(mut request): JsonBody<ReleaseRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    request.worker_id = bound(&caller, &request.worker_id)?;
    check_batch(request.leases.len())?;
    Ok(Json(
        state
            .queue
            .release(&request.worker_id, &request.leases)
            .await?,
    ))
}

/// Move `auto` jobs whose HTTP attempt found that the page needs a browser
/// back to the queue for a browser worker. The attempt is not counted, and
/// the job's domain is remembered to need a browser for a while. Jobs that
/// are not `auto`, or already run on the browser, are rejected.
#[utoipa::path(
    post, path = "/internal/v1/worker/escalate", tag = "worker",
    request_body = EscalateRequest,
    responses(
        (status = 200, description = "Accepted items were applied; rejected ones changed nothing", body = ReportResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn escalate(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(mut request): JsonBody<EscalateRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    request.worker_id = bound(&caller, &request.worker_id)?;
    check_batch(request.items.len())?;
    for (index, item) in request.items.iter().enumerate() {
        if item.reason.is_empty() || item.reason.len() > 512 || item.reason.contains('\0') {
            return Err(ApiError::Validation(format!(
                "items[{index}].reason must be 1 to 512 bytes without NUL"
            )));
        }
    }
    Ok(Json(
        state
            .queue
            .escalate(&request.worker_id, request.items)
            .await?,
    ))
}
