//! Queue lifecycle tests on the SQLite store with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use accord_model::{ClaimRequest, ManualClock, NewJob, WorkerId, WorkspaceId};
use accord_queue::{Queue, QueueConfig, QueueError, QueueMetrics};
use accord_store::{SqliteConfig, SqliteStore};
use chrono::TimeZone;

struct Harness {
    queue: Queue,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn harness(config: QueueConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("q.db")))
        .await
        .unwrap();
    let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let queue = Queue::new(
        Arc::new(store),
        Arc::new(clock.clone()),
        config,
        Arc::new(QueueMetrics::new()),
    );
    Harness {
        queue,
        clock,
        _dir: dir,
    }
}

fn job(url: &str) -> NewJob {
    serde_json::from_str(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{url}"}}]}}"#
    ))
    .unwrap()
}

fn claim_request(wait_ms: u64) -> ClaimRequest {
    ClaimRequest {
        worker_id: WorkerId::new("w1").unwrap(),
        queues: Vec::new(),
        limit: 10,
        wait_ms,
        engines: accord_model::RunEngine::ALL.to_vec(),
    }
}

#[tokio::test]
async fn waiting_claim_wakes_on_insert() {
    // With no polling backstop to speak of, only the wake-up can deliver the job.
    let config = QueueConfig {
        claim_poll_interval: Duration::from_secs(3600),
        ..QueueConfig::default()
    };
    let h = harness(config).await;
    let queue = h.queue.clone();
    let waiting = tokio::spawn(async move {
        queue
            .claim(
                accord_model::WorkerScope::AllWorkspaces,
                &claim_request(30_000),
            )
            .await
    });
    // Insert only once the claim has looked, found nothing and waits.
    h.queue
        .claims_waiting()
        .wait_for(|waiting| *waiting == 1)
        .await
        .unwrap();
    let enqueued = h
        .queue
        .enqueue(WorkspaceId::DEFAULT, job("https://example.com/"), None)
        .await
        .unwrap();
    let claimed = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("claim woke")
        .unwrap()
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job_id, enqueued.job.id);
}

#[tokio::test]
async fn empty_claim_returns_after_its_wait() {
    let config = QueueConfig {
        max_claim_wait: Duration::from_millis(300),
        ..QueueConfig::default()
    };
    let h = harness(config).await;
    let claim = |wait_ms| {
        let queue = h.queue.clone();
        async move {
            let started = tokio::time::Instant::now();
            let claimed = tokio::time::timeout(
                Duration::from_secs(30),
                queue.claim(
                    accord_model::WorkerScope::AllWorkspaces,
                    &claim_request(wait_ms),
                ),
            )
            .await
            .expect("an empty claim returns once its wait is over")
            .unwrap();
            assert!(claimed.is_empty());
            started.elapsed()
        }
    };
    // No wait: it answers after one look.
    claim(0).await;
    // Lower bounds only: a sleep never ends early, so these cannot flake.
    let waited = claim(150).await;
    assert!(waited >= Duration::from_millis(150), "waited {waited:?}");
    // A wait past the configured cap is cut to the cap (the 30 s bound above
    // fails the test if it is not).
    let capped = claim(600_000).await;
    assert!(capped >= Duration::from_millis(300), "waited {capped:?}");
}

#[tokio::test]
async fn reaper_runs_on_the_injected_clock() {
    let h = harness(QueueConfig::default()).await;
    let id = h
        .queue
        .enqueue(WorkspaceId::DEFAULT, job("https://example.com/"), None)
        .await
        .unwrap()
        .job
        .id;
    h.queue
        .claim(accord_model::WorkerScope::AllWorkspaces, &claim_request(0))
        .await
        .unwrap();
    assert_eq!(h.queue.maintain_once().await.unwrap().reaped, 0);
    h.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(h.queue.maintain_once().await.unwrap().reaped, 1);
    let job = h.queue.get(WorkspaceId::DEFAULT, id).await.unwrap();
    assert_eq!(job.state, accord_model::JobState::Available);
    let metrics = h.queue.render_metrics().await.unwrap();
    assert!(
        metrics.contains("accord_lease_expiries_total{queue=\"default\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn retention_prunes_finished_jobs() {
    let config = QueueConfig {
        retention: Some(Duration::from_secs(3600)),
        ..QueueConfig::default()
    };
    let h = harness(config).await;
    let id = h
        .queue
        .enqueue(WorkspaceId::DEFAULT, job("https://example.com/"), None)
        .await
        .unwrap()
        .job
        .id;
    h.queue.cancel(WorkspaceId::DEFAULT, id).await.unwrap();
    assert_eq!(h.queue.maintain_once().await.unwrap().pruned, 0);
    h.clock.advance(chrono::Duration::seconds(3601));
    assert_eq!(h.queue.maintain_once().await.unwrap().pruned, 1);
    assert!(matches!(
        h.queue.get(WorkspaceId::DEFAULT, id).await,
        Err(QueueError::JobNotFound(_))
    ));
}

#[tokio::test]
async fn private_literal_targets_are_refused_unless_allowed() {
    let h = harness(QueueConfig::default()).await;
    for url in [
        "http://127.0.0.1/",
        "http://localhost:8080/",
        "http://10.0.0.8/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:192.168.0.1]/",
    ] {
        let err = h
            .queue
            .enqueue(WorkspaceId::DEFAULT, job(url), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, QueueError::TargetNotAllowed(_)),
            "{url}: {err:?}"
        );
    }
    assert!(h
        .queue
        .enqueue(WorkspaceId::DEFAULT, job("http://93.184.216.34/"), None)
        .await
        .is_ok());

    let allowed = harness(QueueConfig {
        egress: accord_model::EgressPolicy::AllowPrivate,
        ..QueueConfig::default()
    })
    .await;
    assert!(allowed
        .queue
        .enqueue(WorkspaceId::DEFAULT, job("http://127.0.0.1/"), None)
        .await
        .is_ok());

    // An allow-list opens the networks it names and nothing else.
    let listed = harness(QueueConfig {
        allow_targets: accord_egress::AllowList::parse(["127.77.0.1", "10.20.0.0/16"]).unwrap(),
        ..QueueConfig::default()
    })
    .await;
    for (url, ok) in [
        ("http://127.77.0.1:8000/news", true),
        ("http://10.20.3.4/", true),
        ("http://127.0.0.1/", false),
        ("http://10.21.0.1/", false),
        // `localhost` is 127.0.0.1 and ::1, neither of which is listed.
        ("http://localhost/", false),
    ] {
        let outcome = listed
            .queue
            .enqueue(WorkspaceId::DEFAULT, job(url), None)
            .await;
        assert_eq!(outcome.is_ok(), ok, "{url}: {outcome:?}");
    }
}

#[tokio::test]
async fn stale_reports_are_refused_but_others_apply() {
    let h = harness(QueueConfig::default()).await;
    let w = WorkerId::new("w1").unwrap();
    let a = h
        .queue
        .enqueue(WorkspaceId::DEFAULT, job("https://example.com/a"), None)
        .await
        .unwrap()
        .job
        .id;
    let b = h
        .queue
        .enqueue(WorkspaceId::DEFAULT, job("https://example.com/b"), None)
        .await
        .unwrap()
        .job
        .id;
    let claimed = h
        .queue
        .claim(accord_model::WorkerScope::AllWorkspaces, &claim_request(0))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let item = |id, attempt| accord_model::CompleteItem {
        job_id: id,
        attempt,
        result: accord_model::JobResult {
            extracted: Default::default(),
            status: 200,
            final_url: "https://example.com/".into(),
            timings: Default::default(),
            engine: accord_model::RunEngine::Http,
            engine_reason: None,
            artifacts: Vec::new(),
        },
    };
    let answer = h
        .queue
        .complete(&w, &[item(a, 1), item(b, 7)])
        .await
        .unwrap();
    assert_eq!(answer.accepted, vec![a]);
    assert_eq!(
        answer.rejected,
        vec![accord_model::RejectedItem {
            job_id: b,
            reason: accord_model::RejectReason::StaleLease,
        }]
    );
    assert_eq!(
        h.queue.get(WorkspaceId::DEFAULT, a).await.unwrap().state,
        accord_model::JobState::Succeeded
    );
    assert_eq!(
        h.queue.get(WorkspaceId::DEFAULT, b).await.unwrap().state,
        accord_model::JobState::Running
    );
}
