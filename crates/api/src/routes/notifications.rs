//! `/api/v1/notification-targets` and the delivery log: targets created
//! (a webhook's signing secret shown once, in the answer), read, changed
//! (resumed after an automatic pause), deleted, their secret rotated (the
//! old one still signs for a grace period) and tested; every message with
//! its attempts, by target or by monitor; and a message queued again.

use accord_model::{
    CreatedTarget, DeliveryPage, DeliveryView, ErrorBody, MessageId, NewTarget, TargetId,
    TargetList, TargetPatch, TargetView,
};
use accord_store::DeliveryFilter;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

use super::monitors::MonitorIdPath;
use crate::auth::{AuditTarget, Workspace};
use crate::extract::{page_limit, JsonBody, QueryParams};
use crate::{ApiError, ApiState};

/// Longest grace period of a rotated-out secret: a week.
const MAX_GRACE_SECONDS: u32 = 7 * 24 * 3_600;

/// A `{id}` path segment that must be a target id.
#[derive(Debug, Clone, Copy)]
pub struct TargetIdPath(pub TargetId);

impl<S: Send + Sync> FromRequestParts<S> for TargetIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidId(rejection.body_text()))?;
        raw.parse().map(TargetIdPath).map_err(|_| {
            ApiError::InvalidId(format!("{raw:?} is not a target id (expected a UUID)"))
        })
    }
}

/// A `{id}` path segment that must be a delivery id.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryIdPath(pub MessageId);

impl<S: Send + Sync> FromRequestParts<S> for DeliveryIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidId(rejection.body_text()))?;
        raw.parse().map(DeliveryIdPath).map_err(|_| {
            ApiError::InvalidId(format!("{raw:?} is not a delivery id (expected a UUID)"))
        })
    }
}

/// Create a notification target. A webhook's signing secret (`whsec_...`)
/// is in this answer and nowhere else. Private addresses are refused
/// (unless allowed by the operator); errors name the field.
#[utoipa::path(
    post, path = "/api/v1/notification-targets", tag = "notifications",
    request_body = NewTarget,
    responses(
        (status = 201, body = CreatedTarget),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid target, or a private address", body = ErrorBody),
    )
)]
pub async fn create_notification_target(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JsonBody(new): JsonBody<NewTarget>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<CreatedTarget>), ApiError> {
    let (target, secret) = state.queue.target_create(workspace, new).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(target.id.to_string())),
        Json(CreatedTarget {
            target: TargetView::from(&target),
            secret: secret.map(|s| s.expose().to_owned()),
        }),
    ))
}

/// List the workspace's notification targets, newest first.
#[utoipa::path(
    get, path = "/api/v1/notification-targets", tag = "notifications",
    responses((status = 200, body = TargetList))
)]
pub async fn list_notification_targets(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
) -> Result<Json<TargetList>, ApiError> {
    let targets = state.queue.target_list(workspace).await?;
    Ok(Json(TargetList {
        items: targets.iter().map(TargetView::from).collect(),
    }))
}

/// Get one notification target (never its secret).
#[utoipa::path(
    get, path = "/api/v1/notification-targets/{id}", tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "Target id")),
    responses(
        (status = 200, body = TargetView),
        (status = 400, description = "Not a target id", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
    )
)]
pub async fn get_notification_target(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    TargetIdPath(id): TargetIdPath,
) -> Result<Json<TargetView>, ApiError> {
    let target = state.queue.target_get(workspace, id).await?;
    Ok(Json(TargetView::from(&target)))
}

/// Change a notification target: its name, address, or whether it is
/// paused (`"paused": false` resumes it and clears its failure count).
#[utoipa::path(
    patch, path = "/api/v1/notification-targets/{id}", tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "Target id")),
    request_body = TargetPatch,
    responses(
        (status = 200, body = TargetView),
        (status = 400, description = "Not a target id, or malformed JSON", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
        (status = 409, description = "Changed meanwhile", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid change, or a private address", body = ErrorBody),
    )
)]
pub async fn update_notification_target(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    TargetIdPath(id): TargetIdPath,
    JsonBody(patch): JsonBody<TargetPatch>,
) -> Result<(Extension<AuditTarget>, Json<TargetView>), ApiError> {
    let target = state.queue.target_update(workspace, id, &patch).await?;
    Ok((
        Extension(AuditTarget(id.to_string())),
        Json(TargetView::from(&target)),
    ))
}

/// Delete a notification target with its messages. Monitors that name it
/// keep the name and send it nothing.
#[utoipa::path(
    delete, path = "/api/v1/notification-targets/{id}", tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "Target id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a target id", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
    )
)]
pub async fn delete_notification_target(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    TargetIdPath(id): TargetIdPath,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    state.queue.target_delete(workspace, id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditTarget(id.to_string())),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RotateParams {
    /// How long the old secret still signs, in seconds (0 to 604800);
    /// default a day.
    #[param(minimum = 0, maximum = 604800)]
    pub grace_seconds: Option<u32>,
}

/// Give a webhook target a new signing secret, shown in this answer only.
/// Until the grace period ends every message carries two signatures, one
/// per secret.
#[utoipa::path(
    post, path = "/api/v1/notification-targets/{id}/rotate-secret", tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "Target id"), RotateParams),
    responses(
        (status = 200, body = CreatedTarget),
        (status = 400, description = "Not a target id, or a bad grace period", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
        (status = 409, description = "Not a webhook, or changed meanwhile", body = ErrorBody),
    )
)]
pub async fn rotate_target_secret(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    TargetIdPath(id): TargetIdPath,
    QueryParams(params): QueryParams<RotateParams>,
) -> Result<(Extension<AuditTarget>, Json<CreatedTarget>), ApiError> {
    let grace = match params.grace_seconds {
        None => accord_queue::DEFAULT_SECRET_GRACE,
        Some(seconds) if seconds <= MAX_GRACE_SECONDS => {
            chrono::Duration::seconds(i64::from(seconds))
        }
        Some(seconds) => {
            return Err(ApiError::InvalidQuery(format!(
                "grace_seconds must be at most {MAX_GRACE_SECONDS}, not {seconds}"
            )))
        }
    };
    let (target, secret) = state
        .queue
        .target_rotate_secret(workspace, id, grace)
        .await?;
    Ok((
        Extension(AuditTarget(id.to_string())),
        Json(CreatedTarget {
            target: TargetView::from(&target),
            secret: Some(secret.expose().to_owned()),
        }),
    ))
}

/// Send the target a sample message (through the outbox, like any other:
/// its attempts show in the target's deliveries).
#[utoipa::path(
    post, path = "/api/v1/notification-targets/{id}/test", tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "Target id")),
    responses(
        (status = 202, body = DeliveryView),
        (status = 400, description = "Not a target id", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
    )
)]
pub async fn test_notification_target(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    TargetIdPath(id): TargetIdPath,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<DeliveryView>), ApiError> {
    let message = state.queue.target_test(workspace, id).await?;
    let delivery = state.queue.delivery(workspace, message).await?;
    Ok((
        StatusCode::ACCEPTED,
        Extension(AuditTarget(id.to_string())),
        Json(delivery),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListParams {
    /// 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(format = Uuid)]
    pub cursor: Option<String>,
}

impl DeliveryListParams {
    fn filter(self) -> Result<DeliveryFilter, ApiError> {
        let limit = page_limit(self.limit, 50, 200)?;
        let before = self
            .cursor
            .map(|cursor| {
                cursor
                    .parse::<MessageId>()
                    .map_err(|_| ApiError::InvalidQuery(format!("invalid cursor {cursor:?}")))
            })
            .transpose()?;
        Ok(DeliveryFilter {
            before,
            limit,
            ..DeliveryFilter::default()
        })
    }
}

fn page(items: Vec<DeliveryView>, limit: u32) -> DeliveryPage {
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|d| d.id))
        .flatten();
    DeliveryPage { items, next_cursor }
}

/// The messages to a target, newest first, each with its latest attempts
/// (status, latency, the start of the answer).
#[utoipa::path(
    get, path = "/api/v1/notification-targets/{id}/deliveries", tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "Target id"), DeliveryListParams),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 400, description = "Not a target id, or a bad cursor", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
    )
)]
pub async fn list_target_deliveries(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    TargetIdPath(id): TargetIdPath,
    QueryParams(params): QueryParams<DeliveryListParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let filter = DeliveryFilter {
        target: Some(id),
        ..params.filter()?
    };
    let items = state.queue.deliveries(workspace, &filter).await?;
    Ok(Json(page(items, filter.limit)))
}

/// The messages about a monitor's runs, newest first, each with its latest
/// attempts.
#[utoipa::path(
    get, path = "/api/v1/monitors/{id}/deliveries", tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "Monitor id"), DeliveryListParams),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 400, description = "Not a monitor id, or a bad cursor", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    )
)]
pub async fn list_monitor_deliveries(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
    QueryParams(params): QueryParams<DeliveryListParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let filter = DeliveryFilter {
        monitor: Some(id),
        ..params.filter()?
    };
    let items = state.queue.deliveries(workspace, &filter).await?;
    Ok(Json(page(items, filter.limit)))
}

/// Queue a message again, due now, with a fresh round of attempts (also
/// one already delivered or failed). The receiver sees the same
/// `webhook-id`.
#[utoipa::path(
    post, path = "/api/v1/deliveries/{id}/redeliver", tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "Delivery id")),
    responses(
        (status = 200, body = DeliveryView),
        (status = 400, description = "Not a delivery id", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
    )
)]
pub async fn redeliver(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    DeliveryIdPath(id): DeliveryIdPath,
) -> Result<(Extension<AuditTarget>, Json<DeliveryView>), ApiError> {
    let delivery = state.queue.redeliver(workspace, id).await?;
    Ok((Extension(AuditTarget(id.to_string())), Json(delivery)))
}
