//! Artifacts over HTTP: the worker's streamed upload (worker protocol) and
//! the REST reads of a job's artifacts and evidence manifest, with the
//! same access rules as the job itself (its workspace, a role that may
//! read jobs).
//!
//! Bodies here are bytes, not JSON: the upload streams into the blob store
//! as it arrives (never buffered whole), and downloads stream out of it,
//! whole or by range. The JSON body limit does not apply to the upload;
//! the artifact size cap does, checked on the declared `Content-Length`
//! before a byte is read.

use std::ops::Range;
use std::time::Duration;

use accord_artifacts::Declared;
use accord_model::{
    ArtifactList, ArtifactName, ErrorBody, EvidenceManifest, JobId, LeaseRef, Sha256Digest,
    StoredArtifact, WorkerId,
};
use accord_queue::ArtifactUpload;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use super::worker::bound;
use crate::auth::{Caller, Workspace};
use crate::extract::{JobIdPath, QueryParams};
use crate::{ApiError, ApiState};

/// Raw bytes, in the OpenAPI document.
#[derive(Debug)]
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// An artifact's bytes as served: any media type, so any value (a JSON
/// artifact parses as JSON, a PNG does not parse at all).
#[derive(Debug)]
pub struct ArtifactBytes;

impl utoipa::PartialSchema for ArtifactBytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType};
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some("The artifact's bytes, in its own media type."))
            .into()
    }
}

impl utoipa::ToSchema for ArtifactBytes {}

/// The header an upload declares its bytes' SHA-256 in (lowercase hex).
pub const SHA256_HEADER: &str = "x-accord-sha256";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The worker's id, as on its claim.
    #[param(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ManifestParams {
    /// The attempt whose manifest to read; default: the latest attempt that has one.
    #[param(minimum = 1)]
    pub attempt: Option<u32>,
}

fn parse_name(raw: &str) -> Result<ArtifactName, ApiError> {
    ArtifactName::new(raw).map_err(|err| ApiError::InvalidArtifactName(format!("{raw:?}: {err}")))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value.to_str().map_err(|_| {
                ApiError::InvalidArtifactHeader(format!("{name} must be visible ASCII"))
            })
        })
        .transpose()
}

/// Stream a job's artifact to the control plane, fenced by the lease.
///
/// The body is the artifact's bytes, with its media type in `Content-Type`,
/// its size in `Content-Length` and its SHA-256 in `X-Accord-Sha256`. The
/// bytes are hashed as they arrive and kept only if they match. A later
/// attempt's upload of a name replaces the earlier one; names starting
/// with `manifest-` are reserved.
#[utoipa::path(
    put, path = "/internal/v1/worker/jobs/{job_id}/attempts/{attempt}/artifacts/{name}", tag = "worker",
    params(
        ("job_id" = String, Path, format = Uuid, description = "The leased job"),
        ("attempt" = u32, Path, minimum = 1, description = "The lease's attempt (its fencing token)"),
        ("name" = String, Path, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", description = "The artifact's name within the job"),
        ("X-Accord-Sha256" = String, Header, pattern = "^[0-9a-f]{64}$", description = "SHA-256 of the body, lowercase hex"),
        UploadParams,
    ),
    request_body(content = Binary, content_type = "application/octet-stream", description = "The artifact's bytes, with their size in Content-Length (at most the server's artifact size limit); send the artifact's own media type (e.g. `image/png`) as Content-Type"),
    responses(
        (status = 201, description = "Stored", body = StoredArtifact),
        (status = 400, description = "Bad name, header or worker id, or the body broke off", body = ErrorBody),
        (status = 409, description = "The worker does not hold this lease (`stale_lease`), or the job holds its most artifacts", body = ErrorBody),
        (status = 411, description = "No Content-Length", body = ErrorBody),
        (status = 413, description = "Over the artifact size limit, or over the workspace's quota", body = ErrorBody),
        (status = 422, description = "The bytes do not hash to the declared SHA-256", body = ErrorBody),
        (status = 503, description = "Database or artifact storage unavailable", body = ErrorBody),
    )
)]
pub async fn upload_artifact(
    State(state): State<ApiState>,
    caller: Caller,
    Path((job_id, attempt, name)): Path<(String, String, String)>,
    QueryParams(params): QueryParams<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<StoredArtifact>), ApiError> {
    let job_id: JobId = job_id.parse().map_err(|_| {
        ApiError::InvalidId(format!("{job_id:?} is not a job id (expected a UUID)"))
    })?;
    let attempt: u32 = attempt
        .parse()
        .ok()
        .filter(|attempt| *attempt >= 1)
        .ok_or_else(|| ApiError::InvalidId(format!("{attempt:?} is not an attempt number")))?;
    let name = parse_name(&name)?;
    let worker_id = WorkerId::new(params.worker_id)
        .map_err(|err| ApiError::InvalidQuery(format!("worker_id: {err}")))?;
    let worker_id = bound(&caller, &worker_id)?;
    let size: u64 = match header_text(&headers, header::CONTENT_LENGTH.as_str())? {
        Some(text) => text.trim().parse().map_err(|_| {
            ApiError::InvalidArtifactHeader(format!("Content-Length {text:?} is not a size"))
        })?,
        None => return Err(ApiError::LengthRequired),
    };
    let max = state.queue.config().artifacts.max_bytes;
    if size > max {
        return Err(ApiError::ArtifactTooLarge(format!(
            "an artifact of {size} bytes is larger than the limit of {max} bytes"
        )));
    }
    let sha256: Sha256Digest = header_text(&headers, SHA256_HEADER)?
        .ok_or_else(|| {
            ApiError::InvalidArtifactHeader(
                "X-Accord-Sha256 (the body's SHA-256) is missing".into(),
            )
        })?
        .parse()
        .map_err(|err| ApiError::InvalidArtifactHeader(format!("X-Accord-Sha256: {err}")))?;
    let content_type = header_text(&headers, header::CONTENT_TYPE.as_str())?
        .ok_or_else(|| {
            ApiError::InvalidArtifactHeader(
                "Content-Type (the artifact's media type) is missing".into(),
            )
        })?
        .to_owned();
    let upload = ArtifactUpload {
        worker_id,
        lease: LeaseRef { job_id, attempt },
        name,
        content_type,
        declared: Declared { sha256, size },
    };
    let body = with_read_timeout(body.into_data_stream(), state.config.body_read_timeout);
    let stored = state.queue.upload_artifact(upload, body).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// The body's chunks, each of which must arrive within `timeout` of the
/// previous one: a client that stops sending ends the upload instead of
/// holding it open.
fn with_read_timeout<S>(
    body: S,
    timeout: Duration,
) -> impl Stream<Item = Result<Bytes, String>> + Send
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin,
{
    futures::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(timeout, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(err))) => Some((Err(err.to_string()), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(format!(
                    "no bytes arrived for {} s; the upload was abandoned",
                    timeout.as_secs()
                )),
                None,
            )),
        }
    })
}

/// A job's artifacts, by name: what each run captured, and the evidence
/// manifest of each finished attempt (`manifest-<attempt>.json`).
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/artifacts", tag = "jobs",
    params(("id" = String, Path, format = Uuid, description = "Job id")),
    responses(
        (status = 200, body = ArtifactList),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_artifacts(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JobIdPath(id): JobIdPath,
) -> Result<Json<ArtifactList>, ApiError> {
    let items = state.queue.artifacts(workspace, id).await?;
    Ok(Json(ArtifactList { items }))
}

/// Download an artifact: its bytes with its media type, `ETag` (its
/// SHA-256, quoted), `If-None-Match` (304) and single byte ranges (206;
/// 416 when the range starts past the end).
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/artifacts/{name}", tag = "jobs",
    params(
        ("id" = String, Path, format = Uuid, description = "Job id"),
        ("name" = String, Path, description = "The artifact's name"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`; others are ignored"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the caller holds"),
        ("If-Range" = Option<String>, Header, description = "Honour Range only while the ETag is still this one"),
    ),
    responses(
        (status = 200, description = "The whole artifact, with its own media type as Content-Type", content_type = "*/*", body = ArtifactBytes),
        (status = 206, description = "The range asked for, with the artifact's media type as Content-Type", content_type = "*/*", body = ArtifactBytes),
        (status = 304, description = "The caller's copy (If-None-Match) is current"),
        (status = 400, description = "Not a job id or an artifact name", body = ErrorBody),
        (status = 404, description = "No such job or artifact", body = ErrorBody),
        (status = 416, description = "The range starts past the end", body = ErrorBody),
        (status = 503, description = "Database or artifact storage unavailable", body = ErrorBody),
    )
)]
pub async fn get_artifact(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: JobId = id
        .parse()
        .map_err(|_| ApiError::InvalidId(format!("{id:?} is not a job id (expected a UUID)")))?;
    let name = parse_name(&name)?;
    let artifact = state.queue.artifact(workspace, id, &name).await?;
    let etag = etag(&artifact.sha256);
    if let Some(held) = headers.get(header::IF_NONE_MATCH) {
        if etag_matches(held, &artifact.sha256) {
            return Ok(not_modified(&etag));
        }
    }
    let range_allowed = match headers.get(header::IF_RANGE) {
        Some(value) => value.to_str().is_ok_and(|v| v.trim() == etag),
        None => true,
    };
    let range = match headers.get(header::RANGE) {
        Some(value) if range_allowed => parse_range(value, artifact.size)?,
        _ => None,
    };
    let read = state.queue.open_artifact(&artifact, range.clone()).await?;
    let served = read.range.clone();
    let body = Body::from_stream(read.stream.map_err(|err| {
        tracing::warn!(error = %err, "artifact download broke off");
        std::io::Error::other(err.to_string())
    }));
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type(&artifact.content_type));
    headers.insert(header::CONTENT_LENGTH, (served.end - served.start).into());
    headers.insert(header::ETAG, header_value(&etag));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    // Always a download, never rendered in the API's origin; the name is
    // letters, digits, `.`, `_` and `-` only, so quoting it is enough.
    headers.insert(
        header::CONTENT_DISPOSITION,
        header_value(&format!("attachment; filename=\"{name}\"")),
    );
    if range.is_some() {
        headers.insert(
            header::CONTENT_RANGE,
            header_value(&format!(
                "bytes {}-{}/{}",
                served.start,
                served.end - 1,
                read.size
            )),
        );
    }
    Ok(response)
}

/// The evidence manifest of a finished attempt: the job spec, engine,
/// worker, timings, final URL, outcome and every artifact with its size
/// and SHA-256, as the canonical JSON whose SHA-256 is its `ETag` (and its
/// digest in the artifact list, as `manifest-<attempt>.json`).
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/manifest", tag = "jobs",
    params(("id" = String, Path, format = Uuid, description = "Job id"), ManifestParams),
    responses(
        (status = 200, description = "The manifest, byte for byte as stored", body = EvidenceManifest),
        (status = 400, description = "Not a job id, or a bad attempt", body = ErrorBody),
        (status = 404, description = "No such job, or no manifest (yet)", body = ErrorBody),
        (status = 503, description = "Database or artifact storage unavailable", body = ErrorBody),
    )
)]
pub async fn get_manifest(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JobIdPath(id): JobIdPath,
    QueryParams(params): QueryParams<ManifestParams>,
) -> Result<Response, ApiError> {
    if params.attempt == Some(0) {
        return Err(ApiError::InvalidQuery("attempt must be at least 1".into()));
    }
    let (row, bytes) = state.queue.manifest(workspace, id, params.attempt).await?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::ETAG, header_value(&etag(&row.sha256)));
    headers.insert("x-accord-manifest-attempt", HeaderValue::from(row.attempt));
    Ok(response)
}

fn etag(sha256: &Sha256Digest) -> String {
    format!("\"{sha256}\"")
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("built from checked ASCII")
}

/// The stored media type (checked at upload), or a neutral one.
fn content_type(stored: &str) -> HeaderValue {
    HeaderValue::from_str(stored)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    response
        .headers_mut()
        .insert(header::ETAG, header_value(etag));
    response
}

/// Whether `If-None-Match` names this digest (weak or strong) or is `*`.
fn etag_matches(held: &HeaderValue, sha256: &Sha256Digest) -> bool {
    let Ok(held) = held.to_str() else {
        return false;
    };
    let ours = sha256.to_hex();
    held.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == ours)
}

/// A single byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) within `size`
/// bytes, as `start..end`. A header that is not one such range is ignored
/// (RFC 9110 lets a server serve the whole representation instead);
/// a range starting past the end is refused (416).
fn parse_range(value: &HeaderValue, size: u64) -> Result<Option<Range<u64>>, ApiError> {
    let Some(spec) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let range = match (number(first), number(last)) {
        (Some(start), Some(end)) if start <= end => start..end.saturating_add(1).min(size),
        (Some(start), None) if last.is_empty() => start..size,
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 {
                return Err(ApiError::RangeNotSatisfiable(size));
            }
            size.saturating_sub(suffix)..size
        }
        _ => return Ok(None),
    };
    if range.start >= size {
        return Err(ApiError::RangeNotSatisfiable(size));
    }
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        #[derive(Debug, PartialEq)]
        enum Expected {
            Whole,
            Part(Range<u64>),
            Unsatisfiable,
        }
        use Expected::*;
        let check = |header: &str, size: u64, expected: Expected| {
            let value = HeaderValue::from_str(header).unwrap();
            let got = match parse_range(&value, size) {
                Ok(None) => Whole,
                Ok(Some(range)) => Part(range),
                Err(ApiError::RangeNotSatisfiable(s)) => {
                    assert_eq!(s, size);
                    Unsatisfiable
                }
                Err(other) => panic!("{header}: {other}"),
            };
            assert_eq!(got, expected, "{header} of {size}");
        };
        check("bytes=0-9", 100, Part(0..10));
        check("bytes=90-", 100, Part(90..100));
        check("bytes=-10", 100, Part(90..100));
        check("bytes=-1000", 100, Part(0..100));
        check("bytes=95-200", 100, Part(95..100));
        check("bytes=99-99", 100, Part(99..100));
        check("bytes=100-", 100, Unsatisfiable);
        check("bytes=100-200", 100, Unsatisfiable);
        check("bytes=-0", 100, Unsatisfiable);
        check("bytes=0-", 0, Unsatisfiable);
        check("bytes=0-1,5-6", 100, Whole);
        check("bytes=5-1", 100, Whole);
        check("bytes=a-b", 100, Whole);
        check("items=0-1", 100, Whole);
        check("bytes=", 100, Whole);
        check("bytes=-", 100, Whole);
        check("bytes=+1-2", 100, Whole);
        check("bytes=18446744073709551615-", 100, Unsatisfiable);
    }

    #[test]
    fn if_none_match_compares_the_digest() {
        let digest = Sha256Digest::of(b"x");
        let check = |header: &str, expected: bool| {
            let value = HeaderValue::from_str(header).unwrap();
            assert_eq!(etag_matches(&value, &digest), expected, "{header}");
        };
        check(&format!("\"{digest}\""), true);
        check(&format!("W/\"{digest}\""), true);
        check(&format!("\"other\", \"{digest}\""), true);
        check("*", true);
        check("\"other\"", false);
        check("", false);
    }
}
