//! Artifacts in the lifecycle, on SQLite and a local blob folder with a
//! manual clock: each finished attempt gets its evidence manifest, and
//! pruning a job takes its rows while the sweep takes only the blobs no
//! row holds any more.

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
    let queue = Queue::new(
        Arc::new(store),
        Arc::new(clock.clone()),
        config,
        Arc::new(QueueMetrics::new()),
    )
    .with_blobs(blobs.clone());
    Harness {
        queue,
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
