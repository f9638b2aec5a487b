//! `/api/v1/workflows` and `/api/v1/monitors`: the built-in workflows with
//! their input schemas; monitors created, read, changed, paused, resumed,
//! run by hand and deleted, with their runs and tracked values.

use accord_model::{
    ErrorBody, MonitorId, MonitorPage, MonitorPatch, MonitorRun, MonitorView, NewMonitor, RunPage,
    Series, WorkflowKind, WorkflowList, WorkflowView,
};
use accord_store::MonitorFilter;
use accord_workflows::WorkflowInfo;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{AuditTarget, Workspace};
use crate::extract::{page_limit, JsonBody, QueryParams};
use crate::{ApiError, ApiState};

/// A `{id}` path segment that must be a monitor id (`400 invalid_id` otherwise).
#[derive(Debug, Clone, Copy)]
pub struct MonitorIdPath(pub MonitorId);

impl<S: Send + Sync> FromRequestParts<S> for MonitorIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidId(rejection.body_text()))?;
        raw.parse().map(MonitorIdPath).map_err(|_| {
            ApiError::InvalidId(format!("{raw:?} is not a monitor id (expected a UUID)"))
        })
    }
}

fn workflow_view(kind: WorkflowKind) -> WorkflowView {
    WorkflowView {
        name: kind,
        description: kind.description().to_owned(),
        input_schema: kind.input_schema(),
    }
}

/// List the built-in workflows.
#[utoipa::path(
    get, path = "/api/v1/workflows", tag = "monitors",
    responses((status = 200, body = WorkflowList))
)]
pub async fn list_workflows() -> Json<WorkflowList> {
    Json(WorkflowList {
        workflows: WorkflowKind::ALL.into_iter().map(workflow_view).collect(),
    })
}

/// Get one workflow with the JSON Schema of its input.
#[utoipa::path(
    get, path = "/api/v1/workflows/{name}", tag = "monitors",
    params(("name" = String, Path, description = "page_change, extract_items or smoke_check")),
    responses(
        (status = 200, body = WorkflowView),
        (status = 404, description = "No such workflow", body = ErrorBody),
    )
)]
pub async fn get_workflow(Path(name): Path<String>) -> Result<Json<WorkflowView>, ApiError> {
    let kind: WorkflowKind = name.parse().map_err(|err: accord_model::UnknownWorkflow| {
        ApiError::WorkflowNotFound(err.to_string())
    })?;
    Ok(Json(workflow_view(kind)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonitorListParams {
    /// Only monitors with this tag.
    pub tag: Option<String>,
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(format = Uuid)]
    pub cursor: Option<String>,
}

/// Create a monitor. Its input is checked against its workflow's schema
/// and its schedule against the workspace's minimum interval; errors name
/// the field.
#[utoipa::path(
    post, path = "/api/v1/monitors", tag = "monitors",
    request_body = NewMonitor,
    responses(
        (status = 201, body = MonitorView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid monitor", body = ErrorBody),
    )
)]
pub async fn create_monitor(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JsonBody(new): JsonBody<NewMonitor>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<MonitorView>), ApiError> {
    let monitor = state.queue.monitor_create(workspace, new).await?;
    let target = AuditTarget(monitor.id.to_string());
    Ok((
        StatusCode::CREATED,
        Extension(target),
        Json(MonitorView::from(&monitor)),
    ))
}

/// List monitors, newest first.
#[utoipa::path(
    get, path = "/api/v1/monitors", tag = "monitors",
    params(MonitorListParams),
    responses(
        (status = 200, body = MonitorPage),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
    )
)]
pub async fn list_monitors(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    QueryParams(params): QueryParams<MonitorListParams>,
) -> Result<Json<MonitorPage>, ApiError> {
    let limit = page_limit(params.limit, 50, 500)?;
    let before = params
        .cursor
        .map(|cursor| {
            cursor
                .parse::<MonitorId>()
                .map_err(|_| ApiError::InvalidQuery(format!("invalid cursor {cursor:?}")))
        })
        .transpose()?;
    let filter = MonitorFilter {
        tag: params.tag,
        before,
        limit,
    };
    let monitors = state.queue.monitor_list(workspace, &filter).await?;
    let next_cursor = (monitors.len() == limit as usize)
        .then(|| monitors.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(Json(MonitorPage {
        items: monitors.iter().map(MonitorView::from).collect(),
        next_cursor,
    }))
}

/// Get one monitor.
#[utoipa::path(
    get, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id")),
    responses(
        (status = 200, body = MonitorView),
        (status = 400, description = "Not a monitor id", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    )
)]
pub async fn get_monitor(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
) -> Result<Json<MonitorView>, ApiError> {
    let monitor = state.queue.monitor_get(workspace, id).await?;
    Ok(Json(MonitorView::from(&monitor)))
}

/// Change a monitor: only the members given.
#[utoipa::path(
    patch, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id")),
    request_body = MonitorPatch,
    responses(
        (status = 200, body = MonitorView),
        (status = 400, description = "Not a monitor id, or malformed JSON", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 409, description = "Changed meanwhile", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid change", body = ErrorBody),
    )
)]
pub async fn update_monitor(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
    JsonBody(patch): JsonBody<MonitorPatch>,
) -> Result<(Extension<AuditTarget>, Json<MonitorView>), ApiError> {
    let monitor = state.queue.monitor_update(workspace, id, &patch).await?;
    Ok((
        Extension(AuditTarget(id.to_string())),
        Json(MonitorView::from(&monitor)),
    ))
}

/// Delete a monitor with its runs, snapshots and values (its jobs stay
/// until job retention removes them).
#[utoipa::path(
    delete, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a monitor id", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    )
)]
pub async fn delete_monitor(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    state.queue.monitor_delete(workspace, id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditTarget(id.to_string())),
    ))
}

/// Pause a monitor: no scheduled run starts until it is resumed.
#[utoipa::path(
    post, path = "/api/v1/monitors/{id}/pause", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id")),
    responses(
        (status = 200, body = MonitorView),
        (status = 400, description = "Not a monitor id", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 409, description = "Changed meanwhile", body = ErrorBody),
    )
)]
pub async fn pause_monitor(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
) -> Result<(Extension<AuditTarget>, Json<MonitorView>), ApiError> {
    let monitor = state.queue.monitor_pause(workspace, id).await?;
    Ok((
        Extension(AuditTarget(id.to_string())),
        Json(MonitorView::from(&monitor)),
    ))
}

/// Resume a monitor from its next slot (missed slots are not run).
#[utoipa::path(
    post, path = "/api/v1/monitors/{id}/resume", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id")),
    responses(
        (status = 200, body = MonitorView),
        (status = 400, description = "Not a monitor id", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 409, description = "Changed meanwhile", body = ErrorBody),
    )
)]
pub async fn resume_monitor(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
) -> Result<(Extension<AuditTarget>, Json<MonitorView>), ApiError> {
    let monitor = state.queue.monitor_resume(workspace, id).await?;
    Ok((
        Extension(AuditTarget(id.to_string())),
        Json(MonitorView::from(&monitor)),
    ))
}

/// Run a monitor now, outside its schedule; refused while a run is in
/// progress.
#[utoipa::path(
    post, path = "/api/v1/monitors/{id}/run", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id")),
    responses(
        (status = 201, body = MonitorRun),
        (status = 400, description = "Not a monitor id", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 409, description = "A run is in progress", body = ErrorBody),
    )
)]
pub async fn run_monitor(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<MonitorRun>), ApiError> {
    let started = state.queue.monitor_run_now(workspace, id).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(id.to_string())),
        Json(started.run),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunListParams {
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// A monitor's runs, newest first, each with its outcome.
#[utoipa::path(
    get, path = "/api/v1/monitors/{id}/runs", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id"), RunListParams),
    responses(
        (status = 200, body = RunPage),
        (status = 400, description = "Not a monitor id, or a bad cursor", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    )
)]
pub async fn list_runs(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
    QueryParams(params): QueryParams<RunListParams>,
) -> Result<Json<RunPage>, ApiError> {
    let limit = page_limit(params.limit, 50, 500)?;
    let runs = state
        .queue
        .monitor_runs(workspace, id, params.cursor, limit)
        .await?;
    let next_cursor = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(RunPage {
        items: runs,
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Only the values of this name.
    pub name: Option<String>,
    /// 1 to 10000; default 1000.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// The numbers a monitor tracked, run by run.
#[utoipa::path(
    get, path = "/api/v1/monitors/{id}/series", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id"), SeriesParams),
    responses(
        (status = 200, body = Series),
        (status = 400, description = "Not a monitor id", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    )
)]
pub async fn monitor_series(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
    QueryParams(params): QueryParams<SeriesParams>,
) -> Result<Json<Series>, ApiError> {
    let limit = page_limit(params.limit, 1_000, 10_000)?;
    let points = state
        .queue
        .monitor_series(workspace, id, params.name.as_deref(), limit)
        .await?;
    Ok(Json(Series { points }))
}
