//! Atom feeds of monitor events, and the feed tokens that open them:
//! `/api/v1/feed-tokens` (made by a key and bound to it, the token shown
//! once; listed and deleted within the workspace), and the feeds a reader
//! polls with the token in the path: `/feeds/{token}/workspace.atom` and
//! `/feeds/{token}/monitors/{id}.atom`, each the newest 50 runs that
//! reported something.
//!
//! The token check, the answer to a bad token and the rate limit are the
//! guard's ([`crate::auth::FeedReader`]); the Atom is the notify crate's.

use accord_model::{
    CreatedFeedToken, ErrorBody, FeedToken, FeedTokenId, FeedTokenList, FeedTokenView, MonitorId,
    NewFeedToken, MAX_FEED_ENTRIES, MAX_FEED_TOKENS,
};
use accord_notify::atom::{monitor_feed_id, render_feed, workspace_feed_id, FeedMeta};
use accord_store::FeedEntry;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::auth::{hash_feed_token, new_feed_token, AuditTarget, Caller, FeedReader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState};

/// Make a feed token: it opens this workspace's Atom feeds, in a URL
/// (`/feeds/{token}/workspace.atom`), for as long as the key that made it
/// is active. The token is in this answer only.
#[utoipa::path(
    post, path = "/api/v1/feed-tokens", tag = "feeds",
    request_body = NewFeedToken,
    responses(
        (status = 201, body = CreatedFeedToken),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid name, or too many tokens", body = ErrorBody),
    )
)]
pub async fn create_feed_token(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewFeedToken>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<CreatedFeedToken>), ApiError> {
    let name = new
        .validate()
        .map_err(|err| ApiError::Validation(err.to_string()))?;
    let held = state
        .store
        .feed_token_list(caller.workspace, MAX_FEED_TOKENS)
        .await?;
    if held.len() >= MAX_FEED_TOKENS as usize {
        return Err(ApiError::Validation(format!(
            "name: a workspace holds at most {MAX_FEED_TOKENS} feed tokens; delete one first"
        )));
    }
    let token = new_feed_token();
    let stored = FeedToken {
        id: FeedTokenId::new(),
        workspace_id: caller.workspace,
        key_id: caller.key_id.clone(),
        name,
        created_at: state.queue.now(),
    };
    state
        .store
        .feed_token_insert(&stored, &hash_feed_token(&token))
        .await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(stored.id.to_string())),
        Json(CreatedFeedToken {
            view: FeedTokenView::from(&stored),
            workspace_feed: format!("/feeds/{token}/workspace.atom"),
            monitor_feed: format!("/feeds/{token}/monitors/{{monitor_id}}.atom"),
            token,
        }),
    ))
}

/// The workspace's feed tokens, newest first (never the tokens themselves).
#[utoipa::path(
    get, path = "/api/v1/feed-tokens", tag = "feeds",
    responses((status = 200, body = FeedTokenList))
)]
pub async fn list_feed_tokens(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<FeedTokenList>, ApiError> {
    let tokens = state
        .store
        .feed_token_list(caller.workspace, MAX_FEED_TOKENS)
        .await?;
    Ok(Json(FeedTokenList {
        items: tokens.iter().map(FeedTokenView::from).collect(),
    }))
}

/// Delete a feed token: its feeds answer 404 from now on.
#[utoipa::path(
    delete, path = "/api/v1/feed-tokens/{id}", tag = "feeds",
    params(("id" = String, Path, format = Uuid, description = "Feed token id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a feed token id", body = ErrorBody),
        (status = 404, description = "No such feed token", body = ErrorBody),
    )
)]
pub async fn delete_feed_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    let id: FeedTokenId = raw.parse().map_err(|_| {
        ApiError::InvalidId(format!("{raw:?} is not a feed token id (expected a UUID)"))
    })?;
    if !state.store.feed_token_delete(caller.workspace, id).await? {
        return Err(ApiError::FeedTokenNotFound(format!(
            "feed token {id} not found"
        )));
    }
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditTarget(id.to_string())),
    ))
}

fn atom(xml: String) -> Response {
    let mut response = xml.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/atom+xml; charset=utf-8"),
    );
    // The URL holds a credential: no shared cache should keep the answer.
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=60"),
    );
    response
}

fn self_url(state: &ApiState, path: &str) -> Option<String> {
    let base = state.config.public_url.as_ref()?;
    base.join(path.trim_start_matches('/'))
        .ok()
        .map(|url| url.to_string())
}

async fn entries(
    state: &ApiState,
    reader: &FeedReader,
    monitor: Option<MonitorId>,
) -> Result<Vec<FeedEntry>, ApiError> {
    Ok(state
        .store
        .feed_entries(reader.workspace, monitor, MAX_FEED_ENTRIES)
        .await?)
}

/// The workspace's Atom feed: its monitors' newest 50 runs that reported
/// something (changed, new items, condition met, failed, recovered). The
/// token is the credential: an unknown, deleted or revoked one is 404.
#[utoipa::path(
    get, path = "/feeds/{token}/workspace.atom", tag = "feeds",
    params(("token" = String, Path, pattern = "^acf_[A-Za-z0-9]{43}$", description = "A feed token")),
    responses(
        (status = 200, description = "An Atom feed", content_type = "application/atom+xml", body = String),
        (status = 404, description = "No such feed", body = ErrorBody),
    )
)]
pub async fn workspace_feed(
    State(state): State<ApiState>,
    reader: FeedReader,
) -> Result<Response, ApiError> {
    let workspace = state.store.workspace_get(reader.workspace).await?;
    let name = workspace.map_or_else(|| reader.workspace.to_string(), |w| w.name);
    let entries = entries(&state, &reader, None).await?;
    let meta = FeedMeta {
        id: workspace_feed_id(&reader.workspace.to_string()),
        title: format!("Accord: monitors of {name}"),
        self_url: self_url(&state, &format!("/feeds/{}/workspace.atom", reader.token)),
        empty_updated: state.queue.now(),
    };
    Ok(atom(render_feed(
        &meta,
        &entries,
        state.config.public_url.as_ref(),
    )))
}

/// One monitor's Atom feed (`{file}` is the monitor id and `.atom`): its
/// newest 50 runs that reported something. A monitor of another workspace
/// is 404, like an unknown token.
#[utoipa::path(
    get, path = "/feeds/{token}/monitors/{file}", tag = "feeds",
    params(
        ("token" = String, Path, pattern = "^acf_[A-Za-z0-9]{43}$", description = "A feed token"),
        ("file" = String, Path, pattern = "^[0-9a-f-]{36}\\.atom$", description = "The monitor id, then `.atom`"),
    ),
    responses(
        (status = 200, description = "An Atom feed", content_type = "application/atom+xml", body = String),
        (status = 404, description = "No such feed", body = ErrorBody),
    )
)]
pub async fn monitor_feed(
    State(state): State<ApiState>,
    reader: FeedReader,
    Path((_token, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id: MonitorId = file
        .strip_suffix(".atom")
        .and_then(|id| id.parse().ok())
        .ok_or(ApiError::FeedNotFound)?;
    let monitor = state
        .store
        .monitor_get(reader.workspace, id)
        .await?
        .ok_or(ApiError::FeedNotFound)?;
    let entries = entries(&state, &reader, Some(id)).await?;
    let meta = FeedMeta {
        id: monitor_feed_id(&id.to_string()),
        title: format!("Accord: {}", monitor.name),
        self_url: self_url(&state, &format!("/feeds/{}/monitors/{file}", reader.token)),
        empty_updated: monitor.updated_at,
    };
    Ok(atom(render_feed(
        &meta,
        &entries,
        state.config.public_url.as_ref(),
    )))
}
