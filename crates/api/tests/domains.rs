//! `/api/v1/domains` through the real router over a real (SQLite) store:
//! the engine the `auto` engine learned for a domain (an `auto` job that
//! a worker moved to the browser) shows in the list and in the domain's
//! own view, with its reason and expiry; a domain without such a memory
//! shows none. Everything goes through the API and the worker protocol.

use std::sync::Arc;

use accord_api::auth::{hash_secret, new_token};
use accord_api::{router, ApiConfig, ApiState, AuditRecorder};
use accord_cluster::Cluster;
use accord_model::{ApiKey, RateLimit, Role, SystemClock, WorkspaceId};
use accord_queue::{Queue, QueueConfig, QueueMetrics};
use accord_store::{SqliteConfig, SqliteStore, Store, StoredApiKey};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Harness {
    store: Arc<dyn Store>,
    app: Router,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&SqliteConfig::new(dir.path().join("accord.db")))
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let queue = Queue::new(
            store.clone(),
            Arc::new(SystemClock),
            QueueConfig::default(),
            Arc::new(QueueMetrics::new()),
        );
        let (audit, _task) = AuditRecorder::start(store.clone());
        let app = router(ApiState::new(
            queue,
            store.clone(),
            Cluster::local(),
            audit,
            ApiConfig::default(),
            CancellationToken::new(),
        ));
        Harness {
            store,
            app,
            _dir: dir,
        }
    }

    async fn key(&self, role: Role) -> String {
        let token = new_token();
        let key = ApiKey {
            id: token.id.clone(),
            workspace_id: WorkspaceId::DEFAULT,
            name: format!("{role} test key"),
            role,
            rate_limit: Some(RateLimit {
                burst: 1_000_000,
                per_second: 1_000_000.0,
            }),
            created_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        self.store
            .api_key_insert(&StoredApiKey {
                key,
                secret_hash: hash_secret(token.secret()),
            })
            .await
            .unwrap();
        token.reveal()
    }

    /// Calls the API; answers the status and the JSON body (`null` if none).
    async fn call(
        &self,
        method: &str,
        uri: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {key}"));
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Runs a permit for `host` through the worker protocol, so the domain
    /// has traffic in its counters (as a worker's request would give it).
    async fn reach(&self, worker: &str, job_id: &Value, host: &str) {
        let (status, permit) = self
            .call(
                "POST",
                "/internal/v1/worker/egress/acquire",
                worker,
                Some(json!({"worker_id": "w", "job_id": job_id, "hosts": [host], "hold_ms": 1000})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{permit}");
        let (status, body) = self
            .call(
                "POST",
                "/internal/v1/worker/egress/finish",
                worker,
                Some(json!({"worker_id": "w", "items": [{
                    "permit_id": permit["permit_id"], "host": host, "outcome": "success",
                    "status": 200, "latency_ms": 12
                }]})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_domains_view_shows_the_engine_auto_learned() {
    let h = Harness::start().await;
    let operator = h.key(Role::Operator).await;
    let viewer = h.key(Role::Viewer).await;
    let worker = h.key(Role::Worker).await;
    let submit =
        |url: &str| json!({"engine": "auto", "steps": [{"action": "navigate", "url": url}]});
    let (status, created) = h
        .call(
            "POST",
            "/api/v1/jobs",
            &operator,
            Some(submit("https://needs-js.example/app")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // A worker runs it on HTTP, finds the page needs a browser, and moves
    // it there: the control plane remembers that for the domain.
    let (_, claimed) = h
        .call(
            "POST",
            "/internal/v1/worker/claim",
            &worker,
            Some(json!({"worker_id": "w", "limit": 1, "wait_ms": 0, "engines": ["http"]})),
        )
        .await;
    let job = &claimed["jobs"][0];
    let reason = "the page has no content without scripts";
    let (status, escalated) = h
        .call(
            "POST",
            "/internal/v1/worker/escalate",
            &worker,
            Some(json!({"worker_id": "w", "items": [{
                "job_id": job["job_id"], "attempt": job["attempt"], "reason": reason
            }]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{escalated}");
    assert_eq!(
        escalated["accepted"].as_array().map(Vec::len),
        Some(1),
        "{escalated}"
    );
    h.reach(&worker, &job["job_id"], "needs-js.example").await;
    h.reach(&worker, &job["job_id"], "plain.example").await;

    let (status, list) = h.call("GET", "/api/v1/domains", &viewer, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap_or_else(|| panic!("{list}"));
    let find = |domain: &str| {
        items
            .iter()
            .find(|item| item["domain"] == domain)
            .unwrap_or_else(|| panic!("{domain} missing from {list}"))
            .clone()
    };
    let learned = find("needs-js.example");
    assert_eq!(learned["engine"]["engine"], "browser", "{learned}");
    assert_eq!(learned["engine"]["reason"], reason, "{learned}");
    let decided: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(learned["engine"]["decided_at"].clone()).unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(learned["engine"]["expires_at"].clone()).unwrap();
    assert!(expires > decided, "{learned}");
    assert_eq!(find("plain.example").get("engine"), None);

    let (status, one) = h
        .call("GET", "/api/v1/domains/needs-js.example", &viewer, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["engine"], learned["engine"]);
    let (_, plain) = h
        .call("GET", "/api/v1/domains/plain.example", &viewer, None)
        .await;
    assert_eq!(plain.get("engine"), None, "{plain}");
}
