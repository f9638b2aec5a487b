//! `/api/v1/policies`: the workspace's domain policies, created, listed
//! (most specific first, the order they are matched in), read, changed and
//! deleted. Submission routes check them (`403 policy_denied`); workers get
//! them with each claimed job.

use accord_model::{ErrorBody, NewPolicy, PolicyId, PolicyList, PolicyPatch, PolicyView};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::{Extension, Json};

use crate::auth::{AuditTarget, Workspace};
use crate::extract::{JsonBody, Object};
use crate::{ApiError, ApiState};

/// A `{id}` path segment that must be a policy id.
#[derive(Debug, Clone, Copy)]
pub struct PolicyIdPath(pub PolicyId);

impl<S: Send + Sync> FromRequestParts<S> for PolicyIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidId(rejection.body_text()))?;
        raw.parse().map(PolicyIdPath).map_err(|_| {
            ApiError::InvalidId(format!("{raw:?} is not a policy id (expected a UUID)"))
        })
    }
}

/// Create a domain policy. `pattern` is `example.com`, `*.example.com` or
/// `*` (the workspace default; with `"allowed": false` the workspace denies
/// every host no other policy allows). Errors name the field.
#[utoipa::path(
    post, path = "/api/v1/policies", tag = "policies",
    request_body = NewPolicy,
    responses(
        (status = 201, body = PolicyView),
        (status = 400, description = "Malformed JSON, or an invalid policy (the message names the field)", body = ErrorBody),
        (status = 409, description = "The workspace has a policy for this pattern", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "An unknown member, or a member of the wrong type", body = ErrorBody),
    )
)]
pub async fn create_policy(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JsonBody(Object(new)): JsonBody<Object<NewPolicy>>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<PolicyView>), ApiError> {
    let policy = state.queue.policy_create(workspace, &new).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(policy.id.to_string())),
        Json(PolicyView::from(&policy)),
    ))
}

/// List the workspace's domain policies, most specific first.
#[utoipa::path(
    get, path = "/api/v1/policies", tag = "policies",
    responses((status = 200, body = PolicyList))
)]
pub async fn list_policies(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
) -> Result<Json<PolicyList>, ApiError> {
    let policies = state.queue.policy_list(workspace).await?;
    Ok(Json(PolicyList {
        items: policies.iter().map(PolicyView::from).collect(),
    }))
}

/// Get one domain policy.
#[utoipa::path(
    get, path = "/api/v1/policies/{id}", tag = "policies",
    params(("id" = String, Path, format = Uuid, description = "Policy id")),
    responses(
        (status = 200, body = PolicyView),
        (status = 400, description = "Not a policy id", body = ErrorBody),
        (status = 404, description = "No such policy", body = ErrorBody),
    )
)]
pub async fn get_policy(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    PolicyIdPath(id): PolicyIdPath,
) -> Result<Json<PolicyView>, ApiError> {
    let policy = state.queue.policy_get(workspace, id).await?;
    Ok(Json(PolicyView::from(&policy)))
}

/// Change a domain policy: the members given replace the stored ones; a
/// number (or `engines`, `steps`) set to `null` is cleared.
#[utoipa::path(
    patch, path = "/api/v1/policies/{id}", tag = "policies",
    params(("id" = String, Path, format = Uuid, description = "Policy id")),
    request_body = PolicyPatch,
    responses(
        (status = 200, body = PolicyView),
        (status = 400, description = "Not a policy id, malformed JSON, or an invalid change", body = ErrorBody),
        (status = 404, description = "No such policy", body = ErrorBody),
        (status = 409, description = "Another policy has the pattern, or this one changed meanwhile", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "An unknown member, or a member of the wrong type", body = ErrorBody),
    )
)]
pub async fn update_policy(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    PolicyIdPath(id): PolicyIdPath,
    JsonBody(Object(patch)): JsonBody<Object<PolicyPatch>>,
) -> Result<(Extension<AuditTarget>, Json<PolicyView>), ApiError> {
    let policy = state.queue.policy_update(workspace, id, &patch).await?;
    Ok((
        Extension(AuditTarget(id.to_string())),
        Json(PolicyView::from(&policy)),
    ))
}

/// Delete a domain policy.
#[utoipa::path(
    delete, path = "/api/v1/policies/{id}", tag = "policies",
    params(("id" = String, Path, format = Uuid, description = "Policy id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a policy id", body = ErrorBody),
        (status = 404, description = "No such policy", body = ErrorBody),
    )
)]
pub async fn delete_policy(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    PolicyIdPath(id): PolicyIdPath,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    state.queue.policy_delete(workspace, id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditTarget(id.to_string())),
    ))
}
