//! Artifacts end to end, through the real binary: a job leased and run by
//! hand over the worker protocol (the typed client, the same calls the
//! worker makes) uploads artifacts, completes, and then its artifacts,
//! ranges, ETags and evidence manifest are read back over the API and the
//! CLI, and `accord jobs verify` checks them, before and after a blob is
//! corrupted on disk. Uploads that must be refused are; the same round trip
//! runs on S3-compatible storage (moto on loopback); and a job run by a real
//! worker ends with its manifest.

#[expect(
    dead_code,
    reason = "the harness serves several test binaries; this one uses part of it"
)]
mod common;

use std::path::Path;
use std::process::Command;

use accord_client::{AccordClient, ArtifactUpload};
use accord_model::{
    ArtifactName, ClaimRequest, ClaimedJob, CompleteItem, CompleteRequest, ErrorKind,
    EvidenceManifest, FailItem, FailRequest, JobError, JobResult, JobState, ManifestOutcome,
    Sha256Digest, Timings, WorkerId,
};
use accord_test_support::{
    FixtureServer, ThrowawayS3, S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY,
};
use bytes::Bytes;
use common::*;

const WORKER: &str = "by-hand";
const PAGE: &[u8] = b"<html><body><h1>Evidence</h1></body></html>";

fn worker_id() -> WorkerId {
    WorkerId::new(WORKER).unwrap()
}

/// A big-ish artifact with a recognisable byte at every offset.
fn screenshot() -> Vec<u8> {
    (0..70_000u32).map(|i| (i % 253) as u8).collect()
}

async fn submit_and_claim(accord: &Process, max_attempts: u32) -> ClaimedJob {
    let new = job(&format!(
        r#"{{"max_attempts":{max_attempts},"labels":{{"case":"artifacts"}},"steps":[{{"action":"navigate","url":"https://example.com/"}}]}}"#
    ));
    let submitted = accord.client().submit_job(&new, None).await.unwrap();
    let request = ClaimRequest {
        worker_id: worker_id(),
        queues: Vec::new(),
        limit: 1,
        wait_ms: 5_000,
        engines: vec![accord_model::RunEngine::Http],
    };
    let mut claimed = accord.worker_client().claim(&request).await.unwrap().jobs;
    assert_eq!(claimed.len(), 1);
    let claimed = claimed.remove(0);
    assert_eq!(claimed.job_id, submitted.job.id);
    claimed
}

async fn upload(
    worker: &AccordClient,
    job: &ClaimedJob,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<accord_model::StoredArtifact, accord_client::ClientError> {
    let id = worker_id();
    let name = ArtifactName::new(name).unwrap();
    worker
        .upload_artifact(ArtifactUpload {
            worker_id: &id,
            lease: job.lease(),
            name: &name,
            content_type,
            bytes: Bytes::copy_from_slice(bytes),
        })
        .await
}

fn result() -> JobResult {
    JobResult {
        extracted: Default::default(),
        status: 200,
        final_url: "https://example.com/".into(),
        timings: Timings {
            total_ms: 12,
            fetch_ms: 10,
            process_ms: 2,
            steps_ms: vec![12],
        },
        engine: accord_model::RunEngine::Http,
        engine_reason: None,
        artifacts: Vec::new(),
    }
}

async fn complete(worker: &AccordClient, job: &ClaimedJob) {
    let request = CompleteRequest {
        worker_id: worker_id(),
        items: vec![CompleteItem {
            job_id: job.job_id,
            attempt: job.attempt,
            result: result(),
        }],
    };
    let answer = worker.complete(&request).await.unwrap();
    assert_eq!(answer.accepted, [job.job_id], "{answer:?}");
}

/// Runs `accord <args> --server URL --api-key KEY`; its exit status and output.
fn cli(accord: &Process, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .args(["--server", accord.url(), "--api-key", accord.key()])
        .output()
        .expect("run accord");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Uploads a page and a screenshot, completes the job, and checks every
/// way of reading them back. Returns the job's id.
async fn round_trip(accord: &Process, dir: &Path) -> accord_model::JobId {
    let worker = accord.worker_client();
    let job = submit_and_claim(accord, 3).await;
    let shot = screenshot();
    let stored = upload(&worker, &job, "page.html", "text/html; charset=utf-8", PAGE)
        .await
        .unwrap();
    assert_eq!(stored.sha256, Sha256Digest::of(PAGE));
    assert_eq!((stored.size, stored.attempt), (PAGE.len() as u64, 1));
    // A retried upload of the same bytes is harmless.
    upload(&worker, &job, "page.html", "text/html; charset=utf-8", PAGE)
        .await
        .unwrap();
    upload(&worker, &job, "shot.png", "image/png", &shot)
        .await
        .unwrap();
    complete(&worker, &job).await;
    let id = job.job_id;
    let client = accord.client();

    // The list: both artifacts and the manifest, by name.
    let list = client.list_artifacts(id).await.unwrap();
    let names: Vec<&str> = list.items.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["manifest-1.json", "page.html", "shot.png"]);

    // The whole artifact, with its type, ETag and a safe disposition.
    let http = accord.http();
    let url = format!("{}/api/v1/jobs/{id}/artifacts/shot.png", accord.url());
    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let etag = format!("\"{}\"", Sha256Digest::of(&shot));
    assert_eq!(header(&whole, "content-type").as_deref(), Some("image/png"));
    assert_eq!(header(&whole, "etag"), Some(etag.clone()));
    assert_eq!(header(&whole, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        header(&whole, "content-disposition").as_deref(),
        Some("attachment; filename=\"shot.png\"")
    );
    assert_eq!(whole.bytes().await.unwrap().as_ref(), shot.as_slice());

    // Ranges: a slice (206), the tail, one past the end (416).
    let check_range =
        |range: &'static str,
         status: u16,
         expected: Option<(&'static str, std::ops::Range<usize>)>| {
            let (http, url, shot) = (http.clone(), url.clone(), shot.clone());
            async move {
                let response = http.get(&url).header("range", range).send().await.unwrap();
                assert_eq!(response.status(), status, "{range}");
                match expected {
                    Some((content_range, slice)) => {
                        assert_eq!(
                            response.headers()["content-range"].to_str().unwrap(),
                            content_range,
                            "{range}"
                        );
                        assert_eq!(
                            response.bytes().await.unwrap().as_ref(),
                            &shot[slice],
                            "{range}"
                        );
                    }
                    None => {
                        assert_eq!(
                            response.headers()["content-range"].to_str().unwrap(),
                            "bytes */70000"
                        );
                        let body: serde_json::Value = response.json().await.unwrap();
                        assert_eq!(body["error"]["code"], "range_not_satisfiable");
                    }
                }
            }
        };
    check_range(
        "bytes=100-199",
        206,
        Some(("bytes 100-199/70000", 100..200)),
    )
    .await;
    check_range(
        "bytes=-10",
        206,
        Some(("bytes 69990-69999/70000", 69_990..70_000)),
    )
    .await;
    check_range(
        "bytes=69999-",
        206,
        Some(("bytes 69999-69999/70000", 69_999..70_000)),
    )
    .await;
    check_range("bytes=70000-", 416, None).await;
    // The typed client asks for ranges too.
    let name = ArtifactName::new("shot.png").unwrap();
    let part = client.artifact(id, &name, Some(10..20)).await.unwrap();
    assert_eq!(part.status, 206);
    assert_eq!(part.sha256, Some(Sha256Digest::of(&shot)));
    assert_eq!(part.bytes().await.unwrap().as_ref(), &shot[10..20]);

    // A copy the caller holds is not sent again.
    let cached = http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(header(&cached, "etag"), Some(etag));

    // The manifest: what ran, who ran it, what came of it and what it left.
    let manifest = client.manifest(id, None).await.unwrap();
    let digest = Sha256Digest::of(&manifest.bytes);
    assert_eq!(manifest.sha256, Some(digest));
    assert_eq!(manifest.attempt, Some(1));
    assert_eq!(list.items[0].sha256, digest, "indexed under its own hash");
    let parsed: EvidenceManifest = serde_json::from_slice(&manifest.bytes).unwrap();
    assert_eq!(parsed.to_canonical_json(), manifest.bytes.to_vec());
    assert_eq!((parsed.job_id, parsed.attempt), (id, 1));
    assert!(
        parsed.worker_id.as_str().ends_with(&format!(".{WORKER}")),
        "{}",
        parsed.worker_id
    );
    assert_eq!(parsed.spec.steps, job.spec.steps);
    assert_eq!(parsed.labels["case"], "artifacts");
    assert_eq!(
        parsed.outcome,
        ManifestOutcome::Succeeded { result: result() }
    );
    let listed: Vec<(String, u64, Sha256Digest)> = parsed
        .artifacts
        .iter()
        .map(|a| (a.name.to_string(), a.size, a.sha256))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "page.html".to_owned(),
                PAGE.len() as u64,
                Sha256Digest::of(PAGE)
            ),
            ("shot.png".to_owned(), 70_000, Sha256Digest::of(&shot)),
        ]
    );

    // The CLI: list, download to a file, print the manifest, verify.
    let id_text = id.to_string();
    let (ok, out, err) = cli(accord, &["jobs", "artifacts", &id_text]);
    assert!(ok, "{err}");
    assert!(
        out.contains("shot.png") && out.contains(&Sha256Digest::of(&shot).to_hex()),
        "{out}"
    );
    let file = dir.join("downloaded.png");
    let (ok, _, err) = cli(
        accord,
        &[
            "jobs",
            "artifact",
            &id_text,
            "shot.png",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), shot);
    let (ok, out, err) = cli(accord, &["jobs", "manifest", &id_text, "--output", "json"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim_end().as_bytes(), manifest.bytes.as_ref());
    let (ok, out, err) = cli(accord, &["jobs", "verify", &id_text]);
    assert!(ok, "verify failed: {out}\n{err}");
    assert!(out.contains("verified:"), "{out}");
    assert!(!out.contains("MISMATCH"), "{out}");
    id
}

#[tokio::test]
async fn artifacts_round_trip_and_verify_catches_a_corrupted_blob() {
    let dir = tempfile::tempdir().unwrap();
    let accord = serve(dir.path(), &[]);
    let id = round_trip(&accord, dir.path()).await;

    // Corrupt the screenshot's blob on disk: same size, one byte changed.
    let digest = Sha256Digest::of(&screenshot()).to_hex();
    let blob = dir
        .path()
        .join("data/artifacts/sha256")
        .join(&digest[..2])
        .join(&digest);
    let mut bytes = std::fs::read(&blob).expect("the blob is on disk under its digest");
    bytes[1234] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let (ok, out, err) = cli(&accord, &["jobs", "verify", &id.to_string()]);
    assert!(!ok, "verify must fail: {out}");
    assert!(out.contains("MISMATCH  shot.png"), "{out}");
    assert!(out.contains("ok        page.html"), "{out}");
    assert!(
        err.contains("does NOT match its evidence manifest"),
        "{err}"
    );
    // Downloading it says so too.
    let file = dir.path().join("corrupt.png");
    let (ok, _, err) = cli(
        &accord,
        &[
            "jobs",
            "artifact",
            &id.to_string(),
            "shot.png",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(err.contains("not to the"), "{err}");
}

#[tokio::test]
async fn artifacts_round_trip_on_s3_compatible_storage() {
    let s3 = ThrowawayS3::start();
    s3.create_bucket("accord-e2e");
    let dir = tempfile::tempdir().unwrap();
    let endpoint = s3.endpoint();
    let accord = serve(
        dir.path(),
        &[
            "--s3-bucket",
            "accord-e2e",
            "--s3-endpoint",
            &endpoint,
            "--s3-region",
            S3_REGION,
            "--s3-access-key-id",
            S3_ACCESS_KEY_ID,
            "--s3-secret-access-key",
            S3_SECRET_ACCESS_KEY,
            "--s3-allow-http",
        ],
    );
    round_trip(&accord, dir.path()).await;
    // The bytes went to the bucket, not to the data directory.
    assert!(!dir.path().join("data/artifacts").exists());
}

#[tokio::test]
async fn uploads_that_must_be_refused_are() {
    let dir = tempfile::tempdir().unwrap();
    let accord = serve(
        dir.path(),
        &[
            "--artifact-max-bytes",
            "1000",
            "--artifact-quota-bytes",
            "1500",
        ],
    );
    let worker = accord.worker_client();
    let job = submit_and_claim(&accord, 1).await;
    let key = accord.worker_key.clone().unwrap();
    let raw = reqwest::Client::new();
    let put = |name: &str, sha256: &str, content_type: &str, body: &'static [u8]| {
        raw.put(format!(
            "{}/internal/v1/worker/jobs/{}/attempts/{}/artifacts/{name}?worker_id={WORKER}",
            accord.url(),
            job.job_id,
            job.attempt
        ))
        .bearer_auth(&key)
        .header("x-accord-sha256", sha256)
        .header("content-type", content_type)
        .body(body)
        .send()
    };
    let check = |response: reqwest::Response, status: u16, code: &'static str| async move {
        let url = response.url().to_string();
        assert_eq!(response.status(), status, "{url}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    };
    let good = Sha256Digest::of(b"hello").to_hex();

    // Bytes that do not hash to the declared digest: 422, and nothing kept.
    let wrong = Sha256Digest::of(b"something else").to_hex();
    let message = check(
        put("a.txt", &wrong, "text/plain", b"hello").await.unwrap(),
        422,
        "artifact_digest_mismatch",
    )
    .await;
    assert!(message.contains(&wrong), "{message}");
    // Names that could escape the job, or that are the control plane's.
    check(
        put("a%2Fb.txt", &good, "text/plain", b"hello")
            .await
            .unwrap(),
        400,
        "invalid_artifact_name",
    )
    .await;
    check(
        put(".hidden", &good, "text/plain", b"hello").await.unwrap(),
        400,
        "invalid_artifact_name",
    )
    .await;
    check(
        put("a%5Cb", &good, "text/plain", b"hello").await.unwrap(),
        400,
        "invalid_artifact_name",
    )
    .await;
    check(
        put("manifest-1.json", &good, "text/plain", b"hello")
            .await
            .unwrap(),
        400,
        "invalid_artifact_name",
    )
    .await;
    // Headers that are missing or malformed.
    check(
        put("a.txt", "ABC", "text/plain", b"hello").await.unwrap(),
        400,
        "invalid_artifact_header",
    )
    .await;
    check(
        put("a.txt", &good, "not a type", b"hello").await.unwrap(),
        400,
        "invalid_artifact_header",
    )
    .await;
    // Over the per-artifact cap: refused on the declared length, 413.
    let big = upload(
        &worker,
        &job,
        "big.bin",
        "application/octet-stream",
        &[7u8; 1001],
    )
    .await
    .unwrap_err();
    assert_eq!(
        (big.code(), big.to_string().contains("1000")),
        (Some("artifact_too_large"), true),
        "{big}"
    );
    // Up to the workspace quota (1500 bytes), then refused.
    upload(
        &worker,
        &job,
        "one.bin",
        "application/octet-stream",
        &[1u8; 1000],
    )
    .await
    .unwrap();
    let over = upload(
        &worker,
        &job,
        "two.bin",
        "application/octet-stream",
        &[2u8; 600],
    )
    .await
    .unwrap_err();
    assert_eq!(over.code(), Some("artifact_quota_exceeded"), "{over}");
    // Replacing a row frees its bytes: 1000 becomes 900, then 600 more fit.
    upload(
        &worker,
        &job,
        "one.bin",
        "application/octet-stream",
        &[1u8; 900],
    )
    .await
    .unwrap();
    upload(
        &worker,
        &job,
        "two.bin",
        "application/octet-stream",
        &[2u8; 600],
    )
    .await
    .unwrap();

    // Another worker name of the same key does not hold the lease.
    let other = WorkerId::new("someone-else").unwrap();
    let name = ArtifactName::new("late.txt").unwrap();
    let stale = worker
        .upload_artifact(ArtifactUpload {
            worker_id: &other,
            lease: job.lease(),
            name: &name,
            content_type: "text/plain",
            bytes: Bytes::from_static(b"late"),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Some("stale_lease"), "{stale}");
    // Once the job is finished, the lease is stale for its holder too: 409.
    complete(&worker, &job).await;
    let late = upload(&worker, &job, "late.txt", "text/plain", b"late")
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some("stale_lease"), "{late}");
    let names: Vec<String> = accord
        .client()
        .list_artifacts(job.job_id)
        .await
        .unwrap()
        .items
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(names, ["manifest-1.json", "one.bin", "two.bin"]);
    // Reading: an unknown artifact, a name that is not one.
    let client = accord.client();
    let missing = client
        .artifact(job.job_id, &ArtifactName::new("nope.txt").unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("artifact_not_found"));
    let response = accord
        .http()
        .get(format!(
            "{}/api/v1/jobs/{}/artifacts/a%2Fb",
            accord.url(),
            job.job_id
        ))
        .send()
        .await
        .unwrap();
    check(response, 400, "invalid_artifact_name").await;
}

#[tokio::test]
async fn a_failed_attempt_has_a_manifest_and_the_retry_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let accord = serve(dir.path(), &[]);
    let worker = accord.worker_client();
    let first = submit_and_claim(&accord, 2).await;
    upload(&worker, &first, "failure.png", "image/png", b"the moment")
        .await
        .unwrap();
    let error = JobError::new(ErrorKind::Retryable, "connection reset").at_step(0);
    let request = FailRequest {
        worker_id: worker_id(),
        items: vec![FailItem {
            job_id: first.job_id,
            attempt: first.attempt,
            error: error.clone(),
        }],
    };
    worker.fail(&request).await.unwrap();
    let client = accord.client();
    let failed: EvidenceManifest =
        serde_json::from_slice(&client.manifest(first.job_id, None).await.unwrap().bytes).unwrap();
    assert_eq!(
        failed.outcome,
        ManifestOutcome::Failed {
            error,
            next: JobState::Retrying
        }
    );
    assert_eq!(failed.artifacts[0].name.as_str(), "failure.png");

    // The retry (its backoff is short for a test's job) runs as attempt 2.
    let request = ClaimRequest {
        worker_id: worker_id(),
        queues: Vec::new(),
        limit: 1,
        wait_ms: 30_000,
        engines: vec![accord_model::RunEngine::Http],
    };
    let second = eventually(std::time::Duration::from_secs(60), "the retry", || async {
        worker
            .claim(&request)
            .await
            .unwrap()
            .jobs
            .into_iter()
            .next()
    })
    .await;
    assert_eq!((second.job_id, second.attempt), (first.job_id, 2));
    // Past the JSON body limit (2 MiB): the upload route streams, and its
    // limit is the artifact cap (100 MiB by default).
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    let stored = upload(
        &worker,
        &second,
        "big.bin",
        "application/octet-stream",
        &big,
    )
    .await
    .unwrap();
    assert_eq!(
        (stored.size, stored.sha256),
        (big.len() as u64, Sha256Digest::of(&big))
    );
    complete(&worker, &second).await;
    let latest = client.manifest(first.job_id, None).await.unwrap();
    assert_eq!(latest.attempt, Some(2));
    let parsed: EvidenceManifest = serde_json::from_slice(&latest.bytes).unwrap();
    let names: Vec<&str> = parsed.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["big.bin"], "attempt 2 uploaded only this");
    let again = client.manifest(first.job_id, Some(1)).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<EvidenceManifest>(&again.bytes).unwrap(),
        failed
    );
    let (ok, out, err) = cli(&accord, &["jobs", "verify", &first.job_id.to_string()]);
    assert!(ok, "{out}\n{err}");
}

// Two threads: the fixture serves the worker while the test waits on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_run_by_a_real_worker_ends_with_its_manifest() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up(dir.path(), &[]);
    let path = dir.path().join("job.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"engine":"http","steps":[{{"action":"navigate","url":"{}"}},{{"action":"extract","fields":{{"title":{{"selector":"h1"}}}}}}]}}"#,
            fixture.url("/page")
        ),
    )
    .unwrap();
    let (ok, out, err) = cli(
        &accord,
        &["jobs", "submit", path.to_str().unwrap(), "--wait"],
    );
    assert!(ok, "{out}\n{err}");
    let id = out
        .lines()
        .find_map(|line| line.strip_prefix("id:"))
        .expect("the job's id")
        .trim()
        .to_owned();
    assert!(
        out.contains(&format!(
            "artifacts: {}/api/v1/jobs/{id}/artifacts",
            accord.url()
        )) && out.contains(&format!("accord jobs verify {id}")),
        "{out}"
    );
    let job = wait_state(&accord.client(), id.parse().unwrap(), JobState::Succeeded).await;
    let manifest: EvidenceManifest =
        serde_json::from_slice(&accord.client().manifest(job.id, None).await.unwrap().bytes)
            .unwrap();
    match &manifest.outcome {
        ManifestOutcome::Succeeded { result } => {
            assert_eq!(Some(result), job.result.as_ref());
            assert_eq!(result.timings.steps_ms.len(), 2, "a time for each step");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(manifest.spec.engine, accord_model::Engine::Http);
    let (ok, out, err) = cli(&accord, &["jobs", "verify", &id]);
    assert!(ok && out.contains("verified:"), "{out}\n{err}");
}
