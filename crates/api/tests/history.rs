//! A monitor's history and one-off workflow runs on the real router over a
//! real (SQLite) store: the snapshot, diff and item routes with their
//! refusals (a run of another monitor, a missing parameter, items of a
//! page_change monitor), `POST /api/v1/workflows/{name}/run` (unknown
//! workflow, input errors naming the field, the run read back at its
//! `Location`) and the per-monitor gauges on `/metrics`. Outcomes computed
//! from real pages are covered end to end (`crates/accord/tests/monitors.rs`).

use std::sync::Arc;

use accord_api::auth::{hash_secret, new_token};
use accord_api::{router, ApiConfig, ApiState, AuditRecorder};
use accord_cluster::Cluster;
use accord_model::{ApiKey, RateLimit, Role, SystemClock, Workspace, WorkspaceId};
use accord_queue::{Queue, QueueConfig, QueueMetrics};
use accord_store::{SqliteConfig, SqliteStore, Store, StoredApiKey};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Harness {
    app: Router,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
    body: Value,
}

impl Answer {
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
            audit,
            ApiConfig::default(),
            CancellationToken::new(),
        ));
        Harness {
            app,
            store,
            _dir: dir,
        }
    }

    async fn key(&self, workspace: WorkspaceId) -> String {
        let token = new_token();
        let key = ApiKey {
            id: token.id.clone(),
            workspace_id: workspace,
            name: "test key".to_owned(),
            role: Role::Operator,
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
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn monitor(&self, key: &str, workflow: &str, input: Value) -> String {
        let created = self
            .call(
                "POST",
                "/api/v1/monitors",
                key,
                Some(json!({
                    "name": format!("a {workflow} monitor"),
                    "workflow": workflow,
                    "url": "https://example.com/",
                    "input": input,
                    "schedule": {"every": "1h"},
                    "paused": true
                })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        created.body["id"].as_str().unwrap().to_owned()
    }
}

/// Checks a refusal: its status and the start of its message.
fn check(answer: &Answer, status: StatusCode, message: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert!(
        answer.message().starts_with(message),
        "{message:?} expected: {answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_routes_refuse_what_is_not_this_monitors() {
    let h = Harness::start().await;
    let key = h.key(WorkspaceId::DEFAULT).await;
    let page = h
        .monitor(&key, "page_change", json!({"selectors": ["main"]}))
        .await;
    let other = h
        .monitor(&key, "page_change", json!({"selectors": ["main"]}))
        .await;
    // A run of the other monitor.
    let run = h
        .call("POST", &format!("/api/v1/monitors/{other}/run"), &key, None)
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{run:?}");
    let run_id = run.body["id"].as_i64().unwrap();

    let snapshots = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{page}/snapshots"),
            &key,
            None,
        )
        .await;
    assert_eq!(snapshots.status, StatusCode::OK, "{snapshots:?}");
    assert_eq!(snapshots.body, json!({"items": [], "next_cursor": null}));

    let across = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{page}/diff?from={run_id}&to={run_id}"),
            &key,
            None,
        )
        .await;
    check(
        &across,
        StatusCode::UNPROCESSABLE_ENTITY,
        &format!("from: run {run_id} is not a run of monitor {page}"),
    );
    // Its own monitor's run, still running: no snapshot yet.
    let unfinished = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{other}/diff?from={run_id}&to={run_id}"),
            &key,
            None,
        )
        .await;
    check(
        &unfinished,
        StatusCode::UNPROCESSABLE_ENTITY,
        &format!("from: run {run_id} kept no snapshot (it is running)"),
    );
    let missing = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{page}/diff?from=1"),
            &key,
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{missing:?}");
    assert!(missing.message().contains("`to`"), "{missing:?}");
    let nobody = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{}/diff?from=1&to=2", uuid_like()),
            &key,
            None,
        )
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{nobody:?}");

    let not_items = h
        .call("GET", &format!("/api/v1/monitors/{page}/items"), &key, None)
        .await;
    check(
        &not_items,
        StatusCode::UNPROCESSABLE_ENTITY,
        &format!("id: monitor {page} runs page_change"),
    );
    // Another workspace does not see the monitor at all.
    let theirs = Workspace {
        id: WorkspaceId::new(),
        name: "team-b".to_owned(),
        created_at: chrono::Utc::now(),
    };
    assert!(h.store.workspace_create(&theirs).await.unwrap());
    let their_key = h.key(theirs.id).await;
    let hidden = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{other}/diff?from={run_id}&to={run_id}"),
            &their_key,
            None,
        )
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{hidden:?}");

    // An items monitor with no run yet: an empty history, in both formats.
    let items = h
        .monitor(
            &key,
            "extract_items",
            json!({"item_selector": "li", "fields": {"title": {"selector": "h3"}}, "key": {"field": "title"}}),
        )
        .await;
    let json_page = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{items}/items"),
            &key,
            None,
        )
        .await;
    assert_eq!(json_page.body, json!({"items": [], "next_cursor": null}));
    let csv = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{items}/items?format=csv"),
            &key,
            None,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{csv:?}");
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.text,
        "key,status,first_seen_run,first_seen_at,last_seen_run,last_seen_at,removed_run,removed_at,changes\r\n"
    );
    // Bad filters are refused naming what is wrong.
    for (query, says) in [
        ("state=gone", "state"),
        ("q=", "q must be 1 to 200 characters"),
        (
            &format!("q={}", "x".repeat(201)) as &str,
            "q must be 1 to 200 characters, not 201",
        ),
        ("cursor=-1", "invalid cursor"),
    ] {
        let refused = h
            .call(
                "GET",
                &format!("/api/v1/monitors/{items}/items?{query}"),
                &key,
                None,
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {refused:?}"
        );
        let message = refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(says), "{query}: {message}");
    }
    // Good filters on an empty history: an empty page.
    let filtered = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{items}/items?state=removed&q=Rust&limit=5"),
            &key,
            None,
        )
        .await;
    assert_eq!(filtered.body, json!({"items": [], "next_cursor": null}));
    let bad_cursor = h
        .call(
            "GET",
            &format!("/api/v1/monitors/{items}/items?cursor=x"),
            &key,
            None,
        )
        .await;
    assert_eq!(bad_cursor.status, StatusCode::BAD_REQUEST, "{bad_cursor:?}");

    // The run in progress shows on /metrics.
    let metrics = h.call("GET", "/metrics", &key, None).await;
    let line = format!(
        "accord_monitor_last_run_state{{monitor_id=\"{other}\",monitor=\"a page_change monitor\",state=\"running\"}} 1"
    );
    assert!(metrics.text.contains(&line), "{line} in {}", metrics.text);
}

fn uuid_like() -> String {
    accord_model::MonitorId::new().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_run_is_checked_started_and_read_back() {
    let h = Harness::start().await;
    let key = h.key(WorkspaceId::DEFAULT).await;
    let unknown = h
        .call(
            "POST",
            "/api/v1/workflows/nope/run",
            &key,
            Some(json!({"url": "https://example.com/"})),
        )
        .await;
    check(&unknown, StatusCode::NOT_FOUND, "find workflow \"nope\"");
    let invalid = h
        .call(
            "POST",
            "/api/v1/workflows/page_change/run",
            &key,
            Some(json!({"url": "https://example.com/", "input": {"ignore": ["("]}})),
        )
        .await;
    check(
        &invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "input.ignore[0]:",
    );
    let unknown_field = h
        .call(
            "POST",
            "/api/v1/workflows/page_change/run",
            &key,
            Some(json!({"url": "https://example.com/", "colour": 1})),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown_field.message().contains("colour"),
        "{unknown_field:?}"
    );

    let started = h
        .call(
            "POST",
            "/api/v1/workflows/smoke_check/run",
            &key,
            Some(json!({"url": "https://example.com/", "input": {"required_selectors": ["main"]}})),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    let id = started.body["id"].as_str().unwrap();
    let location = format!("/api/v1/workflow-runs/{id}");
    assert_eq!(started.headers["location"], location.as_str());
    assert_eq!(started.body["url_self"], json!(location));
    assert_eq!(started.body["state"], json!("running"));
    assert_eq!(started.body["workflow"], json!("smoke_check"));
    // Its job is an ordinary job, labelled with its workflow.
    let job = h
        .call("GET", &format!("/api/v1/jobs/{id}"), &key, None)
        .await;
    assert_eq!(
        job.body["labels"]["workflow"],
        json!("smoke_check"),
        "{job:?}"
    );

    let read = h.call("GET", &location, &key, None).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert_eq!(read.body["state"], json!("running"));
    assert_eq!(read.body["input"]["required_selectors"], json!(["main"]));
    // Cancelled before it ran: the run ends with its job.
    let cancelled = h
        .call("POST", &format!("/api/v1/jobs/{id}/cancel"), &key, None)
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");
    let read = h.call("GET", &location, &key, None).await;
    assert_eq!(read.body["state"], json!("failed"), "{read:?}");
    assert_eq!(read.body["error"], json!("the run's job was cancelled"));

    let nobody = h
        .call(
            "GET",
            &format!("/api/v1/workflow-runs/{}", accord_model::JobId::new()),
            &key,
            None,
        )
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{nobody:?}");
}
