//! The one error table: every failure an API caller can see, with its HTTP
//! status and stable machine code. Internal errors are logged once here and
//! answered with a generic message.

use accord_model::{ErrorBody, ErrorDetail};
use accord_queue::QueueError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnknownField(String),
    #[error("{0}")]
    InvalidEnumValue(String),
    #[error("{0}")]
    InvalidField(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    TargetNotAllowed(String),
    #[error(
        "request body must be JSON in UTF-8 (Content-Type: application/json, no other charset)"
    )]
    UnsupportedMediaType,
    #[error("the request is not valid HTTP/1.1 (request line, header or message framing)")]
    MalformedRequest,
    #[error("the request's headers are larger than the server accepts")]
    HeadersTooLarge,
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    RequestTimeout(std::time::Duration),
    #[error("the server is at its connection limit; try again shortly")]
    Overloaded,
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    InvalidId(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    #[error("{0}")]
    JobNotFound(String),
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("{0}")]
    WorkflowNotFound(String),
    #[error("method not allowed for this route")]
    MethodNotAllowed,
    #[error("the Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("{0}")]
    NotCancellable(String),
    #[error("{0}")]
    NotRetryable(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("rate limit exceeded; retry in {} ms", .0.as_millis())]
    RateLimited(std::time::Duration),
    #[error("the request URI is longer than the limit of {0} bytes")]
    UriTooLong(usize),
    #[error("the JSON body nests deeper than the limit of {0} levels")]
    JsonTooDeep(usize),
    #[error("{0}")]
    KeyNotFound(String),
    #[error("{0}")]
    WorkspaceNotFound(String),
    #[error("a workspace named {0:?} already exists")]
    WorkspaceExists(String),
    #[error("{0}")]
    InvalidArtifactName(String),
    #[error("{0}")]
    InvalidArtifactHeader(String),
    #[error("an artifact upload must declare its size in Content-Length")]
    LengthRequired,
    #[error("{0}")]
    StaleLease(String),
    #[error("{0}")]
    ArtifactTooLarge(String),
    #[error("{0}")]
    ArtifactQuotaExceeded(String),
    #[error("{0}")]
    TooManyArtifacts(String),
    #[error("{0}")]
    ArtifactDigestMismatch(String),
    #[error("{0}")]
    ArtifactSizeMismatch(String),
    #[error("{0}")]
    ArtifactUploadIncomplete(String),
    #[error("{0}")]
    ArtifactNotFound(String),
    #[error("{0}")]
    ManifestNotFound(String),
    #[error("{0}")]
    MonitorNotFound(String),
    #[error("{0}")]
    DomainNotFound(String),
    #[error("{0}")]
    RunNotFound(String),
    #[error("{0}")]
    MonitorBusy(String),
    #[error("{0}")]
    MonitorChanged(String),
    #[error("{0}")]
    TargetNotFound(String),
    #[error("{0}")]
    TargetChanged(String),
    #[error("{0}")]
    NotAWebhook(String),
    #[error("{0}")]
    DeliveryNotFound(String),
    #[error("{0}")]
    InvalidPolicy(String),
    #[error("{0}")]
    PolicyNotFound(String),
    #[error("{0}")]
    PolicyExists(String),
    #[error("{0}")]
    PolicyChanged(String),
    /// A domain policy refuses the submitted work; the message names the
    /// rule (pattern) and what it forbids.
    #[error("{0}")]
    PolicyDenied(String),
    /// Said alike of a malformed, unknown or revoked feed token and of a
    /// monitor the token's workspace does not have: nothing to probe.
    #[error("no such feed")]
    FeedNotFound,
    #[error("{0}")]
    FeedTokenNotFound(String),
    /// The `Range` asked for starts past the end; the answer names the size.
    #[error("the range starts past the end of the {0}-byte artifact")]
    RangeNotSatisfiable(u64),
    #[error("artifact storage is unavailable; try again shortly")]
    ArtifactStorageUnavailable,
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The table: status and code of every case.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::MalformedJson(_) => (S::BAD_REQUEST, "malformed_json"),
            Self::UnknownField(_) => (S::UNPROCESSABLE_ENTITY, "unknown_field"),
            Self::InvalidEnumValue(_) => (S::UNPROCESSABLE_ENTITY, "invalid_enum_value"),
            Self::InvalidField(_) => (S::UNPROCESSABLE_ENTITY, "invalid_field"),
            Self::Validation(_) => (S::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::TargetNotAllowed(_) => (S::UNPROCESSABLE_ENTITY, "target_not_allowed"),
            Self::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::MalformedRequest => (S::BAD_REQUEST, "malformed_request"),
            Self::HeadersTooLarge => (S::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large"),
            Self::RequestTimeout(_) => (S::REQUEST_TIMEOUT, "request_timeout"),
            Self::Overloaded => (S::SERVICE_UNAVAILABLE, "overloaded"),
            Self::PayloadTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::InvalidId(_) => (S::BAD_REQUEST, "invalid_id"),
            Self::InvalidQuery(_) => (S::BAD_REQUEST, "invalid_query"),
            Self::InvalidIdempotencyKey(_) => (S::BAD_REQUEST, "invalid_idempotency_key"),
            Self::JobNotFound(_) => (S::NOT_FOUND, "job_not_found"),
            Self::RouteNotFound(_) => (S::NOT_FOUND, "route_not_found"),
            Self::WorkflowNotFound(_) => (S::NOT_FOUND, "workflow_not_found"),
            Self::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::IdempotencyKeyReused => (S::CONFLICT, "idempotency_key_reused"),
            Self::NotCancellable(_) => (S::CONFLICT, "job_not_cancellable"),
            Self::NotRetryable(_) => (S::CONFLICT, "job_not_retryable"),
            Self::Unauthenticated(_) => (S::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
            Self::RateLimited(_) => (S::TOO_MANY_REQUESTS, "rate_limited"),
            Self::UriTooLong(_) => (S::URI_TOO_LONG, "uri_too_long"),
            Self::JsonTooDeep(_) => (S::BAD_REQUEST, "json_too_deep"),
            Self::KeyNotFound(_) => (S::NOT_FOUND, "key_not_found"),
            Self::WorkspaceNotFound(_) => (S::NOT_FOUND, "workspace_not_found"),
            Self::WorkspaceExists(_) => (S::CONFLICT, "workspace_exists"),
            Self::InvalidArtifactName(_) => (S::BAD_REQUEST, "invalid_artifact_name"),
            Self::InvalidArtifactHeader(_) => (S::BAD_REQUEST, "invalid_artifact_header"),
            Self::LengthRequired => (S::LENGTH_REQUIRED, "length_required"),
            Self::StaleLease(_) => (S::CONFLICT, "stale_lease"),
            Self::ArtifactTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "artifact_too_large"),
            Self::ArtifactQuotaExceeded(_) => (S::PAYLOAD_TOO_LARGE, "artifact_quota_exceeded"),
            Self::TooManyArtifacts(_) => (S::CONFLICT, "artifact_limit_reached"),
            Self::ArtifactDigestMismatch(_) => {
                (S::UNPROCESSABLE_ENTITY, "artifact_digest_mismatch")
            }
            Self::ArtifactSizeMismatch(_) => (S::BAD_REQUEST, "artifact_size_mismatch"),
            Self::ArtifactUploadIncomplete(_) => (S::BAD_REQUEST, "artifact_upload_incomplete"),
            Self::ArtifactNotFound(_) => (S::NOT_FOUND, "artifact_not_found"),
            Self::ManifestNotFound(_) => (S::NOT_FOUND, "manifest_not_found"),
            Self::MonitorNotFound(_) => (S::NOT_FOUND, "monitor_not_found"),
            Self::DomainNotFound(_) => (S::NOT_FOUND, "domain_not_found"),
            Self::RunNotFound(_) => (S::NOT_FOUND, "run_not_found"),
            Self::MonitorBusy(_) => (S::CONFLICT, "monitor_busy"),
            Self::MonitorChanged(_) => (S::CONFLICT, "monitor_changed"),
            Self::TargetNotFound(_) => (S::NOT_FOUND, "target_not_found"),
            Self::TargetChanged(_) => (S::CONFLICT, "target_changed"),
            Self::NotAWebhook(_) => (S::CONFLICT, "target_not_webhook"),
            Self::DeliveryNotFound(_) => (S::NOT_FOUND, "delivery_not_found"),
            Self::InvalidPolicy(_) => (S::BAD_REQUEST, "invalid_policy"),
            Self::PolicyNotFound(_) => (S::NOT_FOUND, "policy_not_found"),
            Self::PolicyExists(_) => (S::CONFLICT, "policy_exists"),
            Self::PolicyChanged(_) => (S::CONFLICT, "policy_changed"),
            Self::PolicyDenied(_) => (S::FORBIDDEN, "policy_denied"),
            Self::FeedNotFound => (S::NOT_FOUND, "feed_not_found"),
            Self::FeedTokenNotFound(_) => (S::NOT_FOUND, "feed_token_not_found"),
            Self::RangeNotSatisfiable(_) => (S::RANGE_NOT_SATISFIABLE, "range_not_satisfiable"),
            Self::ArtifactStorageUnavailable => {
                (S::SERVICE_UNAVAILABLE, "artifact_storage_unavailable")
            }
            Self::Unavailable => (S::SERVICE_UNAVAILABLE, "store_unavailable"),
            Self::Internal => (S::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.status_and_code();
        ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                details: None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        let mut response = (status, Json(self.body())).into_response();
        if let Self::PolicyDenied(message) = &self {
            // The audit log keeps which rule refused what, not only "403".
            response
                .extensions_mut()
                .insert(crate::auth::AuditDetail(message.clone()));
        }
        if let Self::RangeNotSatisfiable(size) = self {
            // RFC 9110 15.5.17: a 416 names the representation's size.
            response.headers_mut().insert(
                axum::http::header::CONTENT_RANGE,
                format!("bytes */{size}")
                    .parse()
                    .expect("a number makes a valid header"),
            );
        }
        response
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::JobNotFound(id) => Self::JobNotFound(format!("job {id} not found")),
            QueueError::Invalid(err) => Self::Validation(err.to_string()),
            QueueError::TargetNotAllowed(reason) => Self::TargetNotAllowed(reason),
            QueueError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            err @ QueueError::NotCancellable { .. } => Self::NotCancellable(err.to_string()),
            err @ QueueError::NotRetryable { .. } => Self::NotRetryable(err.to_string()),
            err @ QueueError::StaleLease { .. } => Self::StaleLease(err.to_string()),
            err @ QueueError::ReservedArtifactName(_) => Self::InvalidArtifactName(err.to_string()),
            err @ QueueError::InvalidContentType(_) => Self::InvalidArtifactHeader(err.to_string()),
            err @ QueueError::ArtifactTooLarge { .. } => Self::ArtifactTooLarge(err.to_string()),
            err @ QueueError::QuotaExceeded { .. } => Self::ArtifactQuotaExceeded(err.to_string()),
            err @ QueueError::TooManyArtifacts { .. } => Self::TooManyArtifacts(err.to_string()),
            err @ QueueError::ArtifactNotFound { .. } => Self::ArtifactNotFound(err.to_string()),
            err @ QueueError::ManifestNotFound { .. } => Self::ManifestNotFound(err.to_string()),
            err @ QueueError::MonitorNotFound(_) => Self::MonitorNotFound(err.to_string()),
            err @ QueueError::RunNotFound { .. } => Self::RunNotFound(err.to_string()),
            err @ QueueError::WorkflowRunNotFound(_) => Self::RunNotFound(err.to_string()),
            err @ QueueError::MonitorBusy(_) => Self::MonitorBusy(err.to_string()),
            err @ QueueError::MonitorChanged(_) => Self::MonitorChanged(err.to_string()),
            err @ QueueError::TargetNotFound(_) => Self::TargetNotFound(err.to_string()),
            err @ QueueError::TargetChanged(_) => Self::TargetChanged(err.to_string()),
            err @ QueueError::NotAWebhook(_) => Self::NotAWebhook(err.to_string()),
            err @ QueueError::DeliveryNotFound(_) => Self::DeliveryNotFound(err.to_string()),
            err @ QueueError::PolicyNotFound(_) => Self::PolicyNotFound(err.to_string()),
            err @ QueueError::PolicyExists(_) => Self::PolicyExists(err.to_string()),
            err @ QueueError::PolicyChanged(_) => Self::PolicyChanged(err.to_string()),
            err @ QueueError::InvalidPolicy(_) => Self::InvalidPolicy(err.to_string()),
            err @ QueueError::PolicyDenied(_) => Self::PolicyDenied(err.to_string()),
            QueueError::NoBlobStore => {
                tracing::error!("artifact request on a server without a blob store");
                Self::ArtifactStorageUnavailable
            }
            err @ QueueError::Blocking(_) => {
                tracing::error!(error = %err, "a blocking computation failed");
                Self::Internal
            }
            QueueError::Blob(err) => err.into(),
            QueueError::Store(err) => err.into(),
        }
    }
}

impl From<accord_artifacts::BlobError> for ApiError {
    fn from(err: accord_artifacts::BlobError) -> Self {
        use accord_artifacts::BlobError as B;
        match err {
            err @ B::DigestMismatch { .. } => Self::ArtifactDigestMismatch(err.to_string()),
            err @ B::SizeMismatch { .. } => Self::ArtifactSizeMismatch(err.to_string()),
            err @ B::Body(_) => Self::ArtifactUploadIncomplete(err.to_string()),
            B::RangeNotSatisfiable { size, .. } => Self::RangeNotSatisfiable(size),
            err @ B::NotFound(_) => {
                tracing::error!(error = %err, "an artifact's row names a blob the store does not have");
                Self::Internal
            }
            err @ B::Storage(_) => {
                tracing::warn!(error = %err, "artifact storage unavailable");
                Self::ArtifactStorageUnavailable
            }
            err @ B::Config(_) => {
                tracing::error!(error = %err, "artifact storage misconfigured");
                Self::Internal
            }
        }
    }
}

impl From<accord_store::StoreError> for ApiError {
    fn from(err: accord_store::StoreError) -> Self {
        match err {
            err @ accord_store::StoreError::Unstorable { .. } => {
                Self::InvalidField(format!("cannot {err}"))
            }
            err if err.is_unavailable() => {
                tracing::warn!(error = %err, "store unavailable");
                Self::Unavailable
            }
            err => {
                tracing::error!(error = %err, "store error");
                Self::Internal
            }
        }
    }
}
