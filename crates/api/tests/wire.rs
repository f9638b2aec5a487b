//! Snapshots of the wire format: the OpenAPI document and the error table
//! (every status, code and message a caller can see). A change to either
//! shows up as a changed `.snap` file in review; accept a deliberate one
//! with `cargo insta review` (or `INSTA_UPDATE=always`).

use std::time::Duration;

use accord_api::ApiError;
use serde_json::{json, Value};

#[test]
fn openapi_document() {
    insta::assert_json_snapshot!(accord_api::openapi());
}

/// One of each error, with sample details where the case takes any.
fn every_error() -> Vec<ApiError> {
    let said = |text: &str| text.to_owned();
    vec![
        ApiError::MalformedJson(said("expected value at line 1 column 1")),
        ApiError::UnknownField(said("unknown field `stepz` at line 1 column 8")),
        ApiError::InvalidEnumValue(said("unknown variant `browser` for `engine`")),
        ApiError::InvalidField(said("`priority` must be an integer")),
        ApiError::Validation(said("a job needs at least one step")),
        ApiError::TargetNotAllowed(said("127.0.0.1 is a loopback address")),
        ApiError::UnsupportedMediaType,
        ApiError::MalformedRequest,
        ApiError::HeadersTooLarge,
        ApiError::RequestTimeout(Duration::from_secs(30)),
        ApiError::Overloaded,
        ApiError::PayloadTooLarge(2 * 1024 * 1024),
        ApiError::InvalidId(said("`abc` is not a job id")),
        ApiError::InvalidQuery(said("unknown state `maybe`")),
        ApiError::InvalidIdempotencyKey(said("Idempotency-Key must be 1 to 255 characters")),
        ApiError::JobNotFound(said("job 0190a0b0-0000-7000-8000-000000000000 not found")),
        ApiError::RouteNotFound(said("GET /api/v2/jobs")),
        ApiError::WorkflowNotFound(said("find workflow \"nope\": the workflows are page_change, extract_items and smoke_check")),
        ApiError::MethodNotAllowed,
        ApiError::IdempotencyKeyReused,
        ApiError::NotCancellable(said("job 0190a0b0-0000-7000-8000-000000000000 is succeeded and cannot be cancelled")),
        ApiError::NotRetryable(said("job 0190a0b0-0000-7000-8000-000000000000 is running; only dead or cancelled jobs can be retried")),
        ApiError::Unauthenticated(said("missing API key")),
        ApiError::Forbidden(said("the viewer role may not create_job")),
        ApiError::RateLimited(Duration::from_millis(1_500)),
        ApiError::UriTooLong(8 * 1024),
        ApiError::JsonTooDeep(64),
        ApiError::KeyNotFound(said("key k0000000000000000 not found")),
        ApiError::WorkspaceNotFound(said("workspace team-b not found")),
        ApiError::WorkspaceExists(said("team-b")),
        ApiError::InvalidArtifactName(said("\"a/b\": an artifact name may only hold ASCII letters, digits, `.`, `_` and `-` (no path separators), found '/'")),
        ApiError::InvalidArtifactHeader(said("X-Accord-Sha256: a SHA-256 digest must be 64 lowercase hex digits")),
        ApiError::LengthRequired,
        ApiError::StaleLease(said("the lease of job 0190a0b0-0000-7000-8000-000000000000 at attempt 1 is not held by this worker (it expired, moved on, or the job finished)")),
        ApiError::ArtifactTooLarge(said("an artifact of 104857601 bytes is larger than the limit of 104857600 bytes")),
        ApiError::ArtifactQuotaExceeded(said("the workspace's artifacts hold 900 of 1000 bytes; 200 more do not fit")),
        ApiError::TooManyArtifacts(said("the job already holds 1000 artifacts, the most one job may hold")),
        ApiError::ArtifactDigestMismatch(said("store the blob: its bytes hash to 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824, not to the declared ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")),
        ApiError::ArtifactSizeMismatch(said("store the blob: 10 bytes arrived where 12 were declared")),
        ApiError::ArtifactUploadIncomplete(said("read the uploaded bytes: no bytes arrived for 30 s; the upload was abandoned")),
        ApiError::ArtifactNotFound(said("job 0190a0b0-0000-7000-8000-000000000000 has no artifact named page.html")),
        ApiError::ManifestNotFound(said("job 0190a0b0-0000-7000-8000-000000000000 has no evidence manifest")),
        ApiError::MonitorNotFound(said("monitor 0190a0b0-0000-7000-8000-000000000000 not found")),
        ApiError::DomainNotFound(said("no worker reached example.com in the last day")),
        ApiError::RunNotFound(said("monitor 0190a0b0-0000-7000-8000-000000000000 has no run 12")),
        ApiError::MonitorBusy(said("monitor 0190a0b0-0000-7000-8000-000000000000 has a run in progress; a monitor never runs twice at once")),
        ApiError::MonitorChanged(said("monitor 0190a0b0-0000-7000-8000-000000000000 was changed or deleted meanwhile; read it again")),
        ApiError::TargetNotFound(said("notification target 0190a0b0-0000-7000-8000-000000000000 not found")),
        ApiError::TargetChanged(said("notification target 0190a0b0-0000-7000-8000-000000000000 was changed or deleted meanwhile; read it again")),
        ApiError::NotAWebhook(said("notification target 0190a0b0-0000-7000-8000-000000000000 is not a webhook: only webhooks have a signing secret")),
        ApiError::DeliveryNotFound(said("delivery 0190a0b0-0000-7000-8000-000000000000 not found")),
        ApiError::InvalidPolicy(said("requests_per_minute: must not be 0 (1 to 60000); leave it out to set no limit")),
        ApiError::PolicyNotFound(said("domain policy 0190a0b0-0000-7000-8000-000000000000 not found")),
        ApiError::PolicyExists(said("this workspace already has a domain policy for `*.example.com`")),
        ApiError::PolicyChanged(said("domain policy 0190a0b0-0000-7000-8000-000000000000 was changed or deleted meanwhile; read it again")),
        ApiError::PolicyDenied(said("steps[0]: domain policy `*.example.com` denies the host (www.example.com)")),
        ApiError::FeedNotFound,
        ApiError::FeedTokenNotFound(said("feed token 0190a0b0-0000-7000-8000-000000000000 not found")),
        ApiError::RangeNotSatisfiable(1024),
        ApiError::ArtifactStorageUnavailable,
        ApiError::Unavailable,
        ApiError::Internal,
    ]
}

/// Stops compiling when a case is added to the table without a sample in
/// [`every_error`].
#[expect(dead_code, reason = "only its exhaustive match matters")]
fn every_case_has_a_sample(err: &ApiError) {
    use ApiError as E;
    match err {
        E::MalformedJson(_)
        | E::UnknownField(_)
        | E::InvalidEnumValue(_)
        | E::InvalidField(_)
        | E::Validation(_)
        | E::TargetNotAllowed(_)
        | E::UnsupportedMediaType
        | E::MalformedRequest
        | E::HeadersTooLarge
        | E::RequestTimeout(_)
        | E::Overloaded
        | E::PayloadTooLarge(_)
        | E::InvalidId(_)
        | E::InvalidQuery(_)
        | E::InvalidIdempotencyKey(_)
        | E::JobNotFound(_)
        | E::RouteNotFound(_)
        | E::WorkflowNotFound(_)
        | E::MethodNotAllowed
        | E::IdempotencyKeyReused
        | E::NotCancellable(_)
        | E::NotRetryable(_)
        | E::Unauthenticated(_)
        | E::Forbidden(_)
        | E::RateLimited(_)
        | E::UriTooLong(_)
        | E::JsonTooDeep(_)
        | E::KeyNotFound(_)
        | E::WorkspaceNotFound(_)
        | E::WorkspaceExists(_)
        | E::InvalidArtifactName(_)
        | E::InvalidArtifactHeader(_)
        | E::LengthRequired
        | E::StaleLease(_)
        | E::ArtifactTooLarge(_)
        | E::ArtifactQuotaExceeded(_)
        | E::TooManyArtifacts(_)
        | E::ArtifactDigestMismatch(_)
        | E::ArtifactSizeMismatch(_)
        | E::ArtifactUploadIncomplete(_)
        | E::ArtifactNotFound(_)
        | E::ManifestNotFound(_)
        | E::MonitorNotFound(_)
        | E::DomainNotFound(_)
        | E::RunNotFound(_)
        | E::MonitorBusy(_)
        | E::MonitorChanged(_)
        | E::TargetNotFound(_)
        | E::TargetChanged(_)
        | E::NotAWebhook(_)
        | E::DeliveryNotFound(_)
        | E::InvalidPolicy(_)
        | E::PolicyNotFound(_)
        | E::PolicyExists(_)
        | E::PolicyChanged(_)
        | E::PolicyDenied(_)
        | E::FeedNotFound
        | E::FeedTokenNotFound(_)
        | E::RangeNotSatisfiable(_)
        | E::ArtifactStorageUnavailable
        | E::Unavailable
        | E::Internal => {}
    }
}

#[test]
fn error_table() {
    let table: Vec<Value> = every_error()
        .iter()
        .map(|err| {
            let (status, _) = err.status_and_code();
            json!({ "status": status.as_u16(), "body": err.body() })
        })
        .collect();
    insta::assert_json_snapshot!(table);
}

/// The `webhooks` section (OpenAPI 3.1) describes what a webhook target
/// receives: the three Standard Webhooks headers and the payload, whose
/// schema (and every schema it refers to) is in the components.
#[test]
fn webhooks_describe_the_headers_and_the_payload() {
    let doc = serde_json::to_value(accord_api::openapi()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let post = &doc["webhooks"]["monitor-event"]["post"];
    let headers: Vec<&str> = post["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|p| assert_eq!(p["in"], "header"))
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        headers,
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    );
    let reference = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    assert_eq!(reference, "#/components/schemas/WebhookPayload");
    // Every reference in the document resolves.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for target in all {
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{target} does not resolve"
        );
    }
    let payload = &doc["components"]["schemas"]["WebhookPayload"]["properties"];
    for member in ["type", "timestamp", "version", "data"] {
        assert!(payload.get(member).is_some(), "{member}");
    }
}
