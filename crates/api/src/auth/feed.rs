//! Feed tokens: how a feed reader, which can send no header, reads a
//! workspace's Atom feeds. The token rides in the path
//! (`/feeds/{token}/...`); only its SHA-256 is stored, and the store finds
//! it only while the API key that made it is active. A token that is
//! malformed, unknown, deleted or whose key was revoked is answered 404
//! `feed_not_found`, alike, and counted against the client's failed-auth
//! bucket (so tokens cannot be guessed quickly); a valid one spends a
//! token of its key's rate-limit bucket, like the key itself would.

use accord_model::{is_feed_token_shaped, FeedTokenId, WorkspaceId, FEED_TOKEN_PREFIX};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};

use super::guard::{client_addr, count_failure};
use super::limits::{bucket, set_headers};
use crate::{ApiError, ApiState};

/// A fresh feed token: `acf_` and 43 alphanumerics from the operating
/// system's generator.
pub fn new_feed_token() -> String {
    let secret =
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, accord_model::FEED_TOKEN_SECRET_LEN);
    format!("{FEED_TOKEN_PREFIX}{secret}")
}

/// The stored form of a feed token: SHA-256 of the whole token, hex. The
/// token is 256 random bits, so a plain hash is enough.
pub fn hash_feed_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who reads a feed: put in the request by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedReader {
    pub token_id: FeedTokenId,
    pub workspace: WorkspaceId,
    /// The token as given in the path (for the feed's own link).
    pub token: String,
}

impl<S: Send + Sync> FromRequestParts<S> for FeedReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<FeedReader>().cloned().ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a feed handler ran without a feed reader");
            ApiError::Internal
        })
    }
}

/// The token segment of `/feeds/{token}/...`.
fn token_of(path: &str) -> Option<&str> {
    let mut segments = path.trim_start_matches('/').split('/');
    (segments.next() == Some("feeds"))
        .then(|| segments.next())
        .flatten()
}

pub(crate) async fn feed_guard(state: &ApiState, request: Request, next: Next) -> Response {
    let client = client_addr(&request);
    let token = token_of(request.uri().path())
        .filter(|token| is_feed_token_shaped(token))
        .map(str::to_owned);
    let found = match &token {
        Some(token) => {
            state
                .store
                .feed_token_resolve(&hash_feed_token(token), state.queue.now())
                .await
        }
        None => Ok(None),
    };
    let found = match found {
        Ok(found) => found,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let (Some(feed), Some(token)) = (found, token) else {
        if let Some(limited) = count_failure(state, client).await {
            return limited;
        }
        return ApiError::FeedNotFound.into_response();
    };
    let key = match state.store.api_key_get(&feed.key_id).await {
        Ok(Some(stored)) => stored.key,
        Ok(None) => return ApiError::FeedNotFound.into_response(),
        Err(err) => return ApiError::from(err).into_response(),
    };
    let decision = state
        .cluster
        .limiter()
        .check(
            &format!("key:{}", key.id),
            bucket(state.config.rate_limits.for_key(&key)),
        )
        .await;
    if !decision.allowed {
        let mut response = ApiError::RateLimited(decision.retry_after).into_response();
        set_headers(response.headers_mut(), &decision);
        return response;
    }
    let mut request = request;
    request.extensions_mut().insert(FeedReader {
        token_id: feed.id,
        workspace: feed.workspace_id,
        token,
    });
    let mut response = next.run(request).await;
    set_headers(response.headers_mut(), &decision);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_well_formed_unique_and_hashed() {
        let a = new_feed_token();
        assert!(is_feed_token_shaped(&a), "{a}");
        assert_ne!(a, new_feed_token());
        assert_eq!(hash_feed_token(&a).len(), 64);
        assert!(!hash_feed_token(&a).contains(&a[4..]));
    }

    #[test]
    fn the_token_is_the_second_segment() {
        assert_eq!(token_of("/feeds/acf_x/workspace.atom"), Some("acf_x"));
        assert_eq!(token_of("/feeds/acf_x/monitors/m.atom"), Some("acf_x"));
        assert_eq!(token_of("/api/v1/feeds"), None);
    }
}
