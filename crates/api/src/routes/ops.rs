//! Operations: queue statistics, status, health, readiness and metrics.

use std::collections::BTreeMap;

use accord_cluster::RedisStatus;
use accord_model::{JobState, Priority};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::Workspace;
use crate::{ApiError, ApiState};
use accord_model::{ErrorBody, HealthView, OpsStatus, QueueStatsView, Throughput};

/// Queue statistics.
#[utoipa::path(
    get, path = "/api/v1/queue/stats", tag = "ops",
    responses((status = 200, body = QueueStatsView), (status = 503, body = ErrorBody))
)]
pub async fn queue_stats(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
) -> Result<Json<QueueStatsView>, ApiError> {
    let stats = state.queue.stats(workspace).await?;
    let now = state.queue.now();
    let mut by_state: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
    let mut by_priority: BTreeMap<Priority, BTreeMap<JobState, u64>> = BTreeMap::new();
    let mut by_queue: BTreeMap<String, BTreeMap<JobState, u64>> = BTreeMap::new();
    for count in &stats.counts {
        *by_state.entry(count.state).or_default() += count.count;
        *by_priority
            .entry(count.priority)
            .or_default()
            .entry(count.state)
            .or_default() += count.count;
        *by_queue
            .entry(count.queue.to_string())
            .or_default()
            .entry(count.state)
            .or_default() += count.count;
    }
    let finished = |state| stats.finished_since.get(&state).copied().unwrap_or(0);
    let (succeeded, dead, cancelled) = (
        finished(JobState::Succeeded),
        finished(JobState::Dead),
        finished(JobState::Cancelled),
    );
    Ok(Json(QueueStatsView {
        by_state,
        by_priority,
        by_queue,
        oldest_available_age_seconds: stats
            .oldest_due_at
            .map(|due| (now - due).num_milliseconds().max(0) as f64 / 1000.0),
        last_minute: Throughput {
            succeeded,
            dead,
            cancelled,
            per_second: (succeeded + dead + cancelled) as f64 / 60.0,
        },
    }))
}

/// Control-plane status.
#[utoipa::path(get, path = "/api/v1/ops/status", tag = "ops", responses((status = 200, body = OpsStatus)))]
pub async fn ops_status(State(state): State<ApiState>) -> Json<OpsStatus> {
    let queue = &state.queue;
    let config = queue.config();
    Json(OpsStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        store: state.store.backend().to_owned(),
        store_reachable: state.store.ping().await.is_ok(),
        uptime_seconds: state.started.elapsed().as_secs(),
        active_workers: queue.active_workers(),
        lease_ttl_seconds: config.lease_ttl.as_secs(),
        retention_seconds: config.retention.map(|r| r.as_secs()),
        allow_private_targets: config.egress.allows_private(),
        maintenance_leader: queue.is_maintenance_leader(),
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = HealthView)))]
pub async fn health() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".into(),
        redis: None,
    })
}

/// Readiness: the database answers (503 when it does not). With Redis
/// configured but down the answer is still 200, `degraded`: everything
/// works, with rate limits counted per replica until Redis is back.
#[utoipa::path(
    get, path = "/ready", tag = "ops",
    responses((status = 200, body = HealthView), (status = 503, body = HealthView))
)]
pub async fn ready(State(state): State<ApiState>) -> (StatusCode, Json<HealthView>) {
    let redis = match state.cluster.status() {
        RedisStatus::NotConfigured => None,
        RedisStatus::Up => Some("up"),
        RedisStatus::Down { .. } => Some("down"),
    };
    let (code, status) = match state.store.ping().await {
        Ok(()) if redis == Some("down") => (StatusCode::OK, "degraded"),
        Ok(()) => (StatusCode::OK, "ready"),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    (
        code,
        Json(HealthView {
            status: status.into(),
            redis: redis.map(str::to_owned),
        }),
    )
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get, path = "/metrics", tag = "ops",
    responses((status = 200, content_type = "application/openmetrics-text", body = String), (status = 503, body = ErrorBody))
)]
pub async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let mut text = state.queue.render_metrics().await?;
    let domains = super::domains::metrics_text(&state).await;
    // The domains' gauges go before the exposition's closing `# EOF`.
    match text.rfind("# EOF") {
        Some(at) => text.insert_str(at, &domains),
        None => text.push_str(&domains),
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
