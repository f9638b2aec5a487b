//! `POST /api/v1/workflows/{name}/run` and `GET /api/v1/workflow-runs/{id}`:
//! a built-in workflow run once, outside any monitor, and read back with
//! its outcome once its job finished. A run's id is its job's.

use accord_model::{ErrorBody, NewWorkflowRun, WorkflowKind, WorkflowRunView};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::auth::{AuditTarget, Workspace};
use crate::extract::{JobIdPath, JsonBody};
use crate::{ApiError, ApiState};

/// Run a workflow once on a page. The input is checked against the
/// workflow's schema (errors name the field, like `input.selectors[0]`)
/// and expanded into a job; its outcome is computed when the job completes
/// (against no baseline: what a monitor's first run reports) and read back
/// at the `Location` given (`url_self`).
#[utoipa::path(
    post, path = "/api/v1/workflows/{name}/run", tag = "monitors",
    params(("name" = String, Path, description = "page_change, extract_items or smoke_check")),
    request_body = NewWorkflowRun,
    responses(
        (status = 201, body = WorkflowRunView,
            headers(("location" = String, description = "Where to read the run back"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid input (the error names the field) or target", body = ErrorBody),
    )
)]
pub async fn run_workflow(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    Path(name): Path<String>,
    JsonBody(new): JsonBody<NewWorkflowRun>,
) -> Result<Response, ApiError> {
    let kind: WorkflowKind = name.parse().map_err(|err: accord_model::UnknownWorkflow| {
        ApiError::WorkflowNotFound(err.to_string())
    })?;
    let run = state.queue.workflow_run_start(workspace, kind, new).await?;
    let location = HeaderValue::from_str(&run.url_self).map_err(|_| ApiError::Internal)?;
    let target = AuditTarget(run.id.to_string());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Extension(target),
        Json(run),
    )
        .into_response())
}

/// A workflow run: `running` until its job finished, then its outcome (or
/// why it has none).
#[utoipa::path(
    get, path = "/api/v1/workflow-runs/{id}", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "The run's id (its job's)")),
    responses(
        (status = 200, body = WorkflowRunView),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such workflow run", body = ErrorBody),
    )
)]
pub async fn get_workflow_run(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JobIdPath(id): JobIdPath,
) -> Result<Json<WorkflowRunView>, ApiError> {
    Ok(Json(state.queue.workflow_run_get(workspace, id).await?))
}
