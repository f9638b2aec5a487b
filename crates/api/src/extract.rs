//! Request extractors that turn every malformed input into the right entry
//! of the error table instead of axum's plain-text rejections.

use accord_model::JobId;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body parsed strictly: wrong content type (415), too large (413),
/// not JSON (400 `malformed_json`), unknown field, bad enum value or wrong
/// type (422, each with its own code and the path of the offending field).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(is_json_media_type);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limits = req
            .extensions()
            .get::<BodyLimits>()
            .copied()
            .unwrap_or(BodyLimits {
                bytes: usize::MAX,
                depth: usize::MAX,
                read_timeout: std::time::Duration::MAX,
            });
        let read = Bytes::from_request(req, state);
        let bytes = tokio::time::timeout(limits.read_timeout, read)
            .await
            .map_err(|_elapsed| ApiError::RequestTimeout(limits.read_timeout))?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limits.bytes)
                } else {
                    ApiError::MalformedJson(rejection.body_text())
                }
            })?;
        if let Err(err) = std::str::from_utf8(&bytes) {
            return Err(ApiError::MalformedJson(format!(
                "the body is not UTF-8 (invalid byte at offset {})",
                err.valid_up_to()
            )));
        }
        if crate::hardening::json_depth(&bytes) > limits.depth {
            return Err(ApiError::JsonTooDeep(limits.depth));
        }
        if let Some(offset) = escaped_nul(&bytes) {
            return Err(ApiError::InvalidField(format!(
                "a string holds the NUL character (\\u0000 at byte {offset}), which no text field accepts"
            )));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// The configured body limits, put into request extensions so rejections can name them.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub bytes: usize,
    pub depth: usize,
    pub read_timeout: std::time::Duration,
}

/// `application/json` or `application/*+json`, with no charset or UTF-8
/// (JSON on the wire is UTF-8; a body declared in another charset would be
/// misread).
fn is_json_media_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let json =
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    json && parts.all(|param| {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        !name.trim().eq_ignore_ascii_case("charset")
            || matches!(
                value.trim().trim_matches('"').to_ascii_lowercase().as_str(),
                "utf-8" | "utf8"
            )
    })
}

/// Where a JSON text escapes a NUL character (`\u0000`), if it does.
/// PostgreSQL cannot store NUL in text, so no field may hold one, on either
/// backend. Backslashes occur only inside strings, so pairing them is
/// enough to tell an escape from an escaped backslash.
fn escaped_nul(bytes: &[u8]) -> Option<usize> {
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' {
            if bytes[index + 1..].starts_with(b"u0000") {
                return Some(index);
            }
            index += 2;
        } else {
            index += 1;
        }
    }
    None
}

/// A body that must be a JSON object. serde's derived structs also accept
/// an array of their members in order; a patch whose members are all
/// optional would then take `[null, null]` as an empty change. Wrap such a
/// body in this to refuse anything but an object (`422 invalid_field`).
#[derive(Debug, Clone)]
pub struct Object<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }

        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        classify(err.into_inner(), &path, bytes)
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::MalformedJson(err.to_string()))?;
    Ok(value)
}

fn classify(err: serde_json::Error, path: &str, bytes: &[u8]) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        // serde_json reports some type mismatches as syntax errors (an enum
        // given as `{}` is "expected value"): only a body that is not JSON
        // at all is malformed.
        Category::Syntax | Category::Eof if !is_json(bytes) => {
            ApiError::MalformedJson(err.to_string())
        }
        Category::Io => ApiError::MalformedJson(err.to_string()),
        Category::Syntax | Category::Eof | Category::Data => {
            let text = err.to_string();
            let at = if path.is_empty() || path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            let message = format!("{at}{}", strip_position(&text));
            if text.starts_with("unknown field") {
                ApiError::UnknownField(message)
            } else if text.starts_with("unknown variant") {
                ApiError::InvalidEnumValue(message)
            } else {
                ApiError::InvalidField(message)
            }
        }
    }
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// serde_json ends data errors with " at line 1 column 42"; the path says more.
fn strip_position(text: &str) -> &str {
    match text.rfind(" at line ") {
        Some(index) => &text[..index],
        None => text,
    }
}

/// A page size: the default when absent, else 1 to `max` (`400 invalid_query` otherwise).
pub(crate) fn page_limit(requested: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::InvalidQuery(format!(
            "limit must be between 1 and {max}, not {n}"
        ))),
    }
}

/// Query parameters with rejections mapped to `400 invalid_query`.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
        // Decoded, a `%00` would reach the store, which cannot keep it.
        let query = parts.uri.query().unwrap_or("");
        if query.contains("%00") {
            return Err(ApiError::InvalidQuery(
                "query parameters must not contain the NUL character (%00)".to_owned(),
            ));
        }
        Ok(QueryParams(value))
    }
}

/// A `{id}` path segment that must be a job id (`400 invalid_id` otherwise).
#[derive(Debug, Clone, Copy)]
pub struct JobIdPath(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidId(rejection.body_text()))?;
        raw.parse()
            .map(JobIdPath)
            .map_err(|_| ApiError::InvalidId(format!("{raw:?} is not a job id (expected a UUID)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected_code: &str, expected_message: &str) {
        let err = parse_json::<accord_model::NewJob>(body.as_bytes()).unwrap_err();
        let (_, code) = err.status_and_code();
        assert_eq!(code, expected_code, "{body}: {err}");
        assert!(err.to_string().contains(expected_message), "{body}: {err}");
    }

    /// Fuzzing the worker protocol's inputs through the real extractor:
    /// every body is accepted or refused with a 4xx, never a panic or a 5xx.
    #[test]
    fn worker_protocol_inputs_are_refused_with_4xx() {
        use accord_model::{
            ClaimRequest, CompleteRequest, FailRequest, HeartbeatRequest, ReleaseRequest,
        };
        use accord_test_support::fuzz::{fuzz, FuzzTarget};

        async fn answer<T: DeserializeOwned>(body: Vec<u8>) -> Option<ApiError> {
            let mut request = Request::new(axum::body::Body::from(body));
            request.headers_mut().insert(
                CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            request.extensions_mut().insert(BodyLimits {
                bytes: 2 * 1024 * 1024,
                depth: 64,
                read_timeout: std::time::Duration::from_secs(5),
            });
            JsonBody::<T>::from_request(request, &()).await.err()
        }

        let target = FuzzTarget {
            name: "worker_protocol",
            dictionary: &[
                r#""worker_id":"#,
                r#""attempt":4294967296"#,
                r#""job_id":"not-a-uuid""#,
                r#""leases":["#,
                r#""items":["#,
                r#""kind":"retryable""#,
                "\\u0000",
                "[",
                "{",
                "\"",
                "-1",
                "1e400",
            ],
            max_len: 256 * 1024,
            per_input: std::time::Duration::from_secs(5),
        };
        fuzz(&target, |input| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(|err| err.to_string())?;
            let input = input.to_vec();
            let errors = runtime.block_on(async {
                [
                    answer::<ClaimRequest>(input.clone()).await,
                    answer::<HeartbeatRequest>(input.clone()).await,
                    answer::<CompleteRequest>(input.clone()).await,
                    answer::<FailRequest>(input.clone()).await,
                    answer::<ReleaseRequest>(input).await,
                ]
            });
            for error in errors.into_iter().flatten() {
                let (status, code) = error.status_and_code();
                if !status.is_client_error() {
                    return Err(format!("answered {status} {code}: {error}"));
                }
            }
            Ok(())
        });
    }

    #[test]
    fn only_utf8_json_is_json() {
        for (value, expected) in [
            ("application/json", true),
            ("Application/JSON; charset=UTF-8", true),
            ("application/json; charset=\"utf-8\"", true),
            ("application/problem+json", true),
            ("application/json; charset=utf-16", false),
            ("application/json;charset=latin1", false),
            ("text/json", false),
            ("text/plain", false),
            ("", false),
        ] {
            assert_eq!(is_json_media_type(value), expected, "{value}");
        }
    }

    #[test]
    fn escaped_nuls_are_found() {
        for (json, expected) in [
            (r#"{"a":"\u0000"}"#, Some(6)),
            (r#"{"a":"x\\u0000"}"#, None),
            (r#"{"a":"x\\\u0000"}"#, Some(9)),
            (r#"{"a":"\u00001"}"#, Some(6)),
            (r#"{"a":"\u0001"}"#, None),
            (r#"{"a":"\"}"#, None),
            ("\\", None),
        ] {
            assert_eq!(escaped_nul(json.as_bytes()), expected, "{json}");
        }
    }

    #[test]
    fn body_errors_are_classified() {
        let nav = r#"{"action":"navigate","url":"https://e.com/"}"#;
        check("{", "malformed_json", "EOF");
        check("not json", "malformed_json", "expected");
        check(
            &format!(r#"{{"steps":[{nav}]}} trailing"#),
            "malformed_json",
            "trailing",
        );
        check(
            &format!(r#"{{"steps":[{nav}],"nope":1}}"#),
            "unknown_field",
            "unknown field `nope`",
        );
        check(
            &format!(r#"{{"steps":[{nav}],"priority":"asap"}}"#),
            "invalid_enum_value",
            "priority: unknown variant `asap`",
        );
        check(
            &format!(r#"{{"steps":[{nav}],"max_attempts":"three"}}"#),
            "invalid_field",
            "max_attempts: invalid type",
        );
        // Valid JSON of the wrong shape is a field error, even where
        // serde_json calls it a syntax error.
        check(
            &format!(r#"{{"steps":[{nav}],"priority":{{}}}}"#),
            "invalid_field",
            "priority",
        );
        check(
            r#"{"priority":"high"}"#,
            "invalid_field",
            "missing field `steps`",
        );
        check(
            r#"{"steps":[{"action":"navigate","url":"ftp://x/"}]}"#,
            "invalid_field",
            "http or https",
        );
        // Deep nesting is refused at the first level that does not fit the schema.
        check(
            &format!(r#"{{"steps":{}{}}}"#, "[".repeat(5000), "]".repeat(5000)),
            "invalid_field",
            "steps[0]",
        );
    }
}
