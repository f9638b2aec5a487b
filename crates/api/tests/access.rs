//! Who may call what, checked on the real router over a real (SQLite)
//! store: the role matrix and the cross-workspace walk go through every
//! operation of the OpenAPI document, so a new route is covered the day it
//! is added. Also revoked and expired keys, rate-limit isolation, input
//! limits, CORS, security headers and the audit log.

use std::sync::Arc;

use accord_api::auth::{hash_secret, new_token};
use accord_api::{router, ApiConfig, ApiState, AuditRecorder};
use accord_cluster::Cluster;
use accord_model::{ApiKey, ApiKeyId, JobId, RateLimit, Role, SystemClock, Workspace, WorkspaceId};
use accord_queue::{Queue, QueueConfig, QueueMetrics};
use accord_store::{SqliteConfig, SqliteStore, Store, StoredApiKey};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const UNLIMITED: RateLimit = RateLimit {
    burst: 1_000_000,
    per_second: 1_000_000.0,
};

/// One control plane (or several "replicas" of it) on one store.
struct Harness {
    store: Arc<dyn Store>,
    app: Router,
    /// The recorder of `app`: [`AuditRecorder::flush`] waits for its writes.
    audit: AuditRecorder,
    queue: Queue,
    other: Workspace,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(config: ApiConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&SqliteConfig::new(dir.path().join("accord.db")))
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let other = Workspace {
            id: WorkspaceId::new(),
            name: "team-b".to_owned(),
            created_at: chrono::Utc::now(),
        };
        assert!(store.workspace_create(&other).await.unwrap());
        let queue = Queue::new(
            store.clone(),
            Arc::new(SystemClock),
            QueueConfig::default(),
            Arc::new(QueueMetrics::new()),
        );
        let (app, audit) = replica_with_audit(&queue, &store, config);
        Harness {
            store,
            app,
            audit,
            queue,
            other,
            _dir: dir,
        }
    }

    async fn key(&self, workspace: WorkspaceId, role: Role, limit: RateLimit) -> String {
        self.key_with(workspace, role, limit, |_| {}).await
    }

    async fn key_with(
        &self,
        workspace: WorkspaceId,
        role: Role,
        limit: RateLimit,
        adjust: impl FnOnce(&mut ApiKey),
    ) -> String {
        let token = new_token();
        let mut key = ApiKey {
            id: token.id.clone(),
            workspace_id: workspace,
            name: format!("{role} test key"),
            role,
            rate_limit: Some(limit),
            created_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        adjust(&mut key);
        self.store
            .api_key_insert(&StoredApiKey {
                key,
                secret_hash: hash_secret(token.secret()),
            })
            .await
            .unwrap();
        token.reveal()
    }

    /// The body of a call answered as text.
    async fn call_text(&self, method: &str, uri: &str, key: Option<&str>) -> String {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        call(&self.app, method, uri, key, body.map(|b| b.to_string())).await
    }
}

/// Another router on the same store and queue: what a second replica is.
fn replica(queue: &Queue, store: &Arc<dyn Store>, config: ApiConfig) -> Router {
    replica_with_audit(queue, store, config).0
}

/// A replica and its audit recorder, to wait for what it wrote.
fn replica_with_audit(
    queue: &Queue,
    store: &Arc<dyn Store>,
    config: ApiConfig,
) -> (Router, AuditRecorder) {
    let (audit, _task) = AuditRecorder::start(store.clone());
    let app = router(ApiState::new(
        queue.clone(),
        store.clone(),
        Cluster::local(),
        audit.clone(),
        config,
        CancellationToken::new(),
    ));
    (app, audit)
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<String>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body)),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    // A live event stream does not end while its job runs: its status and
    // headers are the answer.
    if headers
        .get("content-type")
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"))
    {
        return Answer {
            status,
            headers,
            body: Value::Null,
        };
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn job_body() -> Value {
    json!({"steps": [{"action": "navigate", "url": "https://example.com/"}]})
}

/// Every operation of the document that takes an API key, as (method,
/// path template, operation id). The feeds (`/feeds/{token}/...`) take a
/// feed token instead: `feeds_answer_404_alike_for_every_bad_token` covers them.
fn operations() -> Vec<(String, String, String)> {
    let doc = serde_json::to_value(accord_api::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/feeds/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            if let Some(id) = operation["operationId"].as_str() {
                out.push((method.to_uppercase(), path.clone(), id.to_owned()));
            }
        }
    }
    assert!(out.len() >= 20, "the document lists every route");
    out
}

/// Which roles may call each operation: written out here, independently of
/// the code's table, so a change to either shows up as a failure.
fn allowed(operation: &str, default_workspace: bool) -> Vec<Role> {
    use Role::*;
    match operation {
        "health" | "ready" => vec![Admin, Operator, Viewer, Worker],
        "create_job" | "create_jobs" | "cancel_job" | "retry_job" => vec![Admin, Operator],
        "list_jobs" | "get_job" | "job_events" | "stream_job_events" | "queue_stats"
        | "list_artifacts" | "get_artifact" | "get_manifest" => vec![Admin, Operator, Viewer],
        "create_monitor" | "update_monitor" | "delete_monitor" | "pause_monitor"
        | "resume_monitor" | "run_monitor" | "run_workflow" => vec![Admin, Operator],
        "list_workflows" | "get_workflow" | "list_monitors" | "get_monitor" | "list_runs"
        | "monitor_series" | "list_snapshots" | "monitor_diff" | "monitor_items"
        | "get_workflow_run" => vec![Admin, Operator, Viewer],
        "create_notification_target"
        | "update_notification_target"
        | "delete_notification_target"
        | "rotate_target_secret"
        | "test_notification_target"
        | "redeliver" => vec![Admin, Operator],
        "list_notification_targets"
        | "get_notification_target"
        | "list_target_deliveries"
        | "list_monitor_deliveries" => vec![Admin, Operator, Viewer],
        "create_policy" | "update_policy" | "delete_policy" => vec![Admin, Operator],
        "list_policies" | "get_policy" => vec![Admin, Operator, Viewer],
        "create_feed_token" | "list_feed_tokens" | "delete_feed_token" => {
            vec![Admin, Operator, Viewer]
        }
        "ops_status" | "metrics" | "list_domains" | "get_domain" if default_workspace => {
            vec![Admin, Operator, Viewer]
        }
        "ops_status" | "metrics" | "list_domains" | "get_domain" => vec![],
        "claim" | "heartbeat" | "complete" | "fail" | "release" | "escalate"
        | "upload_artifact" | "egress_acquire" | "egress_finish" | "defer" | "robots_lookup"
        | "robots_publish" => {
            vec![Worker]
        }
        "list_keys" | "create_key" | "revoke_key" | "list_audit" | "list_workspaces" => {
            vec![Admin]
        }
        "create_workspace" if default_workspace => vec![Admin],
        "create_workspace" => vec![],
        other => panic!("operation {other} is missing from the test's matrix: add it"),
    }
}

/// A body that gets past the guard for each operation (what the handler
/// then makes of it does not matter to the matrix).
fn body_for(operation: &str) -> Option<Value> {
    Some(match operation {
        "create_job" => job_body(),
        "create_jobs" => json!({"jobs": [job_body()]}),
        "create_monitor" => json!({
            "name": "m",
            "workflow": "page_change",
            "url": "https://example.com/",
            "schedule": {"every": "5m"}
        }),
        "update_monitor" => json!({"name": "renamed"}),
        "create_notification_target" => json!({
            "name": "t",
            "kind": "webhook",
            "url": "https://hooks.example.com/in"
        }),
        "update_notification_target" => json!({"name": "renamed"}),
        // A pattern no job of these tests visits.
        "create_policy" => json!({"pattern": "*.matrix.invalid", "requests_per_minute": 60}),
        "update_policy" => json!({"requests_per_minute": 30}),
        "create_feed_token" => json!({"name": "reader"}),
        "run_workflow" => json!({"url": "https://example.com/", "input": {}}),
        "claim" => json!({"worker_id": "w", "limit": 1, "wait_ms": 0}),
        "heartbeat" | "release" => json!({"worker_id": "w", "leases": []}),
        "complete" | "fail" | "escalate" | "egress_finish" | "defer" => {
            json!({"worker_id": "w", "items": []})
        }
        "egress_acquire" => json!({
            "worker_id": "w",
            "job_id": JobId::new(),
            "hosts": ["example.com"],
            "hold_ms": 1000
        }),
        "robots_lookup" => json!({"worker_id": "w", "origin": "https://matrix.invalid"}),
        "robots_publish" => json!({
            "worker_id": "w",
            "record": {
                "origin": "https://matrix.invalid",
                "status": "unavailable",
                "fetched_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-01T00:01:00Z"
            }
        }),
        "create_key" => json!({"name": "made in test", "role": "viewer"}),
        "create_workspace" => {
            json!({"name": format!("ws-{}", WorkspaceId::new().as_uuid().simple())})
        }
        _ => return None,
    })
}

fn fill(path: &str, job: JobId, key: &ApiKeyId) -> String {
    // The diff's runs are required parameters.
    if let Some(monitor) = path.strip_suffix("/diff") {
        return format!("{}/diff?from=1&to=2", fill(monitor, job, key));
    }
    if path.starts_with("/api/v1/keys/") {
        path.replace("{id}", key.as_str())
    } else {
        path.replace("{id}", &job.to_string())
            .replace("{job_id}", &job.to_string())
            .replace("{attempt}", "1")
            .replace("{domain}", "example.com")
            .replace("{name}", "page.html")
            .replace("/workflows/page.html", "/workflows/page_change")
    }
}

async fn submit(h: &Harness, key: &str) -> JobId {
    let answer = h
        .call("POST", "/api/v1/jobs", Some(key), Some(job_body()))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    answer.body["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_may_call_exactly_its_routes() {
    let h = Harness::start(ApiConfig::default()).await;
    for workspace in [WorkspaceId::DEFAULT, h.other.id] {
        let operator = h.key(workspace, Role::Operator, UNLIMITED).await;
        for role in Role::ALL {
            let key = h.key(workspace, role, UNLIMITED).await;
            for (method, path, operation) in operations() {
                // A fresh job and key of the caller's workspace for each
                // call, so a cancel or revoke before does not change the answer.
                let job = submit(&h, &operator).await;
                let spare = h.key(workspace, Role::Viewer, UNLIMITED).await;
                let spare: accord_model::ApiToken = spare.parse().unwrap();
                let uri = fill(&path, job, &spare.id);
                let answer = h
                    .call(&method, &uri, Some(&key), body_for(&operation))
                    .await;
                let may = allowed(&operation, workspace == WorkspaceId::DEFAULT).contains(&role);
                let what = format!("{role} key of {workspace}: {method} {uri}");
                if may {
                    // Allowed: past the guard. The handler may still refuse
                    // the request itself (a retry of a queued job is a 409).
                    assert!(
                        ![401, 403, 429].contains(&answer.status.as_u16())
                            && !answer.status.is_server_error(),
                        "{what} should be allowed: {answer:?}"
                    );
                } else {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}: {answer:?}");
                    assert_eq!(answer.code(), "forbidden", "{what}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_a_bad_key_gets_401_everywhere_but_the_probes() {
    let mut config = ApiConfig::default();
    config.rate_limits.failed_auth = UNLIMITED;
    let h = Harness::start(config).await;
    let real = h.key(WorkspaceId::DEFAULT, Role::Admin, UNLIMITED).await;
    let wrong_secret = format!(
        "{}{}",
        &real[..real.len() - 1],
        if real.ends_with('a') { 'b' } else { 'a' }
    );
    let unknown = new_token().reveal();
    let job = JobId::new();
    let key_id: ApiKeyId = "aaaaaaaaaaaaaaaa".parse().unwrap();
    for (method, path, operation) in operations() {
        let uri = fill(&path, job, &key_id);
        for key in [
            None,
            Some("acc_nonsense"),
            Some(unknown.as_str()),
            Some(wrong_secret.as_str()),
        ] {
            let answer = h.call(&method, &uri, key, body_for(&operation)).await;
            if operation == "health" || operation == "ready" {
                assert_eq!(answer.status, StatusCode::OK, "{method} {uri}");
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} {key:?}: {answer:?}"
                );
                assert_eq!(answer.code(), "unauthenticated");
                assert!(answer.headers.contains_key("www-authenticate"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_keys_is_slowed_down_per_client_address() {
    let h = Harness::start(ApiConfig::default()).await;
    let burst = ApiConfig::default().rate_limits.failed_auth.burst as usize;
    let mut statuses = Vec::new();
    for _ in 0..burst + 10 {
        let guess = new_token().reveal();
        let answer = h.call("GET", "/api/v1/jobs", Some(&guess), None).await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        burst,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10);
    // A valid key is not held up by someone else's guessing.
    let key = h.key(WorkspaceId::DEFAULT, Role::Viewer, UNLIMITED).await;
    let answer = h.call("GET", "/api/v1/jobs", Some(&key), None).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspace_sees_nothing_of_this_one() {
    let h = Harness::start(ApiConfig::default()).await;
    let a_operator = h.key(WorkspaceId::DEFAULT, Role::Operator, UNLIMITED).await;
    let a_admin_key = h.key(WorkspaceId::DEFAULT, Role::Viewer, UNLIMITED).await;
    let a_key_id = a_admin_key.parse::<accord_model::ApiToken>().unwrap().id;
    for role in Role::ALL {
        let b_key = h.key(h.other.id, role, UNLIMITED).await;
        for (method, path, operation) in operations() {
            let may = allowed(&operation, false).contains(&role);
            if !path.contains("{id}") || !may {
                continue;
            }
            let job = submit(&h, &a_operator).await;
            let uri = fill(&path, job, &a_key_id);
            let answer = h
                .call(&method, &uri, Some(&b_key), body_for(&operation))
                .await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{role} key of B: {method} {uri}: {answer:?}"
            );
            // And nothing changed in A.
            let job = h.queue.get(WorkspaceId::DEFAULT, job).await.unwrap();
            assert_eq!(job.state, accord_model::JobState::Available);
        }
    }
    // Lists and statistics of B hold nothing of A.
    let b_viewer = h.key(h.other.id, Role::Viewer, UNLIMITED).await;
    let listed = h.call("GET", "/api/v1/jobs", Some(&b_viewer), None).await;
    assert_eq!(listed.body["items"], json!([]));
    let stats = h
        .call("GET", "/api/v1/queue/stats", Some(&b_viewer), None)
        .await;
    assert_eq!(stats.body["by_state"]["available"], 0);
    // B's admin cannot reach A's keys, audit log or workspace by naming them.
    let b_admin = h.key(h.other.id, Role::Admin, UNLIMITED).await;
    for uri in [
        "/api/v1/keys?workspace=default".to_owned(),
        format!("/api/v1/keys?workspace={}", WorkspaceId::DEFAULT),
        "/api/v1/audit?workspace=default".to_owned(),
        format!("/api/v1/keys/{a_key_id}/revoke?workspace=default"),
    ] {
        let method = if uri.contains("revoke") {
            "POST"
        } else {
            "GET"
        };
        let answer = h.call(method, &uri, Some(&b_admin), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}: {answer:?}");
    }
    let keys = h.call("GET", "/api/v1/keys", Some(&b_admin), None).await;
    assert!(keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|key| key["workspace_id"] == json!(h.other.id)));
    let workspaces = h
        .call("GET", "/api/v1/workspaces", Some(&b_admin), None)
        .await;
    assert_eq!(workspaces.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(workspaces.body["items"][0]["name"], "team-b");

    // B's worker claims none of A's jobs, and cannot report on A's leases:
    // they are answered exactly like leases of jobs that do not exist.
    let b_worker = h.key(h.other.id, Role::Worker, UNLIMITED).await;
    let a_worker = h.key(WorkspaceId::DEFAULT, Role::Worker, UNLIMITED).await;
    let claim = json!({"worker_id": "w", "limit": 1000, "wait_ms": 0});
    let answer = h
        .call(
            "POST",
            "/internal/v1/worker/claim",
            Some(&b_worker),
            Some(claim.clone()),
        )
        .await;
    assert_eq!(answer.body["jobs"], json!([]), "{answer:?}");
    let answer = h
        .call(
            "POST",
            "/internal/v1/worker/claim",
            Some(&a_worker),
            Some(json!({"worker_id": "w", "limit": 1, "wait_ms": 0})),
        )
        .await;
    let leased = &answer.body["jobs"][0];
    let lease = json!({"job_id": leased["job_id"], "attempt": leased["attempt"]});
    let missing = json!({"job_id": JobId::new(), "attempt": 1});
    for (path, body) in [
        ("heartbeat", json!({"worker_id": "w", "leases": [lease]})),
        ("release", json!({"worker_id": "w", "leases": [lease]})),
        (
            "escalate",
            json!({"worker_id": "w", "items": [{"job_id": lease["job_id"], "attempt": lease["attempt"], "reason": "needs a browser"}]}),
        ),
        (
            "complete",
            json!({"worker_id": "w", "items": [{"job_id": lease["job_id"], "attempt": lease["attempt"], "result": {"status": 200, "final_url": "https://example.com/", "data": {}, "timings": {"total_ms": 1}}}]}),
        ),
    ] {
        let foreign = h
            .call(
                "POST",
                &format!("/internal/v1/worker/{path}"),
                Some(&b_worker),
                Some(body.clone()),
            )
            .await;
        let text = body.to_string().replace(
            lease["job_id"].as_str().unwrap(),
            missing["job_id"].as_str().unwrap(),
        );
        let unknown = call(
            &h.app,
            "POST",
            &format!("/internal/v1/worker/{path}"),
            Some(&b_worker),
            Some(text),
        )
        .await;
        assert_eq!(
            foreign.status, unknown.status,
            "{path}: {foreign:?} vs {unknown:?}"
        );
        assert_eq!(foreign.code(), unknown.code(), "{path}");
    }
    let job: JobId = lease["job_id"].as_str().unwrap().parse().unwrap();
    let job = h.queue.get(WorkspaceId::DEFAULT, job).await.unwrap();
    assert_eq!(
        job.state,
        accord_model::JobState::Running,
        "A's lease is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_keys_stop_working_at_once_on_every_replica() {
    let h = Harness::start(ApiConfig::default()).await;
    let second_replica = replica(&h.queue, &h.store, ApiConfig::default());
    let admin = h.key(WorkspaceId::DEFAULT, Role::Admin, UNLIMITED).await;
    let created = h
        .call(
            "POST",
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let token = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["key"]["id"].as_str().unwrap().to_owned();
    let ok = call(&second_replica, "GET", "/api/v1/jobs", Some(&token), None).await;
    assert_eq!(ok.status, StatusCode::OK);

    let revoked = h
        .call(
            "POST",
            &format!("/api/v1/keys/{id}/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    let refused = call(&second_replica, "GET", "/api/v1/jobs", Some(&token), None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));

    let expired = h
        .key_with(WorkspaceId::DEFAULT, Role::Viewer, UNLIMITED, |key| {
            key.expires_at = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
        })
        .await;
    let refused = h.call("GET", "/api/v1/jobs", Some(&expired), None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));

    // An expiry in the past is refused at creation; a future one is kept.
    let past = h
        .call(
            "POST",
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "x", "role": "viewer", "expires_at": "2000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY);
    let listed = h.call("GET", "/api/v1/keys", Some(&admin), None).await;
    let row = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["id"] == json!(id))
        .unwrap()
        .clone();
    assert!(row["revoked_at"].is_string());
    assert!(
        !listed.body.to_string().contains(&token[21..]),
        "secrets are never listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_hammering_the_api_does_not_slow_down_another() {
    let h = Harness::start(ApiConfig::default()).await;
    let slow = RateLimit {
        burst: 5,
        per_second: 0.01,
    };
    let noisy = h.key(WorkspaceId::DEFAULT, Role::Viewer, slow).await;
    let quiet = h.key(WorkspaceId::DEFAULT, Role::Viewer, slow).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let answer = h.call("GET", "/api/v1/jobs", Some(&noisy), None).await;
        statuses.push(answer.status.as_u16());
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer.code(), "rate_limited");
            let retry: u64 = answer.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1, "Retry-After says when");
            assert_eq!(answer.headers["ratelimit-remaining"], "0");
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15);
    for n in 0..5 {
        let answer = h.call("GET", "/api/v1/jobs", Some(&quiet), None).await;
        assert_eq!(answer.status, StatusCode::OK, "the quiet key's call {n}");
        assert_eq!(answer.headers["ratelimit-limit"], "5");
        assert_eq!(
            answer.headers["ratelimit-remaining"].to_str().unwrap(),
            (4 - n).to_string()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_deep_and_long_inputs_are_refused_with_their_own_codes() {
    let h = Harness::start(ApiConfig::default()).await;
    let operator = h.key(WorkspaceId::DEFAULT, Role::Operator, UNLIMITED).await;
    let huge = json!({"steps": [{"action": "navigate", "url": "https://example.com/"}], "labels": {"x": "a".repeat(2 * 1024 * 1024)}});
    let answer = h
        .call("POST", "/api/v1/jobs", Some(&operator), Some(huge))
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.code(), "payload_too_large");

    let deep = format!(
        r#"{{"steps":[{{"action":"navigate","url":"https://example.com/"}}],"labels":{}1{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let answer = call(&h.app, "POST", "/api/v1/jobs", Some(&operator), Some(deep)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "json_too_deep");

    let long = format!("/api/v1/jobs?queue={}", "q".repeat(9000));
    let answer = h.call("GET", &long, Some(&operator), None).await;
    assert_eq!(answer.status, StatusCode::URI_TOO_LONG);
    assert_eq!(answer.code(), "uri_too_long");
    let answer = h
        .call("GET", &format!("/nowhere/{}", "x".repeat(9000)), None, None)
        .await;
    assert_eq!(
        answer.status,
        StatusCode::URI_TOO_LONG,
        "before routing, too"
    );

    let unknown = json!({"name": "x", "role": "viewer", "colour": "red"});
    let admin = h.key(WorkspaceId::DEFAULT, Role::Admin, UNLIMITED).await;
    let answer = h
        .call("POST", "/api/v1/keys", Some(&admin), Some(unknown))
        .await;
    assert_eq!(answer.code(), "unknown_field");
    let bad_role = json!({"name": "x", "role": "root"});
    let answer = h
        .call("POST", "/api/v1/keys", Some(&admin), Some(bad_role))
        .await;
    assert_eq!(answer.code(), "invalid_enum_value");
    let bad_name = json!({"name": "no spaces allowed"});
    let answer = h
        .call("POST", "/api/v1/workspaces", Some(&admin), Some(bad_name))
        .await;
    assert_eq!(answer.code(), "validation_failed");
    let taken = json!({"name": "team-b"});
    let answer = h
        .call("POST", "/api/v1/workspaces", Some(&admin), Some(taken))
        .await;
    assert_eq!(answer.code(), "workspace_exists");

    // Nothing was stored by any of it.
    let listed = h.call("GET", "/api/v1/jobs", Some(&operator), None).await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_security_headers_are_always_set() {
    let h = Harness::start(ApiConfig::default()).await;
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/api/v1/jobs")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(preflight).await.unwrap();
    assert!(!response
        .headers()
        .contains_key("access-control-allow-origin"));
    for uri in ["/health", "/docs/", "/api/v1/jobs"] {
        let answer = h.call("GET", uri, None, None).await;
        for header in [
            "x-content-type-options",
            "x-frame-options",
            "content-security-policy",
            "referrer-policy",
        ] {
            assert!(answer.headers.contains_key(header), "{uri} lacks {header}");
        }
    }

    let config = ApiConfig {
        cors_origins: vec!["https://ui.example".to_owned()],
        ..ApiConfig::default()
    };
    let app = replica(&h.queue, &h.store, config);
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/api/v1/jobs")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app
        .clone()
        .oneshot(preflight("https://ui.example"))
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://ui.example"
    );
    let other = app
        .clone()
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_changes_and_failures_without_secrets() {
    let h = Harness::start(ApiConfig::default()).await;
    let admin = h.key(WorkspaceId::DEFAULT, Role::Admin, UNLIMITED).await;
    let operator = h.key(WorkspaceId::DEFAULT, Role::Operator, UNLIMITED).await;
    let viewer = h.key(WorkspaceId::DEFAULT, Role::Viewer, UNLIMITED).await;
    let job = submit(&h, &operator).await;
    h.call(
        "POST",
        &format!("/api/v1/jobs/{job}/cancel"),
        Some(&operator),
        None,
    )
    .await;
    let denied = h
        .call("POST", "/api/v1/jobs", Some(&viewer), Some(job_body()))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let wrong = format!(
        "{}{}",
        &admin[..admin.len() - 1],
        if admin.ends_with('a') { 'b' } else { 'a' }
    );
    h.call("GET", "/api/v1/jobs", Some(&wrong), None).await;
    let created = h
        .call(
            "POST",
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    let secret = created.body["token"].as_str().unwrap().to_owned();
    h.call("GET", "/api/v1/jobs", Some(&viewer), None).await;

    // Entries are written in the background: wait until they are.
    h.audit.flush().await;
    let page = h
        .call("GET", "/api/v1/audit", Some(&admin), None)
        .await
        .body;
    let items = page["items"].as_array().unwrap();
    let actions: Vec<(&str, &str)> = items
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("create_key", "success"),
            ("list_jobs", "unauthenticated"),
            ("create_job", "forbidden"),
            ("cancel_job", "success"),
            ("create_job", "success"),
        ],
        "newest first; reads are not recorded, failed authentications are"
    );
    assert_eq!(
        items[4]["target"],
        json!(job.to_string()),
        "the created job"
    );
    assert_eq!(items[3]["target"], json!(job.to_string()));
    assert_eq!(items[3]["route"], "POST /api/v1/jobs/{id}/cancel");
    assert_eq!(items[0]["target"], created.body["key"]["id"]);
    assert_eq!(items[2]["role"], "viewer");
    assert_eq!(
        items[1]["key_id"],
        Value::Null,
        "a wrong secret names no key"
    );
    let text = page.to_string();
    for secret in [&admin, &operator, &viewer, &wrong, &secret] {
        assert!(!text.contains(&secret[21..]), "no secret in the audit log");
    }

    // Filters.
    let only = h
        .call(
            "GET",
            "/api/v1/audit?action=create_job&outcome=success",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(only.body["items"].as_array().unwrap().len(), 1);
    let bad = h
        .call("GET", "/api/v1/audit?outcome=maybe", Some(&admin), None)
        .await;
    assert_eq!(bad.code(), "invalid_query");
    // The keys' last use was recorded (in the background, too).
    let operator_id = operator.parse::<accord_model::ApiToken>().unwrap().id;
    h.audit.flush().await;
    let keys = h.call("GET", "/api/v1/keys", Some(&admin), None).await.body;
    let used = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["id"] == json!(operator_id))
        .unwrap()["last_used_at"]
        .clone();
    assert!(used.is_string(), "last use of the operator key: {used}");

    // Another workspace's admin sees none of it.
    let b_admin = h.key(h.other.id, Role::Admin, UNLIMITED).await;
    let theirs = h.call("GET", "/api/v1/audit", Some(&b_admin), None).await;
    assert_eq!(theirs.body["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_routes_round_trip() {
    let h = Harness::start(ApiConfig::default()).await;
    let key = h.key(WorkspaceId::DEFAULT, Role::Operator, UNLIMITED).await;
    let key = Some(key.as_str());

    let workflows = h.call("GET", "/api/v1/workflows", key, None).await;
    assert_eq!(workflows.status, StatusCode::OK);
    assert_eq!(workflows.body["workflows"].as_array().unwrap().len(), 3);
    let one = h
        .call("GET", "/api/v1/workflows/smoke_check", key, None)
        .await;
    assert_eq!(one.body["input_schema"]["type"], json!("object"), "{one:?}");
    let unknown = h.call("GET", "/api/v1/workflows/nope", key, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let monitor = |every: &str, input: Value| {
        json!({
            "name": "news",
            "workflow": "page_change",
            "url": "https://example.com/",
            "input": input,
            "schedule": {"every": every},
            "tags": ["news"]
        })
    };
    let refused = h
        .call(
            "POST",
            "/api/v1/monitors",
            key,
            Some(monitor("1s", json!({}))),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("schedule.every:"));
    let refused = h
        .call(
            "POST",
            "/api/v1/monitors",
            key,
            Some(monitor("5m", json!({"ignore": ["("]}))),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("input.ignore[0]:"));

    let created = h
        .call(
            "POST",
            "/api/v1/monitors",
            key,
            Some(monitor("5m", json!({"selectors": ["main"]}))),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["schedule"], json!({"every": "5m"}));

    let listed = h.call("GET", "/api/v1/monitors?tag=news", key, None).await;
    assert_eq!(listed.body["items"][0]["id"], json!(id));
    let none = h.call("GET", "/api/v1/monitors?tag=other", key, None).await;
    assert_eq!(none.body["items"], json!([]));

    let patched = h
        .call(
            "PATCH",
            &format!("/api/v1/monitors/{id}"),
            key,
            Some(json!({"name": "renamed", "schedule": {"cron": "0 9 * * *", "time_zone": "Europe/Paris"}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.body["name"], json!("renamed"));
    let paused = h
        .call("POST", &format!("/api/v1/monitors/{id}/pause"), key, None)
        .await;
    assert_eq!(paused.body["paused"], json!(true));

    let run = h
        .call("POST", &format!("/api/v1/monitors/{id}/run"), key, None)
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{run:?}");
    assert_eq!(run.body["trigger"], json!("manual"));
    let again = h
        .call("POST", &format!("/api/v1/monitors/{id}/run"), key, None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["error"]["code"], json!("monitor_busy"));
    let runs = h
        .call("GET", &format!("/api/v1/monitors/{id}/runs"), key, None)
        .await;
    assert_eq!(runs.body["items"].as_array().unwrap().len(), 1);
    let series = h
        .call("GET", &format!("/api/v1/monitors/{id}/series"), key, None)
        .await;
    assert_eq!(series.body["points"], json!([]));

    let deleted = h
        .call("DELETE", &format!("/api/v1/monitors/{id}"), key, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = h
        .call("GET", &format!("/api/v1/monitors/{id}"), key, None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["error"]["code"], json!("monitor_not_found"));
}

/// The politeness calls of the worker protocol: a permit per domain up to
/// the cap, a wait with its reason beyond it, a `Retry-After` that pauses the
/// domain, and clear refusals of bad hosts and delays.
#[tokio::test]
async fn egress_permits_hold_the_cap_and_pauses() {
    let h = Harness::start(ApiConfig::default()).await;
    let worker = h.key(WorkspaceId::DEFAULT, Role::Worker, UNLIMITED).await;
    let acquire = |host: &str, extra: Value| {
        let mut body = json!({
            "worker_id": "w",
            "job_id": JobId::new(),
            "hosts": [host],
            "hold_ms": 60000
        });
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let mut permits = Vec::new();
    for _ in 0..16 {
        let answer = h
            .call(
                "POST",
                "/internal/v1/worker/egress/acquire",
                Some(&worker),
                Some(acquire("cap.example", json!({}))),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        permits.push(answer.body["permit_id"].as_str().unwrap().to_owned());
    }
    // The default cap is 16 in flight per domain.
    let full = h
        .call(
            "POST",
            "/internal/v1/worker/egress/acquire",
            Some(&worker),
            Some(acquire("CAP.example.", json!({}))),
        )
        .await;
    assert_eq!(
        full.body["wait"]["reason"], "concurrency",
        "{:?}",
        full.body
    );
    assert_eq!(full.body["wait"]["host"], "cap.example");
    assert!(full.body.get("permit_id").is_none());
    // Ending one with a Retry-After frees its slot and pauses the domain.
    let finish = json!({"worker_id": "w", "items": [{
        "permit_id": permits[0], "host": "cap.example",
        "outcome": "neutral", "retry_after_ms": 30000
    }]});
    let ended = h
        .call(
            "POST",
            "/internal/v1/worker/egress/finish",
            Some(&worker),
            Some(finish),
        )
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{:?}", ended.body);
    let counted = json!({"worker_id": "w", "items": [{
        "permit_id": permits[2], "host": "cap.example",
        "outcome": "success", "status": 200, "latency_ms": 40
    }, {
        "permit_id": permits[3], "host": "cap.example",
        "outcome": "failure"
    }]});
    let ended = h
        .call(
            "POST",
            "/internal/v1/worker/egress/finish",
            Some(&worker),
            Some(counted),
        )
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{:?}", ended.body);
    let admin = h.key(WorkspaceId::DEFAULT, Role::Viewer, UNLIMITED).await;
    let domain = h
        .call("GET", "/api/v1/domains/CAP.example", Some(&admin), None)
        .await;
    assert_eq!(domain.status, StatusCode::OK, "{:?}", domain.body);
    let hour = &domain.body["last_hour"];
    assert_eq!(hour["requests"], 2, "{:?}", domain.body);
    assert_eq!(hour["status_2xx"], 1);
    assert_eq!(hour["errors"], 1);
    assert_eq!(hour["waits"], 1, "the one wait for a slot");
    assert_eq!(hour["latency_p50_ms"], 50);
    assert_eq!(domain.body["in_flight"], 13);
    assert_eq!(domain.body["breaker"], "closed");
    assert_eq!(domain.body["breaker_failures"], 1);
    assert!(domain.body["paused_until"].is_string(), "{:?}", domain.body);
    let metrics = h.call_text("GET", "/metrics", Some(&admin)).await;
    assert!(
        metrics.contains("accord_domain_requests_last_hour{domain=\"cap.example\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    let list = h.call("GET", "/api/v1/domains", Some(&admin), None).await;
    assert_eq!(list.body["items"][0]["domain"], "cap.example");
    let unknown = h
        .call("GET", "/api/v1/domains/never.example", Some(&admin), None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "domain_not_found");
    let paused = h
        .call(
            "POST",
            "/internal/v1/worker/egress/acquire",
            Some(&worker),
            Some(acquire("cap.example", json!({}))),
        )
        .await;
    assert_eq!(paused.body["wait"]["reason"], "paused", "{:?}", paused.body);
    let left = paused.body["wait"]["retry_in_ms"].as_u64().unwrap();
    assert!((25_000..=30_000).contains(&left), "{left}");
    // Another domain is not affected.
    let other = h
        .call(
            "POST",
            "/internal/v1/worker/egress/acquire",
            Some(&worker),
            Some(acquire(
                "other.example",
                json!({"crawl_delay_ms": {"other.example": 500}}),
            )),
        )
        .await;
    assert!(other.body["permit_id"].is_string(), "{:?}", other.body);
    // A domain policy's numbers replace the defaults: one at a time there.
    let strict = json!({"policy_limits": {"strict.example": {"max_concurrent": 1}}});
    let first = h
        .call(
            "POST",
            "/internal/v1/worker/egress/acquire",
            Some(&worker),
            Some(acquire("strict.example", strict.clone())),
        )
        .await;
    assert!(first.body["permit_id"].is_string(), "{:?}", first.body);
    let second = h
        .call(
            "POST",
            "/internal/v1/worker/egress/acquire",
            Some(&worker),
            Some(acquire("strict.example", strict)),
        )
        .await;
    assert_eq!(
        second.body["wait"]["reason"], "concurrency",
        "{:?}",
        second.body
    );
    // A permit of another worker cannot be ended by this one.
    let foreign = json!({"worker_id": "someone-else", "items": [{
        "permit_id": permits[1], "host": "cap.example", "outcome": "success"
    }]});
    let refused = h
        .call(
            "POST",
            "/internal/v1/worker/egress/finish",
            Some(&worker),
            Some(foreign),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("items[0].permit_id"),
        "{:?}",
        refused.body
    );
    for (extra, field) in [
        (json!({"hosts": ["a b"]}), "hosts[0]"),
        (json!({"hosts": []}), "hosts"),
        (json!({"hold_ms": 10}), "hold_ms"),
        (
            json!({"policy_limits": {"x.example": {"max_concurrent": 0}}}),
            "policy_limits",
        ),
        (
            json!({"crawl_delay_ms": {"x.example": 3600000}}),
            "crawl_delay_ms",
        ),
    ] {
        let answer = h
            .call(
                "POST",
                "/internal/v1/worker/egress/acquire",
                Some(&worker),
                Some(acquire("cap.example", extra.clone())),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{extra}");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{extra}: {:?}",
            answer.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_answer_404_alike_for_every_bad_token() {
    let mut config = ApiConfig::default();
    // Two bad tokens below drain it.
    config.rate_limits.failed_auth = RateLimit {
        burst: 2,
        per_second: 0.001,
    };
    let h = Harness::start(config).await;
    let a_viewer = h.key(WorkspaceId::DEFAULT, Role::Viewer, UNLIMITED).await;
    let b_viewer = h.key(h.other.id, Role::Viewer, UNLIMITED).await;
    let made = h
        .call(
            "POST",
            "/api/v1/feed-tokens",
            Some(&b_viewer),
            Some(json!({"name": "r"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let b_token = made.body["token"].as_str().unwrap().to_owned();
    // B's token reads B's feed, with no key.
    let own = h
        .call(
            "GET",
            &format!("/feeds/{b_token}/workspace.atom"),
            None,
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{own:?}");
    // A's monitor through B's token: 404, like a token that does not exist.
    let a_monitor = h
        .call(
            "POST",
            "/api/v1/monitors",
            Some(&h.key(WorkspaceId::DEFAULT, Role::Operator, UNLIMITED).await),
            body_for("create_monitor"),
        )
        .await;
    let a_monitor = a_monitor.body["id"].as_str().unwrap().to_owned();
    let bad = [
        format!("/feeds/{b_token}/monitors/{a_monitor}.atom"),
        format!("/feeds/{b_token}/monitors/{a_monitor}"),
        format!("/feeds/acf_{}/workspace.atom", "x".repeat(43)),
        "/feeds/nonsense/workspace.atom".to_owned(),
    ];
    for uri in &bad {
        // An API key does not open a feed either.
        let answer = h.call("GET", uri, Some(&a_viewer), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}: {answer:?}");
        assert_eq!(answer.code(), "feed_not_found", "{uri}");
        assert_eq!(answer.body["error"]["message"], "no such feed");
    }
    // Bad tokens drained the client's failed-auth bucket: guessing is slow.
    let limited = h.call("GET", &bad[2], None, None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{limited:?}");
}
