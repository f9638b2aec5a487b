//! Politeness in the worker protocol: `/internal/v1/worker/egress/acquire`
//! and `.../finish` ask for and end per-domain permits, and
//! `/internal/v1/worker/defer` puts back a job whose domain must wait.
//! The state lives in the cluster's [`DomainGate`](accord_cluster::DomainGate)
//! (Redis when configured), so every worker of every replica sees the same
//! limits, pauses and breakers.

use accord_cluster::Sample;
use accord_egress::{Finish, PoliteDecision};
use accord_model::{
    DeferRequest, EgressAcquireRequest, EgressAcquireResponse, EgressFinishRequest, EgressOutcome,
    EgressWait, ErrorBody, ReportResponse, MAX_CRAWL_DELAY_MS, MAX_EGRESS_HOLD_MS,
    MAX_EGRESS_HOSTS,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::worker::{bound, check_batch};
use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::{ApiError, ApiState};

/// Ask to send a leased job's requests to its hosts: a permit for all of
/// them, or how long to wait and why (rate, concurrency cap, least gap,
/// a `Retry-After` pause, an open circuit breaker).
#[utoipa::path(
    post, path = "/internal/v1/worker/egress/acquire", tag = "worker",
    request_body = EgressAcquireRequest,
    responses(
        (status = 200, body = EgressAcquireResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
    )
)]
pub async fn egress_acquire(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(request): JsonBody<EgressAcquireRequest>,
) -> Result<Json<EgressAcquireResponse>, ApiError> {
    let worker = bound(&caller, &request.worker_id)?;
    if request.hosts.is_empty() || request.hosts.len() > MAX_EGRESS_HOSTS {
        return Err(ApiError::Validation(format!(
            "hosts must name 1 to {MAX_EGRESS_HOSTS} hosts"
        )));
    }
    if !(1_000..=MAX_EGRESS_HOLD_MS).contains(&request.hold_ms) {
        return Err(ApiError::Validation(format!(
            "hold_ms must be between 1000 and {MAX_EGRESS_HOLD_MS}"
        )));
    }
    let mut hosts = Vec::with_capacity(request.hosts.len());
    for (index, host) in request.hosts.iter().enumerate() {
        hosts.push(domain_key(host).ok_or_else(|| {
            ApiError::Validation(format!(
                "hosts[{index}] must be a host name or address as in a URL, without port"
            ))
        })?);
    }
    hosts.sort();
    hosts.dedup();
    if request.crawl_delay_ms.len() > MAX_EGRESS_HOSTS {
        return Err(ApiError::Validation(format!(
            "crawl_delay_ms names at most {MAX_EGRESS_HOSTS} hosts"
        )));
    }
    let mut crawl_delays = std::collections::HashMap::new();
    for (host, delay) in &request.crawl_delay_ms {
        let key = domain_key(host).ok_or_else(|| {
            ApiError::Validation(format!("crawl_delay_ms: {host:?} is not a host name"))
        })?;
        if *delay > MAX_CRAWL_DELAY_MS {
            return Err(ApiError::Validation(format!(
                "crawl_delay_ms[{host:?}] must be at most {MAX_CRAWL_DELAY_MS}"
            )));
        }
        crawl_delays.insert(key, *delay);
    }
    let permit_id = format!("{worker}/{}/{}", request.job_id, uuid::Uuid::now_v7());
    let gate = state.cluster.domain_gate();
    if request.policy_limits.len() > MAX_EGRESS_HOSTS {
        return Err(ApiError::Validation(format!(
            "policy_limits names at most {MAX_EGRESS_HOSTS} hosts"
        )));
    }
    let mut policy_limits = std::collections::HashMap::new();
    for (host, set) in &request.policy_limits {
        let key = domain_key(host).ok_or_else(|| {
            ApiError::Validation(format!("policy_limits: {host:?} is not a host name"))
        })?;
        let bad = set
            .requests_per_minute
            .is_some_and(|n| !(1..=60_000).contains(&n))
            || set
                .max_concurrent
                .is_some_and(|n| !(1..=1_000).contains(&n))
            || set.min_gap_ms.is_some_and(|n| n > 3_600_000);
        if bad {
            return Err(ApiError::Validation(format!(
                "policy_limits[{host:?}] is out of bounds (requests_per_minute 1-60000, \
                 max_concurrent 1-1000, min_gap_ms at most 3600000)"
            )));
        }
        policy_limits.insert(key, *set);
    }
    let configured = state.config.domain_limits;
    let limits_for = |host: &str| {
        let mut limits = configured;
        // A domain policy's numbers replace the server's defaults.
        if let Some(set) = policy_limits.get(host) {
            if let Some(n) = set.requests_per_minute {
                limits.per_minute = Some(n);
            }
            if let Some(n) = set.max_concurrent {
                limits.max_concurrent = Some(n);
            }
            if let Some(n) = set.min_gap_ms {
                limits.min_gap_ms = u64::from(n);
            }
        }
        if let Some(delay) = crawl_delays.get(host) {
            limits.min_gap_ms = limits.min_gap_ms.max(*delay);
        }
        limits
    };
    for (granted, host) in hosts.iter().enumerate() {
        let decision = gate
            .acquire(host, &limits_for(host), &permit_id, request.hold_ms)
            .await;
        let PoliteDecision::Wait { until_ms, reason } = decision else {
            continue;
        };
        state
            .cluster
            .domain_stats()
            .record(host, Sample::Wait)
            .await;
        // All or nothing: give back what this call already took.
        for taken in &hosts[..granted] {
            gate.finish(taken, &limits_for(taken), &permit_id, Finish::Neutral, None)
                .await;
        }
        let now = chrono::Utc::now().timestamp_millis();
        return Ok(Json(EgressAcquireResponse {
            permit_id: None,
            wait: Some(EgressWait {
                host: host.clone(),
                reason,
                retry_in_ms: u64::try_from(until_ms.saturating_sub(now))
                    .unwrap_or(0)
                    .max(1),
                until: chrono::DateTime::from_timestamp_millis(until_ms),
            }),
        }));
    }
    Ok(Json(EgressAcquireResponse {
        permit_id: Some(permit_id),
        wait: None,
    }))
}

/// End permits: how the requests went (a failure counts towards the
/// domain's breaker) and the site's `Retry-After`, which pauses the domain.
#[utoipa::path(
    post, path = "/internal/v1/worker/egress/finish", tag = "worker",
    request_body = EgressFinishRequest,
    responses(
        (status = 204, description = "Permits ended"),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
    )
)]
pub async fn egress_finish(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(request): JsonBody<EgressFinishRequest>,
) -> Result<StatusCode, ApiError> {
    let worker = bound(&caller, &request.worker_id)?;
    check_batch(request.items.len())?;
    // A permit names the worker that took it: nobody ends another's.
    let own = format!("{worker}/");
    let mut items = Vec::with_capacity(request.items.len());
    for (index, item) in request.items.iter().enumerate() {
        let host = domain_key(&item.host).ok_or_else(|| {
            ApiError::Validation(format!("items[{index}].host must be a host name"))
        })?;
        if item
            .status
            .is_some_and(|status| !(100..=599).contains(&status))
        {
            return Err(ApiError::Validation(format!(
                "items[{index}].status must be between 100 and 599"
            )));
        }
        if !item.permit_id.starts_with(&own) || item.permit_id.len() > 256 {
            return Err(ApiError::Validation(format!(
                "items[{index}].permit_id is not a permit of this worker"
            )));
        }
        items.push((host, item));
    }
    let gate = state.cluster.domain_gate();
    let limits = state.config.domain_limits;
    for (host, item) in items {
        let finish = match item.outcome {
            EgressOutcome::Success => Finish::Success,
            EgressOutcome::Failure => Finish::Failure,
            EgressOutcome::Neutral => Finish::Neutral,
        };
        if let Some(pause) = item.retry_after_ms {
            tracing::info!(host = %host, pause_ms = pause, "the site asked to wait (Retry-After): pausing the domain");
        }
        gate.finish(&host, &limits, &item.permit_id, finish, item.retry_after_ms)
            .await;
        let sample = match (item.status, item.outcome) {
            (Some(status), _) => Some(Sample::Status {
                status,
                latency_ms: item.latency_ms.unwrap_or(0),
            }),
            (None, EgressOutcome::Failure) => Some(Sample::Error),
            (None, _) => None,
        };
        if let Some(sample) = sample {
            state.cluster.domain_stats().record(&host, sample).await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Put leased jobs back unrun until their domain may be visited again
/// (a `Retry-After` pause, an open breaker, a long wait for a slot); the
/// attempt is not counted.
#[utoipa::path(
    post, path = "/internal/v1/worker/defer", tag = "worker",
    request_body = DeferRequest,
    responses(
        (status = 200, description = "Accepted items were applied; rejected ones changed nothing", body = ReportResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn defer(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(mut request): JsonBody<DeferRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    request.worker_id = bound(&caller, &request.worker_id)?;
    check_batch(request.items.len())?;
    for (index, item) in request.items.iter().enumerate() {
        if !(1..=MAX_EGRESS_HOLD_MS).contains(&item.delay_ms) {
            return Err(ApiError::Validation(format!(
                "items[{index}].delay_ms must be between 1 and {MAX_EGRESS_HOLD_MS}"
            )));
        }
        if item.reason.is_empty() || item.reason.len() > 512 || item.reason.contains('\0') {
            return Err(ApiError::Validation(format!(
                "items[{index}].reason must be 1 to 512 bytes without NUL"
            )));
        }
    }
    Ok(Json(
        state
            .queue
            .defer(&request.worker_id, &request.items)
            .await?,
    ))
}

/// The key politeness is kept under: the host lowercased, as a URL would
/// hold it (names, IPv4, bracketed IPv6), or `None` when it is not one.
pub(super) fn domain_key(host: &str) -> Option<String> {
    if host.is_empty() || host.len() > 255 {
        return None;
    }
    let host = host.to_ascii_lowercase();
    let name = host.trim_end_matches('.');
    let valid = if let Some(inner) = name.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    valid.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::domain_key;

    #[test]
    fn domain_keys_are_hosts_as_urls_hold_them() {
        assert_eq!(domain_key("Example.COM.").as_deref(), Some("example.com"));
        assert_eq!(domain_key("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(domain_key("[::1]").as_deref(), Some("[::1]"));
        for bad in [
            "",
            ".",
            "a b",
            "example.com:80",
            "[zz]",
            "a/b",
            &"x".repeat(300),
        ] {
            assert_eq!(domain_key(bad), None, "{bad:?}");
        }
    }
}
