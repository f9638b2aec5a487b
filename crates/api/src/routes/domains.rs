//! `/api/v1/domains`: what the workers' requests to each domain did over
//! the last hour and day (rolled-up counters, never a scan of jobs), and
//! each domain's politeness state now (breaker, `Retry-After` pause,
//! requests in flight, the breaker's last transitions with their time and
//! reason), and the engine the `auto` engine remembers working there for
//! the caller's workspace (the store's `DomainStore`, written when an
//! `auto` job moved to the browser). Domains are shared by every
//! workspace, so these are instance-level routes, like `/metrics`.

use accord_cluster::{Counters, DomainView, Windows};
use accord_egress::breaker::BreakerState;
use accord_model::{
    BreakerStatus, DomainEngineView, DomainList, DomainSummary, DomainWindow, ErrorBody,
    WorkspaceId,
};
use accord_store::DomainEngine;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};

use super::egress::domain_key;
use crate::auth::Caller;
use crate::{ApiError, ApiState};

/// Domains listed at most.
const LIST_LIMIT: usize = 100;

/// Every domain the workers reached in the last day, most recently seen
/// first (at most 100).
#[utoipa::path(
    get, path = "/api/v1/domains", tag = "domains",
    responses(
        (status = 200, body = DomainList),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "The key's role may not read instance figures", body = ErrorBody),
    )
)]
pub async fn list_domains(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<DomainList>, ApiError> {
    let mut items = summaries(&state).await;
    let now = state.queue.now();
    let mut engines: std::collections::HashMap<String, DomainEngine> = state
        .store
        .domain_engine_list(caller.workspace, now)
        .await?
        .into_iter()
        .map(|memory| (memory.domain.clone(), memory))
        .collect();
    for item in &mut items {
        item.engine = engines.remove(&item.domain).map(engine_view);
    }
    Ok(Json(DomainList { items }))
}

/// The most recently seen domains (at most [`LIST_LIMIT`]), with their
/// politeness state now.
async fn summaries(state: &ApiState) -> Vec<DomainSummary> {
    let mut items = Vec::new();
    for (domain, windows) in state.cluster.domain_stats().domains(LIST_LIMIT).await {
        let view = state.cluster.domain_gate().view(&domain).await;
        items.push(summary(domain, &windows, view.as_ref()));
    }
    items
}

/// The `auto` engine's memory of one domain in `workspace`, if unexpired.
async fn remembered_engine(
    state: &ApiState,
    workspace: WorkspaceId,
    domain: &str,
) -> Result<Option<DomainEngineView>, ApiError> {
    let now = state.queue.now();
    Ok(state
        .store
        .domain_engine_get(workspace, domain, now)
        .await?
        .map(engine_view))
}

fn engine_view(memory: DomainEngine) -> DomainEngineView {
    DomainEngineView {
        engine: memory.engine,
        reason: memory.reason,
        decided_at: memory.decided_at,
        expires_at: memory.expires_at,
    }
}

/// One domain: its traffic over the last hour and day and its politeness
/// state now. `404` for a domain no worker reached in the last day.
#[utoipa::path(
    get, path = "/api/v1/domains/{domain}", tag = "domains",
    params(("domain" = String, Path, description = "A host name as in a URL, without port")),
    responses(
        (status = 200, body = DomainSummary),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "The key's role may not read instance figures", body = ErrorBody),
        (status = 404, description = "No worker reached it in the last day", body = ErrorBody),
        (status = 422, description = "Not a host name", body = ErrorBody),
    )
)]
pub async fn get_domain(
    State(state): State<ApiState>,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<Json<DomainSummary>, ApiError> {
    let domain = domain_key(&domain).ok_or_else(|| {
        ApiError::Validation("domain must be a host name as in a URL, without port".to_owned())
    })?;
    let windows = state
        .cluster
        .domain_stats()
        .domain(&domain)
        .await
        .ok_or_else(|| {
            ApiError::DomainNotFound(format!("no worker reached {domain} in the last day"))
        })?;
    let view = state.cluster.domain_gate().view(&domain).await;
    let engine = remembered_engine(&state, caller.workspace, &domain).await?;
    Ok(Json(DomainSummary {
        engine,
        ..summary(domain, &windows, view.as_ref())
    }))
}

fn summary(domain: String, windows: &Windows, view: Option<&DomainView>) -> DomainSummary {
    let (breaker, breaker_failures, breaker_open_until) = match view.map(|v| v.state.breaker()) {
        None => (BreakerStatus::Closed, 0, None),
        Some(BreakerState::Closed { failures }) => (BreakerStatus::Closed, failures, None),
        Some(BreakerState::Open { until }) => (BreakerStatus::Open, 0, Some(until)),
        Some(BreakerState::HalfOpen) => (BreakerStatus::HalfOpen, 0, None),
    };
    let now_ms = view.map_or(0, |v| v.now_ms);
    DomainSummary {
        domain,
        last_seen: millis(windows.last_seen_ms).unwrap_or_default(),
        last_hour: window(&windows.last_hour),
        last_day: window(&windows.last_day),
        breaker,
        breaker_failures,
        breaker_open_until,
        paused_until: view
            .and_then(|v| v.state.paused_until_ms())
            .filter(|until| *until > now_ms)
            .and_then(millis),
        in_flight: view.map_or(0, |v| v.state.in_flight(now_ms) as u32),
        breaker_history: view
            .map(|v| v.state.breaker_history().copied().collect())
            .unwrap_or_default(),
        engine: None,
    }
}

fn window(counters: &Counters) -> DomainWindow {
    let quantile = |q| counters.latency_quantile_ms(q).filter(|ms| *ms != u64::MAX);
    DomainWindow {
        requests: counters.requests,
        status_2xx: counters.by_class[0],
        status_3xx: counters.by_class[1],
        status_4xx: counters.by_class[2],
        status_5xx: counters.by_class[3],
        errors: counters.errors,
        waits: counters.waits,
        latency_p50_ms: quantile(0.5),
        latency_p95_ms: quantile(0.95),
    }
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// A gauge of `/metrics`: name, help, and its value for a domain.
type Gauge = (
    &'static str,
    &'static str,
    fn(&DomainSummary) -> Option<u64>,
);

/// The domains' figures over the last hour as OpenMetrics gauges, for
/// `/metrics` (the 100 most recently seen domains; names are host names,
/// which need no escaping).
pub(super) async fn metrics_text(state: &ApiState) -> String {
    use std::fmt::Write as _;
    let rows = summaries(state).await;
    let gauges: [Gauge; 7] = [
        (
            "accord_domain_requests_last_hour",
            "Requests sent to the domain in the last hour",
            |d| Some(d.last_hour.requests),
        ),
        (
            "accord_domain_errors_last_hour",
            "Requests to the domain without an answer in the last hour",
            |d| Some(d.last_hour.errors),
        ),
        (
            "accord_domain_status_5xx_last_hour",
            "5xx answers of the domain in the last hour",
            |d| Some(d.last_hour.status_5xx),
        ),
        (
            "accord_domain_waits_last_hour",
            "Times jobs waited for a permit to the domain in the last hour",
            |d| Some(d.last_hour.waits),
        ),
        (
            "accord_domain_latency_p95_ms",
            "95th percentile latency of the domain's answers in the last hour (bucket bound)",
            |d| d.last_hour.latency_p95_ms,
        ),
        (
            "accord_domain_in_flight",
            "Requests to the domain in flight",
            |d| Some(u64::from(d.in_flight)),
        ),
        (
            "accord_domain_breaker_open",
            "1 while the domain's circuit breaker is open or half-open",
            |d| Some(u64::from(d.breaker != BreakerStatus::Closed)),
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} gauge");
        for row in &rows {
            if let Some(value) = value(row) {
                let _ = writeln!(out, "{name}{{domain=\"{}\"}} {value}", row.domain);
            }
        }
    }
    out
}
