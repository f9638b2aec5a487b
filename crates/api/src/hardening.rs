//! Defences that apply to every response and request, matched route or
//! not: the URI length limit, security headers, and CORS (off unless
//! origins are configured). The body size and JSON depth limits live with
//! the JSON extractor, which knows how to name them in its errors.

use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::ApiError;

/// The docs page runs Swagger UI's own scripts and styles, served from here.
const DOCS_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// JSON and text responses never need to load anything.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Refuses over-long URIs with 414 before anything else looks at them.
pub(crate) async fn limit_uri(
    State(max_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let len = request
        .uri()
        .path_and_query()
        .map_or(0, |value| value.as_str().len());
    if len > max_bytes {
        return ApiError::UriTooLong(max_bytes).into_response();
    }
    next.run(request).await
}

/// Security headers on every response; the docs page gets a policy that lets its own scripts run.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let docs = request.uri().path().starts_with("/docs");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if docs { DOCS_POLICY } else { API_POLICY }),
    );
    if !docs && !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// CORS for the configured origins, or `None` (no CORS headers at all:
/// browsers then refuse cross-origin calls).
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                HeaderName::from_static("retry-after"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The nesting depth of a JSON text: the deepest run of open arrays and
/// objects, ignoring brackets inside strings. Linear and allocation-free, so
/// a hostile body is refused before the parser recurses into it.
pub(crate) fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::json_depth;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        for (text, expected) in [
            ("1", 0),
            ("{}", 1),
            (r#"{"a":[1,{"b":[]}]}"#, 4),
            (r#"{"a":"[[[[{{{"}"#, 1),
            (r#"{"a":"\"[[[["}"#, 1),
            (r#"[[],[],[[]]]"#, 3),
        ] {
            assert_eq!(json_depth(text.as_bytes()), expected, "{text}");
        }
        assert_eq!(json_depth("[".repeat(10_000).as_bytes()), 10_000);
    }
}
