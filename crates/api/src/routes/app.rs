//! Assembling the router: every route is registered through utoipa-axum,
//! so the OpenAPI document cannot miss one, and every route passes the
//! auth guard, which knows each route's rule from the same document.

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use super::{
    artifacts, audit, domains, egress, feeds, jobs, keys, monitor_history, monitors, notifications,
    ops, policies, robots, stream, worker, workflow_runs, workspaces,
};
use crate::extract::BodyLimits;
use crate::openapi::ApiDoc;
use crate::{auth, hardening, ApiError, ApiState};

/// Every documented route, with the OpenAPI document built from them.
pub(crate) fn api_router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jobs::create_job, jobs::list_jobs))
        .routes(routes!(jobs::create_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::job_events))
        .routes(routes!(stream::stream_job_events))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(artifacts::list_artifacts))
        .routes(routes!(artifacts::get_artifact))
        .routes(routes!(artifacts::get_manifest))
        .routes(routes!(monitors::list_workflows))
        .routes(routes!(monitors::get_workflow))
        .routes(routes!(workflow_runs::run_workflow))
        .routes(routes!(workflow_runs::get_workflow_run))
        .routes(routes!(monitors::create_monitor, monitors::list_monitors))
        .routes(routes!(
            monitors::get_monitor,
            monitors::update_monitor,
            monitors::delete_monitor
        ))
        .routes(routes!(monitors::pause_monitor))
        .routes(routes!(monitors::resume_monitor))
        .routes(routes!(monitors::run_monitor))
        .routes(routes!(monitors::list_runs))
        .routes(routes!(monitors::monitor_series))
        .routes(routes!(notifications::list_monitor_deliveries))
        .routes(routes!(
            notifications::create_notification_target,
            notifications::list_notification_targets
        ))
        .routes(routes!(
            notifications::get_notification_target,
            notifications::update_notification_target,
            notifications::delete_notification_target
        ))
        .routes(routes!(notifications::rotate_target_secret))
        .routes(routes!(notifications::test_notification_target))
        .routes(routes!(notifications::list_target_deliveries))
        .routes(routes!(notifications::redeliver))
        .routes(routes!(policies::create_policy, policies::list_policies))
        .routes(routes!(
            policies::get_policy,
            policies::update_policy,
            policies::delete_policy
        ))
        .routes(routes!(feeds::create_feed_token, feeds::list_feed_tokens))
        .routes(routes!(feeds::delete_feed_token))
        .routes(routes!(feeds::workspace_feed))
        .routes(routes!(feeds::monitor_feed))
        .routes(routes!(monitor_history::list_snapshots))
        .routes(routes!(monitor_history::monitor_diff))
        .routes(routes!(monitor_history::monitor_items))
        .routes(routes!(ops::queue_stats))
        .routes(routes!(domains::list_domains))
        .routes(routes!(domains::get_domain))
        .routes(routes!(ops::ops_status))
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(
            workspaces::create_workspace,
            workspaces::list_workspaces
        ))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(audit::list_audit))
        .routes(routes!(worker::claim))
        .routes(routes!(worker::heartbeat))
        .routes(routes!(worker::complete))
        .routes(routes!(worker::fail))
        .routes(routes!(worker::release))
        .routes(routes!(worker::escalate))
        .routes(routes!(egress::egress_acquire))
        .routes(routes!(egress::egress_finish))
        .routes(routes!(egress::defer))
        .routes(routes!(robots::robots_lookup))
        .routes(routes!(robots::robots_publish))
        .routes(routes!(artifacts::upload_artifact))
}

/// The whole HTTP surface of the control plane.
pub fn router(state: ApiState) -> Router {
    let config = state.config.clone();
    let (routes, openapi) = api_router().split_for_parts();
    let openapi = crate::openapi::complete(openapi);
    let routes = routes.route_layer(middleware::from_fn_with_state(state.clone(), auth::guard));
    let mut app = routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(Extension(BodyLimits {
            bytes: config.max_body_bytes,
            depth: config.max_json_depth,
            read_timeout: config.body_read_timeout,
        }))
        .layer(middleware::from_fn(hardening::security_headers))
        .layer(middleware::from_fn_with_state(
            config.max_uri_bytes,
            hardening::limit_uri,
        ));
    if let Some(cors) = hardening::cors(&config.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("a request handler panicked");
                ApiError::Internal.into_response()
            },
        ))
        .with_state(state)
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

async fn method_not_allowed() -> Response {
    let mut response = ApiError::MethodNotAllowed.into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
