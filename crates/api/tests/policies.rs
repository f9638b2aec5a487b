//! Domain policies through the real router over a real (SQLite) store:
//! validation errors that name the field, a pattern once per workspace,
//! the CRUD round trip, most specific wins, a `*` policy that denies by
//! default, `403 policy_denied` naming the rule at every submission route
//! (jobs, batches, monitors, workflow runs), its audit entry, and the
//! policies handed to a worker with its claim.

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

const UNLIMITED: RateLimit = RateLimit {
    burst: 1_000_000,
    per_second: 1_000_000.0,
};

struct Harness {
    store: Arc<dyn Store>,
    app: Router,
    audit: AuditRecorder,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
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
            audit.clone(),
            ApiConfig::default(),
            CancellationToken::new(),
        ));
        Harness {
            store,
            app,
            audit,
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
            rate_limit: Some(UNLIMITED),
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

    async fn call(&self, method: &str, uri: &str, key: &str, body: Option<Value>) -> Answer {
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
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn create(&self, key: &str, policy: Value) -> Answer {
        self.call("POST", "/api/v1/policies", key, Some(policy))
            .await
    }
}

fn job(url: &str) -> Value {
    json!({"steps": [{"action": "navigate", "url": url}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_are_refused_naming_the_field() {
    let h = Harness::start().await;
    let key = h.key(Role::Operator).await;
    let check = |policy: Value, status: StatusCode, code: &'static str, starts: &'static str| {
        let h = &h;
        let key = &key;
        async move {
            let answer = h.create(key, policy.clone()).await;
            assert_eq!(answer.status, status, "{policy}: {answer:?}");
            assert_eq!(answer.code(), code, "{policy}");
            assert!(
                answer.message().starts_with(starts),
                "{policy}: {:?} should start with {starts:?}",
                answer.message()
            );
        }
    };
    let bad = StatusCode::BAD_REQUEST;
    check(
        json!({"pattern": "exa mple.com"}),
        bad,
        "invalid_policy",
        "pattern: ",
    )
    .await;
    check(
        json!({"pattern": "*example.com"}),
        bad,
        "invalid_policy",
        "pattern: ",
    )
    .await;
    check(
        json!({"pattern": "https://example.com/"}),
        bad,
        "invalid_policy",
        "pattern: ",
    )
    .await;
    check(
        json!({"pattern": "example.com", "allow_cidrs": ["10.0.0.0/8", "intranet"]}),
        bad,
        "invalid_policy",
        "allow_cidrs[1]: ",
    )
    .await;
    check(
        json!({"pattern": "example.com", "requests_per_minute": 0}),
        bad,
        "invalid_policy",
        "requests_per_minute: must not be 0",
    )
    .await;
    check(
        json!({"pattern": "example.com", "max_concurrent": 5000}),
        bad,
        "invalid_policy",
        "max_concurrent: 5000 is out of range",
    )
    .await;
    check(
        json!({"pattern": "example.com", "min_gap_ms": 3_600_001}),
        bad,
        "invalid_policy",
        "min_gap_ms: ",
    )
    .await;
    check(
        json!({"pattern": "example.com", "engines": ["auto"]}),
        bad,
        "invalid_policy",
        "engines[0]: ",
    )
    .await;
    check(
        json!({"pattern": "example.com", "steps": ["navigate", "teleport"]}),
        bad,
        "invalid_policy",
        "steps[1]: ",
    )
    .await;
    // Only an object: not the members as an array.
    let array = h
        .call(
            "POST",
            "/api/v1/policies",
            &key,
            Some(json!(["example.com"])),
        )
        .await;
    assert_eq!(array.code(), "invalid_field", "{array:?}");
    // Unknown members are refused like everywhere else.
    let unknown = h
        .create(&key, json!({"pattern": "example.com", "rate": 5}))
        .await;
    assert_eq!(unknown.code(), "unknown_field", "{unknown:?}");

    // A pattern once per workspace, however it is spelt.
    let first = h.create(&key, json!({"pattern": "example.com"})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let twin = h.create(&key, json!({"pattern": "EXAMPLE.com."})).await;
    assert_eq!(twin.status, StatusCode::CONFLICT, "{twin:?}");
    assert_eq!(twin.code(), "policy_exists");
    assert!(twin.message().contains("`example.com`"));
    // Nothing was written by the refusals.
    let list = h.call("GET", "/api/v1/policies", &key, None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_round_trip_most_specific_first() {
    let h = Harness::start().await;
    let key = h.key(Role::Operator).await;
    let viewer = h.key(Role::Viewer).await;
    let default = h
        .create(&key, json!({"pattern": "*", "allowed": false}))
        .await;
    let wild = h
        .create(
            &key,
            json!({"pattern": "*.example.com", "requests_per_minute": 60, "max_concurrent": 2,
                   "min_gap_ms": 500, "engines": ["http"], "steps": ["navigate", "extract"],
                   "obey_robots": false, "allow_cidrs": ["10.1.0.0/16", "10.2.3.4"]}),
        )
        .await;
    assert_eq!(wild.status, StatusCode::CREATED, "{wild:?}");
    assert_eq!(
        wild.body["allow_cidrs"],
        json!(["10.1.0.0/16", "10.2.3.4/32"])
    );
    assert_eq!(wild.body["obey_robots"], json!(false));
    let exact = h.create(&key, json!({"pattern": "www.example.com"})).await;
    let list = h.call("GET", "/api/v1/policies", &viewer, None).await;
    let patterns: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pattern"].as_str().unwrap())
        .collect();
    assert_eq!(patterns, ["www.example.com", "*.example.com", "*"]);
    assert_eq!(default.body["allowed"], json!(false));
    assert_eq!(exact.body["obey_robots"], json!(true), "obeyed by default");

    let id = wild.body["id"].as_str().unwrap();
    let got = h
        .call("GET", &format!("/api/v1/policies/{id}"), &viewer, None)
        .await;
    assert_eq!(got.body, wild.body);
    // PATCH: given members replace, null clears.
    let patched = h
        .call(
            "PATCH",
            &format!("/api/v1/policies/{id}"),
            &key,
            Some(json!({"requests_per_minute": null, "engines": null, "min_gap_ms": 100})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.body["requests_per_minute"], Value::Null);
    assert_eq!(patched.body["engines"], Value::Null);
    assert_eq!(patched.body["min_gap_ms"], json!(100));
    assert_eq!(patched.body["max_concurrent"], json!(2));
    let renamed = h
        .call(
            "PATCH",
            &format!("/api/v1/policies/{id}"),
            &key,
            Some(json!({"pattern": "www.example.com"})),
        )
        .await;
    assert_eq!(renamed.code(), "policy_exists", "{renamed:?}");
    let zero = h
        .call(
            "PATCH",
            &format!("/api/v1/policies/{id}"),
            &key,
            Some(json!({"requests_per_minute": 0})),
        )
        .await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    assert!(zero.message().starts_with("requests_per_minute: "));
    // A viewer reads but does not write.
    let refused = h
        .call("DELETE", &format!("/api/v1/policies/{id}"), &viewer, None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let deleted = h
        .call("DELETE", &format!("/api/v1/policies/{id}"), &key, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = h
        .call("GET", &format!("/api/v1/policies/{id}"), &key, None)
        .await;
    assert_eq!(gone.code(), "policy_not_found");
    let array = h
        .call(
            "PATCH",
            &format!("/api/v1/policies/{}", exact.body["id"].as_str().unwrap()),
            &key,
            Some(json!([null, null])),
        )
        .await;
    assert_eq!(array.code(), "invalid_field", "{array:?}");
    let bad_id = h.call("GET", "/api/v1/policies/nope", &key, None).await;
    assert_eq!(bad_id.code(), "invalid_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_refused_by_the_most_specific_policy_and_audited() {
    let h = Harness::start().await;
    let key = h.key(Role::Operator).await;
    let admin = h.key(Role::Admin).await;
    // Deny by default; allow example.com's subdomains over HTTP with a few
    // steps; deny one of them outright.
    for policy in [
        json!({"pattern": "*", "allowed": false}),
        json!({"pattern": "*.example.com", "engines": ["http"], "steps": ["navigate", "extract", "assert"]}),
        json!({"pattern": "blocked.example.com", "allowed": false}),
    ] {
        assert_eq!(h.create(&key, policy).await.status, StatusCode::CREATED);
    }
    let submit = |body: Value| h.call("POST", "/api/v1/jobs", &key, Some(body));

    let allowed = submit(job("https://www.example.com/")).await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{allowed:?}");

    let check = |answer: Answer, message: &str| {
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
        assert_eq!(answer.code(), "policy_denied");
        assert_eq!(answer.message(), message);
    };
    check(
        submit(job("https://other.org/")).await,
        "steps[0]: domain policy `*` denies the host (other.org)",
    );
    check(
        submit(job("https://blocked.example.com/x")).await,
        "steps[0]: domain policy `blocked.example.com` denies the host (blocked.example.com)",
    );
    check(
        submit(json!({"engine": "browser", "steps": [{"action": "navigate", "url": "https://www.example.com/"}]})).await,
        "steps[0]: domain policy `*.example.com` forbids the browser engine (allowed: http) (www.example.com)",
    );
    check(
        submit(json!({"steps": [{"action": "navigate", "url": "https://www.example.com/"}, {"action": "save_html"}]})).await,
        "steps[1]: domain policy `*.example.com` forbids the `save_html` step (www.example.com)",
    );
    // A batch names the job.
    let batch = h
        .call(
            "POST",
            "/api/v1/jobs/batch",
            &key,
            Some(json!({"jobs": [job("https://www.example.com/"), job("https://other.org/")]})),
        )
        .await;
    check(
        batch,
        "jobs[1].steps[0]: domain policy `*` denies the host (other.org)",
    );
    // Monitors and workflow runs are held to the same policies.
    let monitor = h
        .call(
            "POST",
            "/api/v1/monitors",
            &key,
            Some(
                json!({"name": "m", "workflow": "page_change", "url": "https://other.org/",
                        "schedule": {"every": "1h"}}),
            ),
        )
        .await;
    assert_eq!(monitor.code(), "policy_denied", "{monitor:?}");
    assert!(monitor
        .message()
        .contains("domain policy `*` denies the host (other.org)"));
    let run = h
        .call(
            "POST",
            "/api/v1/workflows/page_change/run",
            &key,
            Some(json!({"url": "https://blocked.example.com/", "input": {}})),
        )
        .await;
    assert_eq!(run.code(), "policy_denied", "{run:?}");
    // A monitor created while allowed cannot be moved onto a denied host.
    let ok = h
        .call(
            "POST",
            "/api/v1/monitors",
            &key,
            Some(
                json!({"name": "m", "workflow": "page_change", "url": "https://www.example.com/",
                        "schedule": {"every": "1h"}}),
            ),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{ok:?}");
    let moved = h
        .call(
            "PATCH",
            &format!("/api/v1/monitors/{}", ok.body["id"].as_str().unwrap()),
            &key,
            Some(json!({"url": "https://blocked.example.com/"})),
        )
        .await;
    assert_eq!(moved.code(), "policy_denied", "{moved:?}");

    // Every refusal is in the audit log with the rule that refused it.
    h.audit.flush().await;
    let audit = h
        .call(
            "GET",
            "/api/v1/audit?action=create_job&outcome=forbidden",
            &admin,
            None,
        )
        .await;
    let items = audit.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{audit:?}");
    let details: Vec<&str> = items
        .iter()
        .map(|e| e["detail"].as_str().unwrap_or(""))
        .collect();
    assert!(
        details.contains(&"403 Forbidden: steps[0]: domain policy `*` denies the host (other.org)"),
        "{details:?}"
    );
    for action in [
        "create_jobs",
        "create_monitor",
        "run_workflow",
        "update_monitor",
    ] {
        let answer = h
            .call(
                "GET",
                &format!("/api/v1/audit?action={action}&outcome=forbidden"),
                &admin,
                None,
            )
            .await;
        let items = answer.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{action}: {answer:?}");
        assert!(items[0]["detail"]
            .as_str()
            .unwrap()
            .contains("domain policy"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_job_carries_its_workspace_policies() {
    let h = Harness::start().await;
    let key = h.key(Role::Operator).await;
    let worker = h.key(Role::Worker).await;
    let claim = json!({"worker_id": "w", "limit": 1, "wait_ms": 0});
    // Without policies, the claim carries none.
    assert_eq!(
        h.call(
            "POST",
            "/api/v1/jobs",
            &key,
            Some(job("https://example.com/"))
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let plain = h
        .call(
            "POST",
            "/internal/v1/worker/claim",
            &worker,
            Some(claim.clone()),
        )
        .await;
    assert_eq!(plain.body["jobs"][0]["policies"], Value::Null, "{plain:?}");

    h.create(
        &key,
        json!({"pattern": "*.denied.example", "allowed": false}),
    )
    .await;
    h.create(
        &key,
        json!({"pattern": "example.com", "obey_robots": false}),
    )
    .await;
    h.call(
        "POST",
        "/api/v1/jobs",
        &key,
        Some(job("https://example.com/")),
    )
    .await;
    let answer = h
        .call("POST", "/internal/v1/worker/claim", &worker, Some(claim))
        .await;
    let mut patterns: Vec<&str> = answer.body["jobs"][0]["policies"]["policies"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer:?}"))
        .iter()
        .map(|p| p["pattern"].as_str().unwrap())
        .collect();
    patterns.sort();
    assert_eq!(patterns, ["*.denied.example", "example.com"]);
}
