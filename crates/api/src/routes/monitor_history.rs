//! A monitor's history: `/api/v1/monitors/{id}/snapshots` (what each run
//! kept, bounded), `.../diff?from=RUN&to=RUN` (what changed between two of
//! its runs) and `.../items` (every item an `extract_items` monitor has
//! seen, as JSON or CSV).
//!
//! Reads only; the queue computes diffs and histories off the async
//! threads.

use accord_model::{
    ErrorBody, ItemPage, ItemStateFilter, RunDiff, SnapshotPage, MAX_ITEM_QUERY_CHARS,
};
use accord_queue::DiffRuns;
use accord_store::ItemQuery;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::items_csv::{field_columns, items_csv};
use super::monitors::MonitorIdPath;
use crate::auth::Workspace;
use crate::extract::{page_limit, QueryParams};
use crate::{ApiError, ApiState};

/// The header that carries the next page's cursor of a CSV export.
pub const NEXT_CURSOR_HEADER: &str = "accord-next-cursor";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SnapshotListParams {
    /// 1 to 100; default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// The snapshots a monitor's runs kept, newest first: what each later run
/// was compared with. Long texts and lists are cut (`truncated`); the diff
/// route compares the whole snapshots.
#[utoipa::path(
    get, path = "/api/v1/monitors/{id}/snapshots", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id"), SnapshotListParams),
    responses(
        (status = 200, body = SnapshotPage),
        (status = 400, description = "Not a monitor id, or a bad cursor or limit", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    )
)]
pub async fn list_snapshots(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
    QueryParams(params): QueryParams<SnapshotListParams>,
) -> Result<Json<SnapshotPage>, ApiError> {
    let limit = page_limit(params.limit, 20, 100)?;
    let items = state
        .queue
        .monitor_snapshots(workspace, id, params.cursor, limit)
        .await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|s| s.run_id))
        .flatten();
    Ok(Json(SnapshotPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffParams {
    /// The earlier run (any run of this monitor that kept a snapshot).
    pub from: i64,
    /// The later run.
    pub to: i64,
}

/// What changed between the snapshots of two runs of this monitor:
/// `page_change`, the unified diff and hunks of the normalised text with
/// added and removed line counts, and `highlight`, the visual diff image
/// the `to` run stored (when its visual change counted); `extract_items`,
/// the items new, removed and changed. A run of another monitor, or one without a snapshot, is
/// refused naming `from` or `to`.
#[utoipa::path(
    get, path = "/api/v1/monitors/{id}/diff", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id"), DiffParams),
    responses(
        (status = 200, body = RunDiff),
        (status = 400, description = "Not a monitor id, or `from` or `to` missing or not a number", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 422, description = "A run of another monitor, a run without a snapshot, or a smoke_check monitor", body = ErrorBody),
    )
)]
pub async fn monitor_diff(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
    QueryParams(params): QueryParams<DiffParams>,
) -> Result<Json<RunDiff>, ApiError> {
    let runs = DiffRuns {
        from: params.from,
        to: params.to,
    };
    Ok(Json(state.queue.monitor_diff(workspace, id, runs).await?))
}

/// The formats of an item history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemFormat {
    Json,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemListParams {
    /// `csv` or `json`; without it, CSV when `Accept` asks for `text/csv`.
    // Inline: as a `$ref` it named a schema the document did not hold.
    #[param(inline)]
    pub format: Option<ItemFormat>,
    /// `current` (on the latest snapshot), `removed` (seen before, not on
    /// the latest snapshot) or `all`; default `all`.
    #[param(inline)]
    pub state: Option<ItemStateFilter>,
    /// Only items whose key or a field value contains this text, ignoring
    /// case: 1 to 200 characters.
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
    /// 1 to 10000; default 1000.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (in CSV, the
    /// `Accord-Next-Cursor` header), with the same `state` and `q`.
    #[param(max_length = 20)]
    pub cursor: Option<String>,
}

/// The item history of an `extract_items` monitor: every item it has
/// seen, in the order first seen, with the run and time it was first and
/// last seen, the run that no longer found it (`removed`, with `status`
/// `removed`), how many times its fields changed, and its values when last
/// seen. Filtered by `state` and a text query `q`, paged with a cursor.
/// `?format=csv` (or `Accept: text/csv`) exports CSV, one column per field
/// any item of the history has (the same columns on every page).
///
/// The history is kept up to date by each run's completion, in the same
/// transaction as its outcome; monitors that ran before it existed start
/// from their latest snapshot.
#[utoipa::path(
    get, path = "/api/v1/monitors/{id}/items", tag = "monitors",
    params(("id" = String, Path, format = Uuid, description = "Monitor id"), ItemListParams),
    responses(
        (status = 200, description = "A page of the history: JSON, or CSV (with the next page's cursor in `accord-next-cursor`)",
            content((ItemPage = "application/json"), (String = "text/csv")),
            headers(("accord-next-cursor" = String, description = "CSV only: the next page's cursor, when there is one"))),
        (status = 400, description = "Not a monitor id, or a bad cursor, limit, format, state or query", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
        (status = 422, description = "Not an extract_items monitor", body = ErrorBody),
    )
)]
pub async fn monitor_items(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    MonitorIdPath(id): MonitorIdPath,
    headers: HeaderMap,
    QueryParams(params): QueryParams<ItemListParams>,
) -> Result<Response, ApiError> {
    let limit = page_limit(params.limit, 1_000, 10_000)?;
    let after: Option<i64> = match &params.cursor {
        None => None,
        Some(cursor) => Some(
            cursor
                .parse()
                .ok()
                .filter(|position: &i64| *position >= 0)
                .ok_or_else(|| ApiError::InvalidQuery(format!("invalid cursor {cursor:?}")))?,
        ),
    };
    if let Some(q) = &params.q {
        let chars = q.chars().count();
        if chars == 0 || chars > MAX_ITEM_QUERY_CHARS {
            return Err(ApiError::InvalidQuery(format!(
                "q must be 1 to {MAX_ITEM_QUERY_CHARS} characters, not {chars}"
            )));
        }
    }
    let format = params.format.unwrap_or_else(|| {
        let wants_csv = headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv"));
        if wants_csv {
            ItemFormat::Csv
        } else {
            ItemFormat::Json
        }
    });
    let query = ItemQuery {
        state: params.state.unwrap_or_default(),
        text: params.q,
        after,
        limit,
    };
    let page = state.queue.monitor_items(workspace, id, &query).await?;
    let next_cursor = page.next_cursor.map(|n| n.to_string());
    match format {
        ItemFormat::Json => Ok(Json(ItemPage {
            items: page.items,
            next_cursor,
        })
        .into_response()),
        ItemFormat::Csv => {
            let fields = state.queue.monitor_item_fields(workspace, id).await?;
            let columns = field_columns(&fields);
            let body = tokio::task::spawn_blocking(move || items_csv(&page.items, &columns))
                .await
                .map_err(|err| {
                    tracing::error!(error = %err, "the CSV export did not finish");
                    ApiError::Internal
                })?;
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(disposition) =
                HeaderValue::from_str(&format!("attachment; filename=\"monitor-{id}-items.csv\""))
            {
                headers.insert(header::CONTENT_DISPOSITION, disposition);
            }
            if let Some(next) = next_cursor.and_then(|n| HeaderValue::from_str(&n).ok()) {
                headers.insert(HeaderName::from_static(NEXT_CURSOR_HEADER), next);
            }
            Ok(response)
        }
    }
}
