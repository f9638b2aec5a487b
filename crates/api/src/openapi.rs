//! The OpenAPI 3.1 document, generated from the handlers' annotations, then
//! completed from the route table: each operation's security requirement
//! and the answers every guarded route can give (401, 403, 429) or any
//! route can give (414).

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
        (name = "feeds", description = "Atom feeds of monitor events, read with a feed token instead of a key"),
        (name = "access", description = "Workspaces, API keys and the audit log"),
        (name = "ops", description = "Health, readiness, statistics and metrics"),
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
