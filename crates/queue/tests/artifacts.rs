//! Artifacts in the lifecycle, on SQLite and a local blob folder with a
//! manual clock: each finished attempt gets its evidence manifest, and
//! pruning a job takes its rows while the sweep takes only the blobs no
//! row holds any more; a monitor run's visual change keeps its highlight
//! image as an artifact of the run's job, within the workspace's quota.

use std::sync::Arc;
use std::time::Duration;

use accord_artifacts::{BlobStore, BlobStoreConfig, Declared};
use accord_model::{
    ArtifactName, ClaimRequest, ClaimedJob, CompleteItem, ErrorKind, EvidenceManifest, FailItem,
    JobError, JobResult, JobState, ManifestOutcome, ManualClock, Sha256Digest, Timings, WorkerId,
    WorkerScope, WorkspaceId,
};
use accord_queue::{ArtifactUpload, Queue, QueueConfig, QueueMetrics};
use accord_store::{SqliteConfig, SqliteStore};
use bytes::Bytes;

struct Harness {
    queue: Queue,
    store: Arc<dyn accord_store::Store>,
    clock: ManualClock,
    blobs: BlobStore,
    _dir: tempfile::TempDir,
}

async fn harness(config: QueueConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("q.db")))
        .await
        .unwrap();
    let blobs = BlobStore::open(&BlobStoreConfig::Local {
        root: dir.path().join("artifacts"),
    })
    .unwrap();
    // The sweep compares blob ages (the file system's clock) with the
    // queue's: start the manual clock at the real time.
    let clock = ManualClock::new(chrono::Utc::now());
    let store: Arc<dyn accord_store::Store> = Arc::new(store);
    let queue = Queue::new(
        store.clone(),
        Arc::new(clock.clone()),
        config,
        Arc::new(QueueMetrics::new()),
    )
    .with_blobs(blobs.clone());
    Harness {
        queue,
        store,
        clock,
        blobs,
        _dir: dir,
    }
}

fn worker() -> WorkerId {
    WorkerId::new("w1").unwrap()
}

impl Harness {
    async fn claim_one(&self, max_attempts: u32) -> ClaimedJob {
        let job = serde_json::from_str(&format!(
            r#"{{"steps":[{{"action":"navigate","url":"https://example.com/"}}],"max_attempts":{max_attempts}}}"#
        ))
        .unwrap();
        self.queue
            .enqueue(WorkspaceId::DEFAULT, job, None)
            .await
            .unwrap();
        let request = ClaimRequest {
            worker_id: worker(),
            queues: Vec::new(),
            limit: 1,
            wait_ms: 0,
            engines: vec![accord_model::RunEngine::Http],
        };
        let mut claimed = self
            .queue
            .claim(WorkerScope::AllWorkspaces, &request)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        claimed.remove(0)
    }

    async fn upload(&self, job: &ClaimedJob, name: &str, bytes: &'static [u8]) -> Sha256Digest {
        let upload = ArtifactUpload {
            worker_id: worker(),
            lease: job.lease(),
            name: ArtifactName::new(name).unwrap(),
            content_type: "text/plain".into(),
            declared: Declared {
                sha256: Sha256Digest::of(bytes),
                size: bytes.len() as u64,
            },
        };
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(bytes))]);
        self.queue
            .upload_artifact(upload, body)
            .await
            .unwrap()
            .sha256
    }

    async fn manifest(&self, job: &ClaimedJob, attempt: Option<u32>) -> (EvidenceManifest, Bytes) {
        let (row, bytes) = self
            .queue
            .manifest(WorkspaceId::DEFAULT, job.job_id, attempt)
            .await
            .unwrap();
        assert_eq!(
            row.sha256,
            Sha256Digest::of(&bytes),
            "stored under its digest"
        );
        (serde_json::from_slice(&bytes).unwrap(), bytes)
    }
}

fn result() -> JobResult {
    JobResult {
        extracted: Default::default(),
        status: 200,
        final_url: "https://example.com/done".into(),
        timings: Timings {
            total_ms: 30,
            fetch_ms: 20,
            process_ms: 10,
            steps_ms: vec![30],
        },
        engine: accord_model::RunEngine::Http,
        engine_reason: None,
        artifacts: Vec::new(),
    }
}

#[tokio::test]
async fn every_finished_attempt_gets_a_manifest_of_what_it_uploaded() {
    let h = harness(QueueConfig::default()).await;
    let first = h.claim_one(2).await;
    let shot = h
        .upload(&first, "failure.png", b"the moment it failed")
        .await;
    let error = JobError::new(ErrorKind::Retryable, "connection reset").at_step(0);
    let failed = FailItem {
        job_id: first.job_id,
        attempt: first.attempt,
        error: error.clone(),
    };
    h.queue.fail(&worker(), vec![failed]).await.unwrap();
    let (manifest, bytes) = h.manifest(&first, None).await;
    assert_eq!(manifest.attempt, 1);
    assert_eq!(
        manifest.outcome,
        ManifestOutcome::Failed {
            error,
            next: JobState::Retrying
        }
    );
    assert_eq!(manifest.artifacts.len(), 1);
    assert_eq!(
        (
            manifest.artifacts[0].name.as_str(),
            manifest.artifacts[0].sha256
        ),
        ("failure.png", shot)
    );
    // The stored bytes are the canonical form: keys sorted, no whitespace.
    assert_eq!(bytes.as_ref(), manifest.to_canonical_json().as_slice());

    h.clock.advance(chrono::Duration::seconds(3600));
    let second = h.claim_one(1).await;
    // The first job is claimable again too; take the retried one.
    let second = if second.job_id == first.job_id {
        second
    } else {
        let request = ClaimRequest {
            worker_id: worker(),
            queues: Vec::new(),
            limit: 1,
            wait_ms: 0,
            engines: vec![accord_model::RunEngine::Http],
        };
        h.queue
            .claim(WorkerScope::AllWorkspaces, &request)
            .await
            .unwrap()
            .remove(0)
    };
    assert_eq!((second.job_id, second.attempt), (first.job_id, 2));
    h.upload(&second, "page.html", b"<p>done</p>").await;
    let done = CompleteItem {
        job_id: second.job_id,
        attempt: second.attempt,
        result: result(),
    };
    h.queue.complete(&worker(), &[done]).await.unwrap();

    let (latest, _) = h.manifest(&second, None).await;
    assert_eq!(latest.attempt, 2);
    assert_eq!(latest.worker_id, worker());
    assert_eq!(latest.spec.steps, second.spec.steps);
    assert!(latest.started_at.is_some());
    match &latest.outcome {
        ManifestOutcome::Succeeded { result } => {
            assert_eq!(result.final_url, "https://example.com/done");
            assert_eq!(result.timings.steps_ms, [30]);
        }
        other => panic!("{other:?}"),
    }
    let names: Vec<&str> = latest.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["page.html"], "only what attempt 2 uploaded");
    // Each attempt's manifest stays readable by its attempt.
    let (again, _) = h.manifest(&first, Some(1)).await;
    assert_eq!(again, manifest);
    let listed: Vec<String> = h
        .queue
        .artifacts(WorkspaceId::DEFAULT, first.job_id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(
        listed,
        [
            "failure.png",
            "manifest-1.json",
            "manifest-2.json",
            "page.html"
        ]
    );
}

#[tokio::test]
async fn pruning_takes_rows_and_the_sweep_only_blobs_no_row_holds() {
    let config = QueueConfig {
        retention: Some(Duration::from_secs(24 * 3600)),
        ..QueueConfig::default()
    };
    let h = harness(config).await;
    let old = h.claim_one(1).await;
    let shared = h
        .upload(&old, "page.html", b"the same page in both jobs")
        .await;
    let own = h.upload(&old, "own.txt", b"only the old job's").await;
    let done = |job: &ClaimedJob| CompleteItem {
        job_id: job.job_id,
        attempt: job.attempt,
        result: result(),
    };
    h.queue.complete(&worker(), &[done(&old)]).await.unwrap();
    let (_, old_manifest) = h
        .queue
        .manifest(WorkspaceId::DEFAULT, old.job_id, None)
        .await
        .unwrap();
    let old_manifest = Sha256Digest::of(&old_manifest);

    h.clock.advance(chrono::Duration::seconds(12 * 3600));
    let kept = h.claim_one(1).await;
    assert_eq!(
        h.upload(&kept, "page.html", b"the same page in both jobs")
            .await,
        shared
    );
    h.queue.complete(&worker(), &[done(&kept)]).await.unwrap();

    // Nothing is past retention yet, and every blob is held.
    let report = h.queue.maintain_once().await.unwrap();
    assert_eq!((report.pruned, report.blobs_swept), (0, 0));

    // A day after the old job finished: it goes, with its rows; its own
    // blobs go with the sweep, the shared one stays for the job that holds it.
    h.clock.advance(chrono::Duration::seconds(13 * 3600));
    h.queue.sweep_blobs().await.unwrap();
    let report = h.queue.maintain_once().await.unwrap();
    assert_eq!(report.pruned, 1);
    let swept = h.queue.sweep_blobs().await.unwrap();
    assert_eq!(swept, 2, "own.txt and the old job's manifest");
    assert!(h.blobs.head(&own).await.unwrap().is_none());
    assert!(h.blobs.head(&old_manifest).await.unwrap().is_none());
    assert!(h.blobs.head(&shared).await.unwrap().is_some());
    let kept_rows = h
        .queue
        .artifacts(WorkspaceId::DEFAULT, kept.job_id)
        .await
        .unwrap();
    assert_eq!(kept_rows.len(), 2, "page.html and the manifest");
    for row in &kept_rows {
        assert!(
            h.blobs.head(&row.sha256).await.unwrap().is_some(),
            "{row:?}"
        );
    }
    assert!(h
        .queue
        .artifacts(WorkspaceId::DEFAULT, old.job_id)
        .await
        .is_err());
}

#[tokio::test]
async fn the_sweep_spares_blobs_younger_than_its_grace() {
    let h = harness(QueueConfig::default()).await;
    // A blob without a row, as an upload leaves it between its put and its
    // row (or when its row was refused).
    let orphan = h
        .blobs
        .put_bytes(Bytes::from_static(b"no row yet"))
        .await
        .unwrap();
    assert_eq!(h.queue.sweep_blobs().await.unwrap(), 0);
    assert!(h.blobs.head(&orphan).await.unwrap().is_some());
    h.clock.advance(chrono::Duration::seconds(2 * 3600));
    assert_eq!(h.queue.sweep_blobs().await.unwrap(), 1);
    assert!(h.blobs.head(&orphan).await.unwrap().is_none());
}

/// An 8 x 8 white PNG.
const BLANK: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 8, 0, 0, 0, 8, 8, 2, 0,
    0, 0, 75, 109, 41, 220, 0, 0, 0, 15, 73, 68, 65, 84, 120, 156, 99, 248, 143, 3, 48, 12, 45, 9,
    0, 186, 30, 191, 65, 48, 147, 10, 252, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];
/// The same with a black 2 x 2 square at (2, 2).
const DOTTED: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 8, 0, 0, 0, 8, 8, 2, 0,
    0, 0, 75, 109, 41, 220, 0, 0, 0, 24, 73, 68, 65, 84, 120, 156, 99, 248, 143, 3, 48, 16, 144,
    96, 0, 3, 82, 36, 72, 183, 131, 4, 9, 0, 191, 196, 179, 77, 234, 244, 133, 193, 0, 0, 0, 0, 73,
    69, 78, 68, 174, 66, 96, 130,
];

impl Harness {
    /// A paused visual `page_change` monitor on the browser engine.
    async fn visual_monitor(&self) -> accord_model::Monitor {
        let new: accord_model::NewMonitor = serde_json::from_value(serde_json::json!({
            "name": "visual",
            "workflow": "page_change",
            "url": "https://example.com/page",
            "engine": "browser",
            "input": {"visual": {"threshold": 0.01}},
            "schedule": {"every": "1h"},
            "paused": true,
        }))
        .unwrap();
        self.queue
            .monitor_create(WorkspaceId::DEFAULT, new)
            .await
            .unwrap()
    }

    /// Starts a run and plays the browser worker up to its screenshot's
    /// upload: the claimed job and the result to complete it with.
    async fn screenshot_run(
        &self,
        monitor: &accord_model::Monitor,
        png: &'static [u8],
    ) -> (ClaimedJob, JobResult) {
        // Each manual run takes the slot of its own moment.
        self.clock.advance(chrono::Duration::seconds(60));
        self.queue
            .monitor_run_now(WorkspaceId::DEFAULT, monitor.id)
            .await
            .unwrap();
        let request = ClaimRequest {
            worker_id: worker(),
            queues: Vec::new(),
            limit: 1,
            wait_ms: 0,
            engines: accord_model::RunEngine::ALL.to_vec(),
        };
        let job = self
            .queue
            .claim(WorkerScope::AllWorkspaces, &request)
            .await
            .unwrap()
            .remove(0);
        let upload = ArtifactUpload {
            worker_id: worker(),
            lease: job.lease(),
            name: ArtifactName::new(accord_workflows::SCREENSHOT_ARTIFACT).unwrap(),
            content_type: "image/png".into(),
            declared: Declared {
                sha256: Sha256Digest::of(png),
                size: png.len() as u64,
            },
        };
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(png))]);
        let stored = self.queue.upload_artifact(upload, body).await.unwrap();
        let mut done = result();
        done.extracted.insert(
            "page".to_owned(),
            accord_model::ExtractedValue::One(Some("<p>same text</p>".to_owned())),
        );
        done.engine = accord_model::RunEngine::Browser;
        done.artifacts = vec![stored.reference()];
        (job, done)
    }

    async fn complete_with(&self, queue: &Queue, job: &ClaimedJob, result: JobResult) {
        let item = CompleteItem {
            job_id: job.job_id,
            attempt: job.attempt,
            result,
        };
        let answer = queue.complete(&worker(), &[item]).await.unwrap();
        assert_eq!(answer.accepted.len(), 1, "{answer:?}");
    }

    async fn latest_visual(&self, monitor: &accord_model::Monitor) -> serde_json::Value {
        let runs = self
            .queue
            .monitor_runs(WorkspaceId::DEFAULT, monitor.id, None, 1)
            .await
            .unwrap();
        assert_eq!(runs[0].state, accord_model::RunState::Succeeded, "{runs:?}");
        runs[0].outcome.as_ref().unwrap()["detail"]["visual"].clone()
    }
}

#[tokio::test]
async fn a_visual_change_keeps_its_highlight_as_an_artifact_of_the_runs_job() {
    let h = harness(QueueConfig::default()).await;
    let monitor = h.visual_monitor().await;
    let (first, done) = h.screenshot_run(&monitor, BLANK).await;
    h.complete_with(&h.queue, &first, done).await;
    // The baseline compares nothing and keeps no image.
    let visual = h.latest_visual(&monitor).await;
    assert_eq!(visual["status"], "skipped", "{visual}");
    let names = |artifacts: Vec<accord_model::StoredArtifact>| -> Vec<String> {
        artifacts.iter().map(|a| a.name.to_string()).collect()
    };
    let listed = h
        .queue
        .artifacts(WorkspaceId::DEFAULT, first.job_id)
        .await
        .unwrap();
    assert_eq!(names(listed), ["manifest-1.json", "monitor-screenshot.png"]);

    let (second, done) = h.screenshot_run(&monitor, DOTTED).await;
    h.complete_with(&h.queue, &second, done).await;
    let visual = h.latest_visual(&monitor).await;
    assert_eq!(visual["changed"], true, "{visual}");
    // The image the pure comparison makes, byte for byte.
    let expected = accord_workflows::compare_screenshots(
        BLANK,
        DOTTED,
        &accord_workflows::VisualRule {
            threshold: 0.01,
            tolerance: 16,
        },
    )
    .unwrap()
    .highlight_png;
    let highlight = &visual["highlight"];
    assert_eq!(highlight["job_id"], second.job_id.to_string());
    assert_eq!(highlight["name"], "visual-diff.png");
    assert_eq!(highlight["size"], expected.len());
    assert_eq!(highlight["sha256"], Sha256Digest::of(&expected).to_hex());
    let row = h
        .queue
        .artifact(
            WorkspaceId::DEFAULT,
            second.job_id,
            &ArtifactName::new("visual-diff.png").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!((row.content_type.as_str(), row.attempt), ("image/png", 1));
    assert_eq!(
        h.blobs.read_all(&row.sha256).await.unwrap().as_ref(),
        expected.as_slice()
    );
    // The attempt's manifest, written after the completion, lists it.
    let (manifest, _) = h.manifest(&second, None).await;
    let listed: Vec<&str> = manifest.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(listed, ["monitor-screenshot.png", "visual-diff.png"]);
}

#[tokio::test]
async fn a_full_quota_records_the_run_without_its_highlight() {
    let h = harness(QueueConfig::default()).await;
    let monitor = h.visual_monitor().await;
    let (first, done) = h.screenshot_run(&monitor, BLANK).await;
    h.complete_with(&h.queue, &first, done).await;
    let (second, done) = h.screenshot_run(&monitor, DOTTED).await;

    // The same store and blobs behind a queue whose quota has room for
    // everything stored so far, but not for the highlight.
    let store = h.store.clone();
    let usage = accord_store::ArtifactStore::artifact_usage(&*store, WorkspaceId::DEFAULT)
        .await
        .unwrap();
    let mut config = QueueConfig::default();
    config.artifacts.limits.quota_bytes = usage + 10;
    let tight = Queue::new(
        store.clone(),
        Arc::new(h.clock.clone()),
        config,
        Arc::new(QueueMetrics::new()),
    )
    .with_blobs(h.blobs.clone());
    h.complete_with(&tight, &second, done).await;

    // The change is recorded; the image is not, and nothing names it.
    let visual = h.latest_visual(&monitor).await;
    assert_eq!(visual["changed"], true, "{visual}");
    assert!(visual.get("highlight").is_none(), "{visual}");
    let listed = h
        .queue
        .artifacts(WorkspaceId::DEFAULT, second.job_id)
        .await
        .unwrap();
    assert!(
        !listed.iter().any(|a| a.name.as_str() == "visual-diff.png"),
        "{listed:?}"
    );
}
