//! The OpenAPI 3.1 document, generated from the handlers' annotations, then
//! completed from the route table: each operation's security requirement
//! and the answers every guarded route can give (401, 403, 429) or any
//! route can give (414); and the `webhooks` section (OpenAPI 3.1), which
//! utoipa does not model: the request Accord sends to a webhook target,
//! with its Standard Webhooks headers and the payload's schema.

use accord_model::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder, SecurityRequirement};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use crate::auth::{self, Access};

/// Document-level information; paths and schemas come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Accord API",
        description = "Self-hosted, policy-driven web automation. Every route except `/health` and \
            `/ready` needs an API key: `Authorization: Bearer acc_<id>_<secret>`. Errors are \
            `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}` with a stable code per case.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "jobs", description = "Submit and follow jobs"),
        (name = "monitors", description = "Workflows, and monitors that run them on a schedule"),
        (name = "notifications", description = "Notification targets (webhooks, Slack, Discord, email), and the delivery log"),
        (name = "policies", description = "Domain policies: which hosts jobs may visit, with which engines and steps, how politely"),
        (name = "feeds", description = "Atom feeds of monitor events, read with a feed token instead of a key"),
        (name = "access", description = "Workspaces, API keys and the audit log"),
        (name = "ops", description = "Health, readiness, statistics and metrics"),
        (name = "domains", description = "What the workers' requests to each domain did, and its politeness state"),
        (name = "worker", description = "The worker protocol: how workers lease, renew and report jobs"),
    )
)]
pub struct ApiDoc;

/// The full document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    complete(crate::routes::api_router().into_openapi())
}

/// Adds what the route table knows to the generated document.
pub(crate) fn complete(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("acc_<id>_<secret>")
                .build(),
        ),
    );
    components
        .schemas
        .entry(ErrorBody::name().into_owned())
        .or_insert_with(ErrorBody::schema);
    add_webhooks(&mut doc);
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let access = operation.operation_id.as_deref().and_then(auth::access_of);
            let responses = &mut operation.responses.responses;
            let mut answer = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(description));
            };
            answer("414", "URI too long");
            match access {
                Some(Access::Public) | None => operation.security = Some(Vec::new()),
                Some(Access::FeedToken) => {
                    answer("429", "Too many requests; see Retry-After");
                    operation.security = Some(Vec::new());
                }
                Some(Access::Requires(_)) => {
                    answer(
                        "401",
                        "Missing, malformed, unknown, revoked or expired API key",
                    );
                    answer("403", "The key's role or workspace does not allow this");
                    answer("429", "Rate limit exceeded; see Retry-After");
                    operation.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                }
            }
        }
    }
    doc
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            )
            .build(),
    )
}

/// The `webhooks` section: one webhook, `monitor-event`, the POST every
/// webhook target receives (also for test messages), with the payload's
/// schemas added to the components. utoipa 5 has no field for the section,
/// so it goes in through the document's extensions, which serialize as
/// top-level members.
fn add_webhooks(doc: &mut utoipa::openapi::OpenApi) {
    use accord_notify::WebhookPayload;
    let components = doc.components.get_or_insert_with(Default::default);
    let mut schemas = vec![(
        WebhookPayload::name().into_owned(),
        WebhookPayload::schema(),
    )];
    WebhookPayload::schemas(&mut schemas);
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    let header = |name: &str, pattern: &str, description: &str, example: &str| {
        serde_json::json!({
            "name": name,
            "in": "header",
            "required": true,
            "description": description,
            "schema": {"type": "string", "pattern": pattern},
            "example": example,
        })
    };
    let webhook = serde_json::json!({
        "monitor-event": {
            "post": {
                "operationId": "webhook_monitor_event",
                "tags": ["notifications"],
                "summary": "A monitor event (or a test message), sent to a webhook target",
                "description": "Sent as JSON to the target's URL when a run of a monitor that \
                    names the target reports one of the events the target subscribed to \
                    (`changed`, `new_items`, `condition_met`, `failed`, `recovered`), and by \
                    `POST /api/v1/notification-targets/{id}/test`. Signed the Standard Webhooks \
                    way: `webhook-signature` holds `v1,` and the base64 HMAC-SHA256, keyed \
                    with the base64-decoded part of the target's secret after `whsec_`, of \
                    `{webhook-id}.{webhook-timestamp}.{body}`; during a secret's grace period \
                    after a rotation it holds two signatures, space-separated. Any 2xx answer \
                    delivers the message; anything else, or no answer in time, is retried with \
                    exponential backoff for about a day, with the same `webhook-id` (drop \
                    repeats by it). Slack and Discord targets get their own message formats \
                    instead, unsigned.",
                "parameters": [
                    header(
                        "webhook-id",
                        "^msg_[0-9a-f]{32}$",
                        "The message's id, the same on every attempt: receivers drop repeats by it.",
                        "msg_0192b0a0000070008000000000000001",
                    ),
                    header(
                        "webhook-timestamp",
                        "^[0-9]+$",
                        "When this attempt was signed, in seconds since the Unix epoch; refuse \
                         one far from your clock (replays).",
                        "1800000000",
                    ),
                    header(
                        "webhook-signature",
                        "^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$",
                        "One or two signatures (`v1,<base64>`), space-separated: accept the \
                         message if any matches.",
                        "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                    ),
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": format!("#/components/schemas/{}", WebhookPayload::name())}
                        }
                    }
                },
                "responses": {
                    "2XX": {"description": "Delivered: no further attempts."},
                    "default": {"description": "Not delivered: the message is retried later (a redirect is followed only to an address the egress guard allows)."}
                }
            }
        }
    });
    doc.extensions
        .get_or_insert_with(Default::default)
        .insert("webhooks".to_owned(), webhook);
}
