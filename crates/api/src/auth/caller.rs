//! The authenticated caller of a request, put into its extensions by the
//! guard, and the extractors handlers read it with.

use accord_model::{ApiKeyId, Permission, RateLimit, Role, WorkerScope, WorkspaceId};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::ApiError;

/// Who is calling: a valid, active key, and the workspace it acts in.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub key_id: ApiKeyId,
    pub workspace: WorkspaceId,
    pub role: Role,
    /// The key's bucket: its own limit or its role's.
    pub rate_limit: RateLimit,
}

impl Caller {
    /// Whether the caller may do what the permission covers. Instance-wide
    /// permissions need a key of the default workspace.
    pub fn may(&self, permission: Permission) -> bool {
        self.role.grants(permission)
            && (!permission.is_instance_wide() || self.is_instance_admin_workspace())
    }

    /// Keys of the default workspace act for the whole instance where
    /// their role allows (workspaces, metrics, keys of other workspaces).
    pub fn is_instance_admin_workspace(&self) -> bool {
        self.workspace == WorkspaceId::DEFAULT
    }

    pub fn is_instance_admin(&self) -> bool {
        self.role == Role::Admin && self.is_instance_admin_workspace()
    }

    pub fn worker_scope(&self) -> WorkerScope {
        WorkerScope::for_workspace(self.workspace)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            // Only public routes run without a caller, and they never ask for one.
            tracing::error!(path = %parts.uri.path(), "a handler asked for the caller of a public route");
            ApiError::Internal
        })
    }
}

/// The workspace the request acts in: the caller's.
#[derive(Debug, Clone, Copy)]
pub struct Workspace(pub WorkspaceId);

impl<S: Send + Sync> FromRequestParts<S> for Workspace {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state)
            .await
            .map(|caller| Workspace(caller.workspace))
    }
}
