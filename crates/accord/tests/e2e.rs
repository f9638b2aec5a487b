//! End-to-end tests: the real `accord` binary against a real page served by
//! the fixture server on loopback.

mod common;

use std::time::Duration;

use accord_model::{ErrorKind, ExtractedValue, JobErrorCode, JobState, RejectReason, RejectedItem};
use accord_test_support::{FixtureServer, PAGE_H1, PAGE_LINKS};
use common::*;

fn documented_job(url: &str) -> String {
    format!(
        r#"{{"engine":"http","priority":"high","steps":[{{"action":"navigate","url":"{url}"}},{{"action":"extract","fields":{{"title":{{"selector":"h1"}},"links":{{"selector":"a","attribute":"href","all":true}}}}}},{{"action":"assert","status":200}}]}}"#
    )
}

#[tokio::test]
async fn submitted_job_succeeds_with_extracted_values() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();

    let url = fixture.url("/page");
    let raw = accord
        .http()
        .post(format!("{}/api/v1/jobs", accord.url()))
        .header("content-type", "application/json")
        .body(documented_job(&url))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 201);
    let created: accord_model::Job = raw.json().await.unwrap();
    assert_eq!(created.priority, accord_model::Priority::High);

    let job = wait_finished(&client, created.id).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let result = job.result.expect("a succeeded job has a result");
    assert_eq!(result.status, 200);
    assert_eq!(result.final_url, url);
    assert_eq!(
        result.extracted["title"],
        ExtractedValue::One(Some(PAGE_H1.to_owned()))
    );
    let links: Vec<String> = PAGE_LINKS.iter().map(|l| l.to_string()).collect();
    assert_eq!(result.extracted["links"], ExtractedValue::List(links));
    assert_eq!(
        event_kinds(&client, job.id).await,
        ["created", "claimed", "succeeded"]
    );

    // The raw wire format carries the documented fields.
    let wire: serde_json::Value = accord
        .http()
        .get(format!("{}/api/v1/jobs/{}", accord.url(), job.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wire["state"], "succeeded");
    assert_eq!(wire["result"]["extracted"]["title"], PAGE_H1);
    assert!(wire["result"]["timings"]["total_ms"].is_u64());
}

#[tokio::test]
async fn batch_submission_is_all_or_none() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let good = job(&documented_job(&fixture.url("/page")));
    let created = client.submit_jobs(vec![good.clone(); 20]).await.unwrap();
    assert_eq!(created.len(), 20);
    for created in &created {
        let done = wait_finished(&client, created.id).await;
        assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    }

    // One bad job rejects the batch and names its index; nothing is stored.
    let mut bad = good.clone();
    bad.max_attempts = 0;
    let err = client
        .submit_jobs(vec![good.clone(), good.clone(), bad])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("validation_failed"));
    assert!(err.to_string().contains("jobs[2].max_attempts"), "{err}");
    let empty = client.submit_jobs(Vec::new()).await.unwrap_err();
    assert_eq!(empty.code(), Some("validation_failed"));
    let page = client.list_jobs(&Default::default()).await.unwrap();
    assert_eq!(page.items.len(), 20);
}

#[tokio::test]
async fn idempotency_key_replays_or_conflicts() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let http = accord.http();
    let submit = |body: String| {
        http.post(format!("{}/api/v1/jobs", accord.url()))
            .header("content-type", "application/json")
            .header("idempotency-key", "order-42")
            .body(body)
            .send()
    };
    let body = documented_job(&fixture.url("/page"));
    let first = submit(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: accord_model::Job = first.json().await.unwrap();
    // Same key, same body (formatted differently): the original job, 200.
    let reformatted =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&body).unwrap())
            .unwrap();
    let again = submit(reformatted).await.unwrap();
    assert_eq!(again.status(), 200);
    let again: accord_model::Job = again.json().await.unwrap();
    assert_eq!(again.id, first.id);
    // Same key, different body: 409.
    let conflict = submit(documented_job(&fixture.url("/other")))
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
    let error: serde_json::Value = conflict.json().await.unwrap();
    assert_eq!(error["error"]["code"], "idempotency_key_reused");
    let page = accord
        .client()
        .list_jobs(&Default::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "only one job was created");
}

#[tokio::test]
async fn job_that_fails_twice_then_succeeds() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let url = fixture.url("/flaky/twice/2");
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{url}"}},{{"action":"assert","status":200}}],
            "max_attempts":3,"retry":{{"initial_delay_ms":50,"jitter":0.0}}}}"#
    ));
    let id = client.submit_job(&spec, None).await.unwrap().job.id;
    let job = wait_finished(&client, id).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.attempt, 3);
    assert_eq!(job.last_error.map(|e| e.kind), Some(ErrorKind::Retryable));
    assert_eq!(fixture.hits("/flaky/twice"), 3);
    assert_eq!(
        event_kinds(&client, id).await,
        [
            "created",
            "claimed",
            "failed",
            "claimed",
            "failed",
            "claimed",
            "succeeded"
        ]
    );
}

#[tokio::test]
async fn exhausted_job_is_dead_then_requeued() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let url = fixture.url("/flaky/exhaust/2");
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{url}"}}],"max_attempts":2,"retry":{{"initial_delay_ms":50,"jitter":0.0}}}}"#
    ));
    let id = client.submit_job(&spec, None).await.unwrap().job.id;
    let dead = wait_finished(&client, id).await;
    assert_eq!(dead.state, JobState::Dead, "{dead:?}");
    assert_eq!((dead.attempt, dead.attempts_left), (2, 0));
    assert!(dead.last_error.unwrap().message.contains("503"));

    let requeued = client.retry_job(id).await.unwrap();
    assert_eq!((requeued.attempts_left, requeued.result), (2, None));
    let job = wait_finished(&client, id).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.attempt, 3);
    let kinds = event_kinds(&client, id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "requeued").count(), 1);
    assert_eq!(kinds.last().map(String::as_str), Some("succeeded"));
    // A finished job cannot be requeued again.
    let err = client.retry_job(id).await.unwrap_err();
    assert_eq!(err.code(), Some("job_not_retryable"));
}

#[tokio::test]
async fn cancel_queued_and_running_jobs() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // One slot: the next job can only run once the cancelled one was aborted.
    let accord = up(dir.path(), &["--concurrency", "1"]);
    let client = accord.client();

    let run_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let later = job(&format!(
        r#"{{"run_at":"{run_at}","steps":[{{"action":"navigate","url":"{}"}}]}}"#,
        fixture.url("/never")
    ));
    let queued = client.submit_job(&later, None).await.unwrap().job;
    assert_eq!(queued.state, JobState::Scheduled);
    let cancelled = client.cancel_job(queued.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    // Cancelling again is a no-op, not an error.
    assert_eq!(
        client.cancel_job(queued.id).await.unwrap().state,
        JobState::Cancelled
    );

    let hanging = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{}"}}]}}"#,
        fixture.url("/hang")
    ));
    let running = client.submit_job(&hanging, None).await.unwrap().job;
    wait_state(&client, running.id, JobState::Running).await;
    eventually(Duration::from_secs(30), "the page request", || async {
        (fixture.hits("/hang") > 0).then_some(())
    })
    .await;
    let cancelled = client.cancel_job(running.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);

    let next = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{}"}}]}}"#,
        fixture.url("/page")
    ));
    let next = client.submit_job(&next, None).await.unwrap().job;
    let done = wait_finished(&client, next.id).await;
    assert_eq!(
        done.state,
        JobState::Succeeded,
        "the worker freed its only slot by aborting the cancelled job"
    );
    assert!(
        accord.logs().contains("stopping job"),
        "the worker logged the abort"
    );
    assert_eq!(
        client.get_job(running.id).await.unwrap().state,
        JobState::Cancelled
    );
    assert_eq!(fixture.hits("/never"), 0);
    let err = client.cancel_job(done.id).await.unwrap_err();
    assert_eq!(err.code(), Some("job_not_cancellable"));
}

#[tokio::test]
async fn killed_worker_job_is_rerun_by_another_worker_exactly_once() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &["--lease-seconds", "2"]);
    let client = server.client();
    let mut first = worker(
        dir.path(),
        server.url(),
        "worker-a",
        &["--concurrency", "1"],
    );

    // The first request for this key hangs; the next one answers at once.
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{}"}},{{"action":"extract","fields":{{"h":{{"selector":"h1"}}}}}}],"max_attempts":3}}"#,
        fixture.url("/hang-once/kill")
    ));
    let id = client.submit_job(&spec, None).await.unwrap().job.id;
    kill_worker_mid_job(&client, id, &mut first, "worker-a", || {
        fixture.hits("/hang-once/kill") == 1
    })
    .await;

    let _second = worker(
        dir.path(),
        server.url(),
        "worker-b",
        &["--concurrency", "1"],
    );
    let job = wait_finished(&client, id).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.attempt, 2);
    assert!(
        job.worker_id
            .as_ref()
            .is_some_and(|w| w.as_str().ends_with(".worker-b")),
        "{job:?}"
    );
    let events = client.job_events(id, None).await.unwrap().items;
    let count = |kind: &str| events.iter().filter(|e| e.kind.as_str() == kind).count();
    assert_eq!(
        (count("claimed"), count("lease_expired"), count("succeeded")),
        (2, 1, 1),
        "{events:?}"
    );
    let succeeded = events
        .iter()
        .find(|e| e.kind.as_str() == "succeeded")
        .unwrap();
    assert!(succeeded
        .worker_id
        .as_ref()
        .is_some_and(|w| w.as_str().ends_with(".worker-b")));
}

#[tokio::test]
async fn stale_completion_is_rejected_and_changes_nothing() {
    use accord_model::{
        ClaimRequest, CompleteItem, CompleteRequest, JobResult, RunEngine, WorkerId,
    };
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let client = server.client();
    let id = client
        .submit_job(
            &job(r#"{"steps":[{"action":"navigate","url":"http://127.0.0.1:9/"}]}"#),
            None,
        )
        .await
        .unwrap()
        .job
        .id;
    let me = WorkerId::new("manual-worker").unwrap();
    let claim = ClaimRequest {
        worker_id: me.clone(),
        queues: Vec::new(),
        limit: 1,
        wait_ms: 5_000,
        engines: vec![RunEngine::Http],
    };
    let worker_client = server.worker_client();
    let claimed = worker_client.claim(&claim).await.unwrap().jobs;
    assert_eq!(claimed.len(), 1);
    let lease = claimed[0].lease();
    let complete = |attempt| CompleteRequest {
        worker_id: me.clone(),
        items: vec![CompleteItem {
            job_id: id,
            attempt,
            result: JobResult {
                extracted: Default::default(),
                status: 200,
                final_url: "http://127.0.0.1:9/".into(),
                timings: Default::default(),
                engine: accord_model::RunEngine::Http,
                engine_reason: None,
                artifacts: Vec::new(),
            },
        }],
    };
    let stale_lease = vec![RejectedItem {
        job_id: id,
        reason: RejectReason::StaleLease,
    }];
    let stale = worker_client
        .complete(&complete(lease.attempt + 1))
        .await
        .unwrap();
    assert_eq!(stale.accepted, []);
    assert_eq!(stale.rejected, stale_lease, "a wrong token is refused");
    assert_eq!(client.get_job(id).await.unwrap().state, JobState::Running);

    let accepted = worker_client
        .complete(&complete(lease.attempt))
        .await
        .unwrap();
    assert_eq!(accepted.accepted, vec![id]);
    assert_eq!(accepted.rejected, []);
    let again = worker_client
        .complete(&complete(lease.attempt))
        .await
        .unwrap();
    assert_eq!(again.rejected, stale_lease, "nothing is completed twice");
    assert_eq!(
        event_kinds(&client, id).await,
        ["created", "claimed", "succeeded"]
    );
}

#[tokio::test]
async fn timeout_is_enforced_by_the_worker() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{}"}}],"timeout_seconds":1,"max_attempts":1}}"#,
        fixture.url("/hang")
    ));
    let id = client.submit_job(&spec, None).await.unwrap().job.id;
    let job = wait_finished(&client, id).await;
    assert_eq!(job.state, JobState::Dead);
    let error = job.last_error.unwrap();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error:?}");
}

#[tokio::test]
async fn ctrl_c_finishes_running_jobs_before_exit() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut accord = up(dir.path(), &[]);
    let client = accord.client();
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{}"}}]}}"#,
        fixture.url("/slow/1500")
    ));
    let id = client.submit_job(&spec, None).await.unwrap().job.id;
    wait_state(&client, id, JobState::Running).await;
    let status = accord.interrupt_and_wait().await;
    assert!(
        status.success(),
        "graceful exit: {status:?}\n{}",
        accord.logs()
    );
    drop(accord);

    // Same data directory: the job finished before the process exited.
    let again = up(dir.path(), &[]);
    let job = again.client().get_job(id).await.unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
}

#[tokio::test]
async fn robots_txt_is_obeyed_and_fetched_once() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let client = accord.client();
    let submit = |path: &str| {
        let spec = job(&format!(
            r#"{{"steps":[{{"action":"navigate","url":"{}"}}]}}"#,
            fixture.url(path)
        ));
        let client = client.clone();
        async move { client.submit_job(&spec, None).await.unwrap() }
    };
    let refused = submit("/robots-private/report").await;
    let allowed = submit("/page").await;
    let refused = wait_finished(&client, refused.job.id).await;
    let allowed = wait_finished(&client, allowed.job.id).await;
    assert_eq!(allowed.state, JobState::Succeeded, "{allowed:?}");
    // Refused for good, at once, with the code scripts can tell apart.
    assert_eq!(refused.state, JobState::Dead, "{refused:?}");
    assert_eq!(refused.attempt, 1);
    let error = refused.last_error.expect("a failed job has an error");
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert_eq!(error.code, Some(JobErrorCode::RobotsDisallowed));
    assert_eq!(
        error.message,
        format!(
            "step 0 (`navigate`): {}: the site's robots.txt disallows it for Accord",
            fixture.url("/robots-private/report")
        )
    );
    // The page robots.txt refuses was never requested; robots.txt once.
    assert_eq!(fixture.hits("/robots-private"), 0);
    assert_eq!(fixture.hits("/robots.txt"), 1);
}

#[tokio::test]
async fn private_targets_are_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let accord = Process::start(
        &[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
        "up-default",
        true,
    )
    .with_admin_key_from(&data);
    let client = accord.client();
    for url in [
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://169.254.169.254/latest/",
        "http://[::1]/",
    ] {
        let spec = job(&format!(
            r#"{{"steps":[{{"action":"navigate","url":"{url}"}}]}}"#
        ));
        let err = client.submit_job(&spec, None).await.unwrap_err();
        assert_eq!(err.code(), Some("target_not_allowed"), "{url}");
    }
    let status = client.ops_status().await.unwrap();
    assert!(!status.allow_private_targets);
}

#[tokio::test]
async fn bad_input_gets_its_own_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let http = accord.http();
    let base = accord.url().to_owned();
    let nav = r#"{"action":"navigate","url":"https://example.com/"}"#;
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/jobs".into(),
            Some("{not json"),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/api/v1/jobs".into(),
            Some(r#"{"steps":[],"extra":true}"#),
            422,
            "unknown_field",
        ),
        (
            "POST",
            "/api/v1/jobs".into(),
            Some(r#"{"steps":[{"action":"navigate","url":"https://e.com/"}],"priority":"asap"}"#),
            422,
            "invalid_enum_value",
        ),
        (
            "POST",
            "/api/v1/jobs".into(),
            Some(r#"{"steps":[{"action":"fly"}]}"#),
            422,
            "invalid_enum_value",
        ),
        (
            "POST",
            "/api/v1/jobs".into(),
            Some(r#"{"steps":"nope"}"#),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/api/v1/jobs".into(),
            Some(r#"{"steps":[]}"#),
            422,
            "validation_failed",
        ),
        (
            "GET",
            "/api/v1/jobs/not-a-uuid".into(),
            None,
            400,
            "invalid_id",
        ),
        (
            "GET",
            format!("/api/v1/jobs/{}", accord_model::JobId::new()),
            None,
            404,
            "job_not_found",
        ),
        (
            "POST",
            format!("/api/v1/jobs/{}/cancel", accord_model::JobId::new()),
            None,
            404,
            "job_not_found",
        ),
        (
            "GET",
            "/api/v1/jobs?state=nope".into(),
            None,
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/jobs?limit=0".into(),
            None,
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/nothing".into(),
            None,
            404,
            "route_not_found",
        ),
        (
            "DELETE",
            "/api/v1/jobs".into(),
            None,
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/internal/v1/worker/claim".into(),
            Some(r#"{"worker_id":"w","limit":0}"#),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/internal/v1/worker/claim".into(),
            Some(r#"{"worker_id":"bad id","limit":1}"#),
            422,
            "invalid_field",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let mut request = http.request(method.parse().unwrap(), format!("{base}{path}"));
        if path.starts_with("/internal/") {
            request = request.bearer_auth(accord.worker_key.as_deref().unwrap());
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{method} {path} {body:?}"
        );
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            error["error"]["code"], code,
            "{method} {path} {body:?}: {error}"
        );
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Not JSON at all, and too large.
    let response = http
        .post(format!("{base}/api/v1/jobs"))
        .body(format!(r#"{{"steps":[{nav}]}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let huge = format!(
        r#"{{"steps":[{nav}],"labels":{{"x":"{}"}}}}"#,
        "a".repeat(3 * 1024 * 1024)
    );
    let response = http
        .post(format!("{base}/api/v1/jobs"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "payload_too_large");
    // Nothing was stored by any of it.
    assert!(accord
        .client()
        .list_jobs(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn docs_openapi_metrics_and_health_are_served() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &["--log-format", "json"]);
    let base = accord.url().to_owned();
    let client = accord.client();
    let id = client
        .submit_job(&job(&documented_job(&fixture.url("/page"))), None)
        .await
        .unwrap()
        .job
        .id;
    wait_state(&client, id, JobState::Succeeded).await;

    let openapi: serde_json::Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = openapi["paths"].as_object().unwrap();
    for path in [
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/events",
        "/api/v1/jobs/{id}/cancel",
        "/api/v1/jobs/{id}/retry",
        "/api/v1/queue/stats",
        "/api/v1/ops/status",
        "/health",
        "/ready",
        "/metrics",
        "/internal/v1/worker/claim",
        "/internal/v1/worker/heartbeat",
        "/internal/v1/worker/complete",
        "/internal/v1/worker/fail",
        "/internal/v1/worker/release",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }

    // The docs page and every asset it loads come from this server.
    let docs = reqwest::get(format!("{base}/docs/")).await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "docs must not load remote assets"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let response = reqwest::get(format!("{base}/docs/{asset}")).await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }

    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);

    let metrics = accord
        .http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "accord_jobs{queue=\"default\",state=\"succeeded\"} 1",
        "accord_jobs_enqueued_total{queue=\"default\"} 1",
        "accord_jobs_claimed_total{queue=\"default\"} 1",
        "accord_jobs_succeeded_total{queue=\"default\",engine=\"http\"} 1",
        "accord_job_claim_latency_seconds_count{queue=\"default\"} 1",
        "accord_job_execution_duration_seconds_count{engine=\"http\",outcome=\"succeeded\"} 1",
        "accord_workers 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    for family in [
        "accord_jobs_failed",
        "accord_jobs_dead",
        "accord_lease_expiries",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} counter")),
            "{family}"
        );
    }

    let stats = client.queue_stats().await.unwrap();
    assert_eq!(stats.by_state[&JobState::Succeeded], 1);
    assert_eq!(stats.last_minute.succeeded, 1);

    // JSON logs: every line about the job names it.
    let logs = accord.logs();
    let about_job: Vec<serde_json::Value> = logs
        .lines()
        .filter(|line| line.contains(&id.to_string()))
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"))
        })
        .collect();
    assert!(about_job.len() >= 3, "{logs}");
    for line in &about_job {
        let named = line["job_id"] == id.to_string() || line["span"]["job_id"] == id.to_string();
        assert!(named, "log line without job_id: {line}");
    }
}

#[tokio::test]
async fn postgres_backend_runs_the_documented_job() {
    let database = accord_test_support::TestDatabase::create().await;
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &["--database-url", &database.url()]);
    let client = accord.client();
    assert_eq!(client.ops_status().await.unwrap().store, "postgres");
    let id = client
        .submit_job(&job(&documented_job(&fixture.url("/page"))), None)
        .await
        .unwrap()
        .job
        .id;
    let job = wait_finished(&client, id).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let result = job.result.unwrap();
    assert_eq!(
        result.extracted["title"],
        ExtractedValue::One(Some(PAGE_H1.to_owned()))
    );
    assert_eq!(
        event_kinds(&client, id).await,
        ["created", "claimed", "succeeded"]
    );
}

#[tokio::test]
async fn postgres_replicas_share_one_queue_and_survive_a_killed_worker() {
    let database = accord_test_support::TestDatabase::create().await;
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = database.url();
    let one_dir = dir.path().join("one");
    let two_dir = dir.path().join("two");
    std::fs::create_dir_all(&one_dir).unwrap();
    std::fs::create_dir_all(&two_dir).unwrap();
    let replica_one = serve(&one_dir, &["--database-url", &url, "--lease-seconds", "2"]);
    let replica_two = serve(&two_dir, &["--database-url", &url, "--lease-seconds", "2"]);
    let mut first = worker(
        dir.path(),
        replica_one.url(),
        "pg-worker-a",
        &["--concurrency", "1"],
    );

    // Submitted through replica two, claimed by a worker of replica one.
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{}"}}],"max_attempts":3}}"#,
        fixture.url("/hang-once/pg")
    ));
    let id = replica_two
        .client()
        .submit_job(&spec, None)
        .await
        .unwrap()
        .job
        .id;
    kill_worker_mid_job(&replica_one.client(), id, &mut first, "pg-worker-a", || {
        fixture.hits("/hang-once/pg") == 1
    })
    .await;

    let _second = worker(
        dir.path(),
        replica_two.url(),
        "pg-worker-b",
        &["--concurrency", "1"],
    );
    let job = wait_finished(&replica_one.client(), id).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.attempt, 2);
    let kinds = ["claimed", "lease_expired", "succeeded"];
    assert_eq!(
        event_counts(&replica_two.client(), id, &kinds).await,
        [2, 1, 1]
    );
    // One replica runs the reaper and the pruner; when it dies, the other takes over.
    let leads = |replica: &Process| {
        let client = replica.client();
        async move {
            client
                .ops_status()
                .await
                .map(|s| s.maintenance_leader)
                .unwrap_or(false)
        }
    };
    let (one_leads, two_leads) =
        eventually(Duration::from_secs(30), "a maintenance leader", || async {
            let (one, two) = (leads(&replica_one).await, leads(&replica_two).await);
            (one || two).then_some((one, two))
        })
        .await;
    assert!(
        one_leads != two_leads,
        "exactly one leader: {one_leads} {two_leads}"
    );
    let (mut leader, follower) = if one_leads {
        (replica_one, replica_two)
    } else {
        (replica_two, replica_one)
    };
    leader.kill_hard();
    eventually(
        Duration::from_secs(30),
        "the follower to take over",
        || async {
            follower
                .client()
                .ops_status()
                .await
                .ok()
                .filter(|s| s.maintenance_leader)
        },
    )
    .await;
}

/// Chaos on PostgreSQL: two control planes and three workers as real
/// processes, 2,000 jobs submitted through both replicas, one worker and one
/// replica SIGKILLed mid-run and restarted. Afterwards the database and the
/// event log must show every accepted job finished, none completed twice,
/// and at no point a job left running past its lease plus the reaper's
/// interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_postgres_loses_nothing_and_completes_nothing_twice() {
    use sqlx::{Connection, Row};

    const JOBS: usize = 2_000;
    let database = accord_test_support::TestDatabase::create().await;
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = database.url();
    // Artifacts go to the data directory: keep it out of the source tree.
    let data = dir.path().join("data");
    let data = data.to_str().unwrap().to_owned();
    let server_args = |port: &str| -> Vec<String> {
        [
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &url,
            "--data-dir",
            &data,
            "--allow-target",
            "127.0.0.1/32",
            "--lease-seconds",
            "3",
            "--maintenance-interval-ms",
            "200",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let keys = provision_keys(dir.path(), &["--database-url", &url]);
    let start_server = |port: &str, name: &str| {
        let args = server_args(port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = Process::start(&args, dir.path(), name, true);
        process.admin_key = Some(keys.admin.clone());
        process
    };
    let mut replica_one = start_server("0", "replica-one");
    let replica_two = start_server("0", "replica-two");
    let one_url = replica_one.url().to_owned();
    let one_port = one_url.rsplit(':').next().unwrap().to_owned();
    let worker_args = ["--concurrency", "16"];
    let mut worker_a = worker(dir.path(), &one_url, "chaos-a", &worker_args);
    let _worker_b = worker(dir.path(), &one_url, "chaos-b", &worker_args);
    let _worker_c = worker(dir.path(), replica_two.url(), "chaos-c", &worker_args);

    // Watch the invariant "nothing runs past its lease plus the reaper's
    // interval (plus a leader fail-over)" during the whole run: the database
    // itself records every change to a running job (reaped, completed,
    // failed, released, renewed) that comes more than 1.5 s after its lease
    // expired. Every row is seen, so no violation slips between two looks.
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    for statement in [
        "CREATE TABLE chaos_overdue (job_id uuid NOT NULL, attempt integer NOT NULL, \
         overdue interval NOT NULL)",
        "CREATE FUNCTION chaos_note_overdue() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF OLD.state = 'running' \
              AND OLD.lease_expires_at < clock_timestamp() - interval '1500 milliseconds' THEN \
             INSERT INTO chaos_overdue VALUES \
               (OLD.id, OLD.attempt, clock_timestamp() - OLD.lease_expires_at); \
           END IF; \
           RETURN NULL; \
         END $$",
        "CREATE TRIGGER chaos_overdue AFTER UPDATE OR DELETE ON jobs \
         FOR EACH ROW EXECUTE FUNCTION chaos_note_overdue()",
    ] {
        sqlx::query(statement).execute(&mut db).await.unwrap();
    }

    // Submit through both replicas, 8 at a time; a client whose replica is
    // down retries on the other, as a real client behind a load balancer would.
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{}"}},{{"action":"extract","fields":{{"h":{{"selector":"h1"}}}}}}],"max_attempts":10,"retry":{{"initial_delay_ms":100}}}}"#,
        fixture.url("/page")
    ));
    let clients = [client_for(&one_url, &keys.admin), replica_two.client()];
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let submitted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut submitters = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (clients, spec, accepted, submitted) = (
            clients.clone(),
            spec.clone(),
            accepted.clone(),
            submitted.clone(),
        );
        submitters.spawn(async move {
            for i in 0..JOBS / 8 {
                let mut target = (n + i) % 2;
                loop {
                    match clients[target].submit_job(&spec, None).await {
                        Ok(done) => {
                            accepted.lock().unwrap().push(done.job.id);
                            submitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                        Err(err) if err.is_retryable() => {
                            target = 1 - target;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(err) => panic!("submit refused: {err}"),
                    }
                }
            }
        });
    }

    // Mid-run: kill a worker and a replica, then bring both back.
    eventually(
        Duration::from_secs(120),
        "a quarter of the jobs submitted",
        || async {
            (submitted.load(std::sync::atomic::Ordering::Relaxed) >= JOBS / 4).then_some(())
        },
    )
    .await;
    worker_a.kill_hard();
    replica_one.kill_hard();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _replica_one_again = start_server(&one_port, "replica-one-again");
    let _worker_a_again = worker(dir.path(), &one_url, "chaos-a2", &worker_args);

    while let Some(done) = submitters.join_next().await {
        done.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), JOBS);

    // Everything accepted (and anything else in the table) finishes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let rows =
            sqlx::query("SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(&mut db)
                .await
                .unwrap();
        let counts: Vec<(String, i64)> =
            rows.iter().map(|r| (r.get("state"), r.get("n"))).collect();
        if counts
            .iter()
            .all(|(state, _)| matches!(state.as_str(), "succeeded" | "dead" | "cancelled"))
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: String = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.path().extension().is_some_and(|e| e == "log"))
                .map(|entry| {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(15).collect();
                    format!(
                        "== {}\n{}\n",
                        entry.path().display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )
                })
                .collect();
            panic!("jobs still open after 180 s: {counts:?}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ids: Vec<uuid::Uuid> = accepted.iter().map(|id| id.as_uuid()).collect();
    let rows =
        sqlx::query("SELECT state, count(*) AS n FROM jobs WHERE id = ANY($1) GROUP BY state")
            .bind(&ids)
            .fetch_all(&mut db)
            .await
            .unwrap();
    let by_state: Vec<(String, i64)> = rows.iter().map(|r| (r.get("state"), r.get("n"))).collect();
    assert_eq!(
        by_state,
        vec![("succeeded".to_owned(), JOBS as i64)],
        "every accepted job succeeded"
    );
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT job_id FROM job_events WHERE kind = 'succeeded' \
         GROUP BY job_id HAVING count(*) > 1) AS doubled",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(twice, 0, "no job completed twice");
    let without_success: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs j WHERE j.id = ANY($1) AND NOT EXISTS \
         (SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.kind = 'succeeded')",
    )
    .bind(&ids)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(without_success, 0, "every success is in the event log");
    let overdue: Vec<(uuid::Uuid, i32, String)> =
        sqlx::query_as("SELECT job_id, attempt, overdue::text FROM chaos_overdue")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(
        overdue,
        [],
        "no job stayed running past its lease plus the reaper interval"
    );
}

/// PostgreSQL itself restarts under load (a cluster of the test's own):
/// while it is down the API answers 503, never 500, and every job accepted
/// before, during or after the outage still runs to completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_loses_nothing_and_answers_503() {
    let cluster = std::sync::Arc::new(accord_test_support::ThrowawayCluster::start());
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        dir.path(),
        &["--database-url", &cluster.url(), "--lease-seconds", "3"],
    );
    let _worker = worker(
        dir.path(),
        server.url(),
        "restart-worker",
        &["--concurrency", "8"],
    );
    let base = server.url().to_owned();
    let body = documented_job(&fixture.url("/page"));

    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<accord_model::JobId>::new()));
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        u16,
        usize,
    >::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let key = server.key().to_owned();
    let submitter = tokio::spawn({
        let (accepted, statuses, stop, base) = (
            accepted.clone(),
            statuses.clone(),
            stop.clone(),
            base.clone(),
        );
        async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            while !stop.is_cancelled() {
                let response = http
                    .post(format!("{base}/api/v1/jobs"))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the control plane itself stays up");
                let status = response.status().as_u16();
                *statuses.lock().unwrap().entry(status).or_default() += 1;
                if status == 201 {
                    let job: accord_model::Job = response.json().await.unwrap();
                    accepted.lock().unwrap().push(job.id);
                } else {
                    let error: serde_json::Value = response.json().await.unwrap();
                    assert_eq!(
                        error["error"]["code"], "store_unavailable",
                        "{status}: {error}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let count = || accepted.lock().unwrap().len();
    eventually(Duration::from_secs(60), "100 jobs accepted", || async {
        (count() >= 100).then_some(())
    })
    .await;

    let down = cluster.clone();
    tokio::task::spawn_blocking(move || down.stop())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "a 503 while the database is down",
        || async { statuses.lock().unwrap().contains_key(&503).then_some(()) },
    )
    .await;
    let ready = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(ready.status(), 503);

    let up_again = cluster.clone();
    tokio::task::spawn_blocking(move || up_again.start_again())
        .await
        .unwrap();
    let before = count();
    eventually(
        Duration::from_secs(60),
        "100 more jobs accepted after the restart",
        || async { (count() >= before + 100).then_some(()) },
    )
    .await;
    stop.cancel();
    submitter.await.unwrap();

    let statuses = statuses.lock().unwrap().clone();
    assert!(
        statuses.keys().all(|s| *s == 201 || *s == 503),
        "only 201 and 503: {statuses:?}"
    );
    let client = server.client();
    let accepted = accepted.lock().unwrap().clone();
    for id in &accepted {
        let job = wait_finished(&client, *id).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }
    let ready = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

/// Runs a one-off `accord` command and returns (success, stdout, stderr).
fn accord_cli(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(BIN)
        .args(args)
        .env_remove("ACCORD_API_KEY")
        .output()
        .expect("run accord");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// First start makes an admin key (0600 file, used by the CLI for the
/// local server); a restart does not make another. Workspaces and keys are
/// managed from the CLI, and a revoked key stops working at once.
#[tokio::test]
async fn up_makes_one_admin_key_and_the_cli_manages_keys_and_workspaces() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let mut accord = up(dir.path(), &[]);
    let url = accord.url().to_owned();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for file in ["admin.key", "worker.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file} is private");
    }
    let admin = accord.key().to_owned();
    admin_key_was_printed_into_logs(&accord, &data, &admin);

    // The CLI finds admin.key by itself for a local server.
    let (ok, _, err) = accord_cli(&["jobs", "list", "--server", &url, "--data-dir", &data_arg]);
    assert!(ok, "{err}");
    let (ok, _, err) = accord_cli(&[
        "jobs",
        "list",
        "--server",
        &url,
        "--data-dir",
        "/nonexistent",
    ]);
    assert!(!ok && err.contains("unauthenticated"), "{err}");

    let (ok, out, err) = accord_cli(&[
        "workspaces",
        "create",
        "team-a",
        "--server",
        &url,
        "--data-dir",
        &data_arg,
    ]);
    assert!(ok && out.contains("team-a"), "{out}{err}");
    let (ok, out, err) = accord_cli(&[
        "keys",
        "create",
        "--role",
        "operator",
        "--workspace",
        "team-a",
        "--name",
        "ci",
        "--server",
        &url,
        "--data-dir",
        &data_arg,
        "-o",
        "json",
    ]);
    assert!(ok, "{err}");
    let created: accord_model::CreatedApiKey = serde_json::from_str(&out).unwrap();
    let team = client_for(&url, &created.token);
    let id = team
        .submit_job(
            &job(r#"{"steps":[{"action":"navigate","url":"http://127.0.0.1:9/"}]}"#),
            None,
        )
        .await
        .unwrap()
        .job
        .id;
    let err = accord.client().get_job(id).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("job_not_found"),
        "other workspaces see nothing"
    );

    let (ok, out, _) = accord_cli(&[
        "keys",
        "list",
        "--workspace",
        "team-a",
        "--server",
        &url,
        "--data-dir",
        &data_arg,
    ]);
    assert!(ok && out.contains(created.key.id.as_str()), "{out}");
    assert!(
        !out.contains(&created.token),
        "listing never shows a secret"
    );
    let (ok, _, err) = accord_cli(&[
        "keys",
        "revoke",
        created.key.id.as_str(),
        "--workspace",
        "team-a",
        "--server",
        &url,
        "--data-dir",
        &data_arg,
    ]);
    assert!(ok, "{err}");
    let err = team.get_job(id).await.unwrap_err();
    assert_eq!(err.code(), Some("unauthenticated"));

    // A restart keeps the keys: no second admin key.
    accord.interrupt_and_wait().await;
    let again = up(dir.path(), &[]);
    assert_eq!(again.key(), admin, "admin.key is kept");
    let keys = again.client().list_keys(None).await.unwrap();
    let admins = keys
        .items
        .iter()
        .filter(|key| key.role == accord_model::Role::Admin)
        .count();
    assert_eq!(admins, 1);
}

/// Regression: the first admin key went to standard output even when that
/// was not a terminal (a service manager's log), and `accord.db` was
/// world-readable. Now the key is only in its 0600 file, the terminal is
/// told where, and the data directory and database files are private.
fn admin_key_was_printed_into_logs(accord: &Process, data: &std::path::Path, admin: &str) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(data), 0o700, "the data directory is private");
    for file in ["accord.db", "accord.db-wal", "accord.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file} is private");
    }
    let stdout = accord.stdout_until("admin key: new, saved to");
    assert!(!stdout.contains(admin), "the key is not printed: {stdout}");
    assert!(!accord.logs().contains(admin), "the key is not logged");
}

/// Bound to a non-loopback address, `serve` refuses to start until a key
/// exists; a worker refuses to start without a key.
#[tokio::test]
async fn serve_needs_a_key_before_it_listens_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let (ok, _, err) = accord_cli(&["serve", "--listen", "0.0.0.0:0", "--data-dir", data_arg]);
    assert!(!ok, "serve must refuse");
    assert!(err.contains("no API key exists"), "{err}");

    let (ok, out, err) = accord_cli(&[
        "keys",
        "create",
        "--offline",
        "--role",
        "admin",
        "--data-dir",
        data_arg,
    ]);
    assert!(ok && out.starts_with("acc_"), "{out}{err}");
    let server = Process::start(
        &["serve", "--listen", "0.0.0.0:0", "--data-dir", data_arg],
        dir.path(),
        "serve-remote",
        true,
    );
    assert!(server.url().contains(':'));

    let (ok, _, err) = accord_cli(&["worker", "--server", "http://127.0.0.1:9"]);
    assert!(!ok && err.contains("worker-role API key"), "{err}");
}

/// Reads a Server-Sent Events stream until it ends; returns its text.
async fn read_stream(response: reqwest::Response) -> String {
    let mut response = response;
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.expect("stream chunk") {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

/// Two replicas share Redis: a client following a job's events on one
/// replica sees the transitions made through the other at once, and a key's
/// rate limit is one bucket for both. The
/// replicas' own re-read interval is set to ten minutes, so only the notice
/// carried by Redis can wake the stream within the test's bounded wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_event_notices_and_rate_limits_through_redis() {
    let database = accord_test_support::TestDatabase::create().await;
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = database.url();
    let redis = accord_test_support::shared_redis_url();
    let shared = [
        "--database-url",
        url.as_str(),
        "--redis-url",
        redis.as_str(),
        "--event-poll-ms",
        "600000",
    ];
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let replica_a = serve(&a_dir, &shared);
    let replica_b = serve(&b_dir, &shared);
    for replica in [&replica_a, &replica_b] {
        let ready: serde_json::Value = reqwest::get(format!("{}/ready", replica.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["redis"], "up", "{ready}");
    }

    let id = replica_b
        .client()
        .submit_job(&job(&documented_job(&fixture.url("/page"))), None)
        .await
        .unwrap()
        .job
        .id;
    let following = replica_a
        .http()
        .get(format!(
            "{}/api/v1/jobs/{id}/events/stream",
            replica_a.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(following.status(), 200);
    assert!(following.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let reading = tokio::spawn(read_stream(following));
    // The job runs only now, on a worker of replica B.
    let _worker = worker(&b_dir, replica_b.url(), "fanout-worker", &[]);
    let text = tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("the stream on replica A saw the job finish through Redis")
        .unwrap();
    let kinds: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| {
            let event: accord_model::JobEvent = serde_json::from_str(data.trim()).unwrap();
            event.kind.as_str().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["created", "claimed", "succeeded"], "{text}");

    // Resuming after the last event sends nothing again, and ends.
    let last = text
        .lines()
        .filter_map(|line| line.strip_prefix("id:"))
        .next_back()
        .unwrap()
        .trim()
        .to_owned();
    let resumed = replica_a
        .http()
        .get(format!(
            "{}/api/v1/jobs/{id}/events/stream",
            replica_a.url()
        ))
        .header("last-event-id", &last)
        .send()
        .await
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(30), read_stream(resumed))
        .await
        .expect("a resumed stream of a finished job ends");
    assert!(!rest.contains("data:"), "{rest}");

    // A key's rate limit holds across both replicas: its bucket is in Redis.
    let limited = replica_a
        .client()
        .create_key(&accord_model::NewApiKey {
            name: "limited".to_owned(),
            role: accord_model::Role::Viewer,
            workspace: None,
            expires_at: None,
            rate_limit: Some(accord_model::RateLimit {
                burst: 4,
                per_second: 0.01,
            }),
        })
        .await
        .unwrap();
    let mut allowed = 0;
    for n in 0..12 {
        let replica = if n % 2 == 0 { &replica_a } else { &replica_b };
        match client_for(replica.url(), &limited.token)
            .list_jobs(&Default::default())
            .await
        {
            Ok(_) => allowed += 1,
            Err(err) => assert_eq!(err.code(), Some("rate_limited"), "{err}"),
        }
    }
    assert_eq!(allowed, 4, "one bucket for the key, shared by the replicas");
}

/// Redis going away degrades a replica, never breaks it: jobs still run,
/// `/ready` says `degraded`, and the replica goes back to Redis by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_keeps_working_while_redis_is_down() {
    let redis = accord_test_support::ThrowawayRedis::start();
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &["--redis-url", &redis.url()]);
    let _worker = worker(dir.path(), server.url(), "redis-outage-worker", &[]);
    let client = server.client();
    let ready = |expected: &'static str| {
        let url = format!("{}/ready", server.url());
        eventually(Duration::from_secs(30), expected, move || {
            let url = url.clone();
            async move {
                let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
                (body["redis"] == expected).then_some(body)
            }
        })
    };
    ready("up").await;

    redis.stop();
    let body = ready("down").await;
    assert_eq!(body["status"], "degraded");
    let id = client
        .submit_job(&job(&documented_job(&fixture.url("/page"))), None)
        .await
        .unwrap()
        .job
        .id;
    assert_eq!(wait_finished(&client, id).await.state, JobState::Succeeded);

    redis.restart();
    let body = ready("up").await;
    assert_eq!(body["status"], "ready");
}
