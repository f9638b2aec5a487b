//! `/api/v1/workspaces`: create and list workspaces. Creating one is
//! instance-wide, so it takes an admin key of the default workspace; any
//! other admin sees only its own workspace.

use accord_model::{
    check_workspace_name, ErrorBody, NewWorkspace, Workspace, WorkspaceId, WorkspaceList,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState};

/// Create a workspace.
#[utoipa::path(
    post, path = "/api/v1/workspaces", tag = "access",
    request_body = NewWorkspace,
    responses(
        (status = 201, body = Workspace),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad name", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_workspace(
    State(state): State<ApiState>,
    JsonBody(request): JsonBody<NewWorkspace>,
) -> Result<Response, ApiError> {
    check_workspace_name(&request.name).map_err(|err| ApiError::Validation(err.to_string()))?;
    let workspace = Workspace {
        id: WorkspaceId::new(),
        name: request.name,
        created_at: state.queue.now(),
    };
    if !state.store.workspace_create(&workspace).await? {
        return Err(ApiError::WorkspaceExists(workspace.name));
    }
    let target = AuditTarget(workspace.id.to_string());
    Ok((StatusCode::CREATED, Extension(target), Json(workspace)).into_response())
}

/// List workspaces: all of them for admins of the default workspace, the caller's own otherwise.
#[utoipa::path(
    get, path = "/api/v1/workspaces", tag = "access",
    responses((status = 200, body = WorkspaceList), (status = 503, description = "Database unavailable", body = ErrorBody))
)]
pub async fn list_workspaces(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<WorkspaceList>, ApiError> {
    let store = &state.store;
    let items = if caller.is_instance_admin() {
        store.workspace_list().await?
    } else {
        store
            .workspace_get(caller.workspace)
            .await?
            .into_iter()
            .collect()
    };
    Ok(Json(WorkspaceList { items }))
}
