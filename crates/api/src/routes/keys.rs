//! `/api/v1/keys`: create, list and revoke API keys (admins).
//!
//! An admin manages the keys of its own workspace. An admin of the default
//! workspace may name another workspace (`workspace`, by id or name); for
//! anyone else another workspace does not exist (404).

use accord_model::{
    ApiKey, ApiKeyId, ApiKeyList, CreatedApiKey, ErrorBody, NewApiKey, WorkspaceId,
};
use accord_store::StoredApiKey;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{hash_secret, new_token, AuditTarget, Caller};
use crate::extract::{JsonBody, QueryParams};
use crate::{ApiError, ApiState};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyScope {
    /// Another workspace (id or name); only for admins of the default workspace.
    pub workspace: Option<String>,
}

/// The workspace a call acts in: the caller's, or the one an instance admin names.
pub(super) async fn target_workspace(
    state: &ApiState,
    caller: &Caller,
    named: Option<&str>,
) -> Result<WorkspaceId, ApiError> {
    let Some(named) = named else {
        return Ok(caller.workspace);
    };
    match state.store.workspace_lookup(named).await? {
        Some(workspace) if caller.is_instance_admin() || workspace.id == caller.workspace => {
            Ok(workspace.id)
        }
        _ => Err(ApiError::WorkspaceNotFound(format!(
            "workspace {named:?} not found"
        ))),
    }
}

/// Create an API key. The answer holds the key's secret, shown only this once.
#[utoipa::path(
    post, path = "/api/v1/keys", tag = "access",
    request_body = NewApiKey,
    responses(
        (status = 201, description = "Key created; `token` is shown only now", body = CreatedApiKey),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such workspace", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown field or bad value", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_key(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(request): JsonBody<NewApiKey>,
) -> Result<Response, ApiError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::Validation(
            "name must be 1 to 100 characters, without control characters".to_owned(),
        ));
    }
    if let Some(limit) = &request.rate_limit {
        limit.check().map_err(ApiError::Validation)?;
    }
    let now = state.queue.now();
    if request.expires_at.is_some_and(|expiry| expiry <= now) {
        return Err(ApiError::Validation(
            "expires_at must be in the future".to_owned(),
        ));
    }
    let workspace = target_workspace(&state, &caller, request.workspace.as_deref()).await?;
    let token = new_token();
    let key = ApiKey {
        id: token.id.clone(),
        workspace_id: workspace,
        name: name.to_owned(),
        role: request.role,
        rate_limit: request.rate_limit,
        created_at: now,
        expires_at: request.expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    state
        .store
        .api_key_insert(&StoredApiKey {
            key: key.clone(),
            secret_hash: hash_secret(token.secret()),
        })
        .await?;
    let target = AuditTarget(key.id.to_string());
    let body = CreatedApiKey {
        key,
        token: token.reveal(),
    };
    Ok((StatusCode::CREATED, Extension(target), Json(body)).into_response())
}

/// List the workspace's keys, revoked and expired ones included. Secrets are never shown.
#[utoipa::path(
    get, path = "/api/v1/keys", tag = "access",
    params(KeyScope),
    responses(
        (status = 200, body = ApiKeyList),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such workspace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_keys(
    State(state): State<ApiState>,
    caller: Caller,
    QueryParams(scope): QueryParams<KeyScope>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let workspace = target_workspace(&state, &caller, scope.workspace.as_deref()).await?;
    let items = state.store.api_key_list(workspace).await?;
    Ok(Json(ApiKeyList { items }))
}

/// Revoke a key. Effective at once on every replica: keys are checked
/// against the database on every request.
#[utoipa::path(
    post, path = "/api/v1/keys/{id}/revoke", tag = "access",
    params(("id" = String, Path, pattern = "^[a-z0-9]{16}$", description = "The key's id (the part after `acc_`)"), KeyScope),
    responses(
        (status = 200, description = "Revoked (or already revoked)", body = ApiKey),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 404, description = "No such key in the workspace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn revoke_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(scope): QueryParams<KeyScope>,
) -> Result<Json<ApiKey>, ApiError> {
    let id: ApiKeyId = id
        .parse()
        .map_err(|err: accord_model::IdError| ApiError::InvalidId(err.to_string()))?;
    let workspace = target_workspace(&state, &caller, scope.workspace.as_deref()).await?;
    let now = state.queue.now();
    state
        .store
        .api_key_revoke(workspace, &id, now)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::KeyNotFound(format!("key {id} not found")))
}
