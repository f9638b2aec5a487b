//! robots.txt in the worker protocol: `/internal/v1/worker/robots/lookup`
//! hands a worker the answer another worker already fetched for an origin,
//! or the claim to fetch it (so two workers asking at once cause one
//! fetch), or asks it to wait for the worker fetching it;
//! `/internal/v1/worker/robots/publish` keeps what a worker fetched. The
//! answers live in the store ([`accord_store::RobotsStore`]), so every replica on one
//! database shares them. Workers still fetch through their own egress
//! guard; the control plane never fetches a page.

use accord_model::{
    ErrorBody, RobotsLookupRequest, RobotsLookupResponse, RobotsPublishRequest, MAX_ROBOTS_TTL_MS,
    MAX_SHARED_ROBOTS_BYTES, ROBOTS_CLAIM_MS,
};
use accord_store::RobotsLookup;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::TimeDelta;

use super::worker::bound;
use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::{ApiError, ApiState};

/// How often a worker waiting for another's fetch asks again.
const WAIT_POLL_MS: i64 = 100;
/// A published answer may be stamped this far ahead of the control
/// plane's clock (the worker's clock runs a little fast).
const CLOCK_SLACK_MS: i64 = 60_000;

/// What is known about an origin's robots.txt: a fresh answer, or the
/// claim to fetch it, or how long to wait for the worker fetching it.
#[utoipa::path(
    post, path = "/internal/v1/worker/robots/lookup", tag = "worker",
    request_body = RobotsLookupRequest,
    responses(
        (status = 200, body = RobotsLookupResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn robots_lookup(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(request): JsonBody<RobotsLookupRequest>,
) -> Result<Json<RobotsLookupResponse>, ApiError> {
    let worker = bound(&caller, &request.worker_id)?;
    check_origin("origin", &request.origin)?;
    let now = state.queue.now();
    let claim_until = now + TimeDelta::milliseconds(ROBOTS_CLAIM_MS);
    let answer = match state
        .store
        .robots_get_or_claim(&request.origin, &worker, now, claim_until)
        .await?
    {
        RobotsLookup::Fresh(record) => RobotsLookupResponse::Fresh { record },
        RobotsLookup::Claimed(claimed_until) => RobotsLookupResponse::Fetch { claimed_until },
        RobotsLookup::Busy(until) => RobotsLookupResponse::Wait {
            retry_in_ms: (until - now).num_milliseconds().clamp(1, WAIT_POLL_MS) as u64,
        },
    };
    Ok(Json(answer))
}

/// Keep what fetching an origin's robots.txt gave, for every worker, and
/// end the claim on it.
#[utoipa::path(
    post, path = "/internal/v1/worker/robots/publish", tag = "worker",
    request_body = RobotsPublishRequest,
    responses(
        (status = 204, description = "Kept"),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn robots_publish(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(request): JsonBody<RobotsPublishRequest>,
) -> Result<StatusCode, ApiError> {
    bound(&caller, &request.worker_id)?;
    let record = &request.record;
    check_origin("record.origin", &record.origin)?;
    if record.body.len() > MAX_SHARED_ROBOTS_BYTES {
        return Err(ApiError::Validation(format!(
            "record.body must be at most {MAX_SHARED_ROBOTS_BYTES} bytes"
        )));
    }
    if record.status != accord_model::RobotsStatus::Fetched && !record.body.is_empty() {
        return Err(ApiError::Validation(
            "record.body must be empty unless status is fetched".to_owned(),
        ));
    }
    if record.reason.len() > 512 || record.reason.contains('\0') {
        return Err(ApiError::Validation(
            "record.reason must be at most 512 bytes without NUL".to_owned(),
        ));
    }
    let lifetime = (record.expires_at - record.fetched_at).num_milliseconds();
    if !(1..=MAX_ROBOTS_TTL_MS).contains(&lifetime) {
        return Err(ApiError::Validation(
            "record.expires_at must be after record.fetched_at, by at most 24 hours".to_owned(),
        ));
    }
    let now = state.queue.now();
    if record.fetched_at > now + TimeDelta::milliseconds(CLOCK_SLACK_MS) {
        return Err(ApiError::Validation(
            "record.fetched_at is in the future".to_owned(),
        ));
    }
    state.store.robots_put(record).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An `http` or `https` origin exactly as a URL library serializes it
/// (`https://example.com:8443`, no path, no trailing slash).
fn check_origin(field: &str, origin: &str) -> Result<(), ApiError> {
    let valid = origin.len() <= 300
        && url::Url::parse(origin).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https") && url.origin().ascii_serialization() == origin
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "{field} must be an http or https origin such as https://example.com:8443"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::check_origin;

    #[test]
    fn origins_are_as_urls_serialize_them() {
        for good in [
            "https://example.com",
            "http://127.0.0.1:8080",
            "https://[::1]:8443",
        ] {
            assert!(check_origin("o", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "example.com",
            "https://example.com/",
            "https://example.com/robots.txt",
            "https://EXAMPLE.com",
            "https://example.com:443",
            "ftp://example.com",
            "https://user@example.com",
        ] {
            assert!(check_origin("o", bad).is_err(), "{bad}");
        }
    }
}
