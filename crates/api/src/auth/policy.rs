//! The route table: what each operation of the API requires. Built from the
//! OpenAPI document, so every route the router serves has an entry; an
//! operation without a rule fails the build of the router (fail closed),
//! and a test walks the table for every role.

use std::collections::HashMap;

use accord_model::Permission;
use axum::http::Method;
use utoipa::openapi::OpenApi;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone: probes and documentation.
    Public,
    /// A valid key whose role grants this (in the right workspace).
    Requires(Permission),
    /// A feed token in the path (`/feeds/{token}/...`), live while the key
    /// that made it is: for feed readers, which cannot send a header.
    FeedToken,
}

/// The rule of each operation, by OpenAPI operation id.
pub(crate) fn access(operation_id: &str) -> Option<Access> {
    use Access::{Public, Requires};
    use Permission as P;
    Some(match operation_id {
        "health" | "ready" => Public,
        "create_job" | "create_jobs" | "cancel_job" | "retry_job" => Requires(P::JobsWrite),
        "list_jobs" | "get_job" | "job_events" | "stream_job_events" | "queue_stats"
        | "list_artifacts" | "get_artifact" | "get_manifest" => Requires(P::JobsRead),
        "create_monitor" | "update_monitor" | "delete_monitor" | "pause_monitor"
        | "resume_monitor" | "run_monitor" | "run_workflow" => Requires(P::JobsWrite),
        "list_workflows" | "get_workflow" | "list_monitors" | "get_monitor" | "list_runs"
        | "monitor_series" | "list_snapshots" | "monitor_diff" | "monitor_items"
        | "get_workflow_run" => Requires(P::JobsRead),
        "create_notification_target"
        | "update_notification_target"
        | "delete_notification_target"
        | "rotate_target_secret"
        | "test_notification_target"
        | "redeliver" => Requires(P::JobsWrite),
        "create_feed_token" | "list_feed_tokens" | "delete_feed_token" => Requires(P::JobsRead),
        "workspace_feed" | "monitor_feed" => Access::FeedToken,
        "list_notification_targets"
        | "get_notification_target"
        | "list_target_deliveries"
        | "list_monitor_deliveries" => Requires(P::JobsRead),
        "create_policy" | "update_policy" | "delete_policy" => Requires(P::JobsWrite),
        "list_policies" | "get_policy" => Requires(P::JobsRead),
        "ops_status" | "metrics" | "list_domains" | "get_domain" => Requires(P::InstanceRead),
        "claim" | "heartbeat" | "complete" | "fail" | "release" | "escalate"
        | "upload_artifact" | "egress_acquire" | "egress_finish" | "defer" | "robots_lookup"
        | "robots_publish" => Requires(P::WorkerProtocol),
        "list_keys" | "create_key" | "revoke_key" => Requires(P::KeysManage),
        "list_audit" => Requires(P::AuditRead),
        "list_workspaces" => Requires(P::WorkspacesRead),
        "create_workspace" => Requires(P::WorkspacesManage),
        _ => return None,
    })
}

/// One route of the table.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub operation_id: String,
    pub access: Access,
    /// `POST /api/v1/jobs/{id}/cancel`, for the audit log.
    pub label: String,
    /// Mutating calls are written to the audit log; the worker protocol is
    /// not (its effects are in each job's event log, with the worker's id).
    pub audited: bool,
}

/// Every route, by path template, then method. Looked up on every request
/// without allocating.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteTable {
    routes: HashMap<String, HashMap<Method, Route>>,
}

impl RouteTable {
    /// Builds the table from the document. Panics when an operation has no
    /// id or no rule: that is a programming error a test catches at once.
    pub(crate) fn from_openapi(doc: &OpenApi) -> Self {
        let mut routes: HashMap<String, HashMap<Method, Route>> = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let operation_id = operation
                    .operation_id
                    .clone()
                    .unwrap_or_else(|| panic!("{method} {path} has no operation id"));
                let access = access(&operation_id).unwrap_or_else(|| {
                    panic!("{method} {path} ({operation_id}) has no access rule in auth/policy.rs")
                });
                let audited =
                    method != Method::GET && access != Access::Requires(Permission::WorkerProtocol);
                let route = Route {
                    label: format!("{method} {path}"),
                    operation_id,
                    access,
                    audited,
                };
                routes
                    .entry(path.clone())
                    .or_default()
                    .insert(method, route);
            }
        }
        Self { routes }
    }

    /// The route for a matched path; `HEAD` is served by `GET`.
    pub(crate) fn get(&self, method: &Method, path: &str) -> Option<&Route> {
        static GET: Method = Method::GET;
        let method = if *method == Method::HEAD {
            &GET
        } else {
            method
        };
        self.routes.get(path)?.get(method)
    }
}
