//! `GET /api/v1/audit`: the workspace's audit log, newest first, with filters.

use accord_model::{ApiKeyId, AuditOutcome, AuditPage, ErrorBody};
use accord_store::AuditFilter;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::extract::{page_limit, QueryParams};
use crate::routes::keys::target_workspace;
use crate::{ApiError, ApiState};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this operation, e.g. `create_job`.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only calls made with this key (its id).
    pub key_id: Option<ApiKeyId>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    pub before: Option<i64>,
    /// 1 to 500; default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Another workspace (id or name); only for admins of the default workspace.
    pub workspace: Option<String>,
}

/// Timestamps a query may name: outside these years a value is a mistake.
const QUERY_YEARS: std::ops::Range<i32> = 1970..10_000;

/// Read the audit log: every mutating call and every failed authentication.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "access",
    params(AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such workspace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_audit(
    State(state): State<ApiState>,
    caller: Caller,
    QueryParams(params): QueryParams<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page_limit(params.limit, 100, 500)?;
    for (name, at) in [("since", params.since), ("until", params.until)] {
        if let Some(at) = at {
            let year = chrono::Datelike::year(&at);
            if !QUERY_YEARS.contains(&year) {
                return Err(ApiError::InvalidQuery(format!(
                    "{name} must be in the years {} to {}, not {year}",
                    QUERY_YEARS.start,
                    QUERY_YEARS.end - 1
                )));
            }
        }
    }
    let workspace = target_workspace(&state, &caller, params.workspace.as_deref()).await?;
    let filter = AuditFilter {
        action: params.action,
        outcome: params.outcome,
        key_id: params.key_id,
        since: params.since,
        until: params.until,
        before: params.before,
        limit,
    };
    let items = state.store.audit_list(workspace, &filter).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|entry| entry.id))
        .flatten();
    Ok(Json(AuditPage { items, next_cursor }))
}
