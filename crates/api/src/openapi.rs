//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::OpenApi;

/// Document-level information; paths and schemas come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Accord API",
        description = "Self-hosted, policy-driven web automation. Errors are \
            `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}` with a stable code per case.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "jobs", description = "Submit and follow jobs"),
        (name = "ops", description = "Health, readiness, statistics and metrics"),
        (name = "worker", description = "The worker protocol: how workers lease, renew and report jobs"),
    )
)]
pub struct ApiDoc;

/// The full document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::routes::api_router().into_openapi()
}
