//! [`accord_store::ArtifactStore`]: uploads fenced by the lease, names
//! replaced by later attempts, the per-job count and per-workspace quota,
//! listing within a workspace, the evidence of an attempt, and rows pruned
//! with their job.

use std::sync::Arc;

use accord_model::{
    ArtifactName, ArtifactRef, ErrorKind, EvidenceManifest, JobId, LeaseRef, Sha256Digest,
    WorkspaceId,
};
use accord_store::{
    ArtifactInsert, ArtifactInsertOutcome, ArtifactLimits, ArtifactRecord, InsertJob,
    InsertOutcome, Store,
};
use chrono::{DateTime, Utc};

use crate::fixtures::*;
use crate::harness::conformance;

conformance!(
    uploads_are_fenced_by_the_lease,
    a_name_uploaded_again_replaces_its_row,
    the_workspace_quota_and_the_job_count_are_enforced,
    artifacts_are_listed_and_read_within_their_workspace,
    evidence_lists_what_the_attempt_uploaded,
    manifests_are_recorded_for_jobs_that_exist,
    pruning_a_job_removes_its_rows,
);

const ROOMY: ArtifactLimits = ArtifactLimits {
    quota_bytes: 1 << 30,
    max_per_job: 100,
};

fn artifact(name: &str, bytes: &[u8]) -> ArtifactRef {
    ArtifactRef {
        name: ArtifactName::new(name).unwrap(),
        content_type: "text/plain".into(),
        size: bytes.len() as u64,
        sha256: Sha256Digest::of(bytes),
    }
}

async fn upload(
    store: &dyn Store,
    who: &str,
    lease: LeaseRef,
    artifact: ArtifactRef,
    now: DateTime<Utc>,
    limits: ArtifactLimits,
) -> ArtifactInsertOutcome {
    let insert = ArtifactInsert {
        worker_id: worker(who),
        lease,
        artifact,
        now,
        limits,
    };
    store.artifact_insert_if_leased(&insert).await.unwrap()
}

async fn record(
    store: &dyn Store,
    job_id: JobId,
    attempt: u32,
    artifact: &ArtifactRef,
    now: DateTime<Utc>,
) -> u64 {
    let record = ArtifactRecord {
        job_id,
        attempt,
        artifact: artifact.clone(),
    };
    store.artifact_record(&[record], now).await.unwrap()
}

fn stored(outcome: &ArtifactInsertOutcome) -> bool {
    matches!(outcome, ArtifactInsertOutcome::Stored { .. })
}

async fn names(store: &dyn Store, workspace: WorkspaceId, job: JobId) -> Vec<String> {
    store
        .artifact_list(workspace, job)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|a| a.name.to_string())
        .collect()
}

async fn uploads_are_fenced_by_the_lease(store: Arc<dyn Store>) {
    let id = insert(&*store, "", t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await[0];
    let a = || artifact("page.html", b"<p>hi</p>");
    // The cheap pre-check and the insert agree on who holds the lease.
    let check = |who: &'static str, lease: LeaseRef, now: DateTime<Utc>, holds: bool| {
        let store = store.clone();
        async move {
            let workspace = store
                .artifact_lease_workspace(&worker(who), lease, now)
                .await
                .unwrap();
            assert_eq!(workspace.is_some(), holds, "{who} {lease:?} at {now}");
            if holds {
                assert_eq!(workspace, Some(WorkspaceId::DEFAULT));
            }
            let outcome = upload(&*store, who, lease, a(), now, ROOMY).await;
            assert_eq!(stored(&outcome), holds, "{outcome:?}");
            if !holds {
                assert_eq!(outcome, ArtifactInsertOutcome::StaleLease);
            }
        }
    };
    check("w", lease, at(1), true).await;
    check("other", lease, at(1), false).await;
    let wrong_attempt = LeaseRef {
        job_id: id,
        attempt: lease.attempt + 1,
    };
    check("w", wrong_attempt, at(1), false).await;
    let no_such_job = LeaseRef {
        job_id: JobId::new(),
        attempt: 1,
    };
    check("w", no_such_job, at(1), false).await;
    // Past the lease's expiry (30 s), even before the reaper ran.
    check("w", lease, at(31), false).await;
    // A finished job takes no more uploads.
    complete(&*store, "w", lease, at(2)).await;
    check("w", lease, at(3), false).await;
    assert_eq!(
        names(&*store, WorkspaceId::DEFAULT, id).await,
        ["page.html"]
    );
}

async fn a_name_uploaded_again_replaces_its_row(store: Arc<dyn Store>) {
    let id = insert(&*store, r#","max_attempts":3"#, t0()).await;
    let first = claim(&*store, "w", 1, at(0)).await[0];
    let one = artifact("shot.png", b"first");
    assert!(stored(
        &upload(&*store, "w", first, one.clone(), at(1), ROOMY).await
    ));
    // The same attempt again (a retried upload): the row is replaced by itself.
    match upload(&*store, "w", first, one.clone(), at(2), ROOMY).await {
        ArtifactInsertOutcome::Stored { artifact, replaced } => {
            assert_eq!(artifact.reference(), one);
            assert_eq!(replaced.map(|r| r.reference()), Some(one.clone()));
        }
        other => panic!("{other:?}"),
    }
    // A later attempt's bytes under the same name replace the first's.
    fail(&*store, "w", first, ErrorKind::Retryable, at(3)).await;
    let second = claim(&*store, "w", 1, at(100)).await[0];
    assert_eq!(second.attempt, first.attempt + 1);
    let two = artifact("shot.png", b"second, longer");
    match upload(&*store, "w", second, two.clone(), at(101), ROOMY).await {
        ArtifactInsertOutcome::Stored { artifact, replaced } => {
            assert_eq!(artifact.attempt, second.attempt);
            assert_eq!(artifact.created_at, at(101));
            assert_eq!(
                replaced.map(|r| (r.attempt, r.sha256)),
                Some((first.attempt, one.sha256))
            );
        }
        other => panic!("{other:?}"),
    }
    let listed = store
        .artifact_list(WorkspaceId::DEFAULT, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reference(), two);
    assert_eq!(
        store.artifact_usage(WorkspaceId::DEFAULT).await.unwrap(),
        two.size
    );
    // The first blob is no row's any more; the second is.
    let referenced = store
        .artifact_referenced(&[one.sha256, two.sha256])
        .await
        .unwrap();
    assert_eq!(referenced.into_iter().collect::<Vec<_>>(), [two.sha256]);
}

async fn the_workspace_quota_and_the_job_count_are_enforced(store: Arc<dyn Store>) {
    let limits = ArtifactLimits {
        quota_bytes: 100,
        max_per_job: 3,
    };
    insert(&*store, "", t0()).await;
    insert(&*store, "", t0()).await;
    let leases = claim(&*store, "w", 2, at(0)).await;
    let (a, b) = (leases[0], leases[1]);
    let sized = |name: &str, size: usize| artifact(name, &vec![b'x'; size]);
    assert!(stored(
        &upload(&*store, "w", a, sized("one", 60), at(1), limits).await
    ));
    // 60 + 50 passes 100, whichever job of the workspace asks.
    assert_eq!(
        upload(&*store, "w", b, sized("two", 50), at(1), limits).await,
        ArtifactInsertOutcome::QuotaExceeded {
            usage: 60,
            quota: 100
        }
    );
    // Exactly up to the quota is fine.
    assert!(stored(
        &upload(&*store, "w", b, sized("two", 40), at(1), limits).await
    ));
    assert_eq!(
        store.artifact_usage(WorkspaceId::DEFAULT).await.unwrap(),
        100
    );
    // Replacing a row frees its bytes first: 60 becomes 50.
    assert!(stored(
        &upload(&*store, "w", a, sized("one", 50), at(2), limits).await
    ));
    assert_eq!(
        store.artifact_usage(WorkspaceId::DEFAULT).await.unwrap(),
        90
    );
    // The count: three per job, a replacement is not one more.
    assert!(stored(
        &upload(&*store, "w", a, sized("e1", 0), at(3), limits).await
    ));
    assert!(stored(
        &upload(&*store, "w", a, sized("e2", 0), at(3), limits).await
    ));
    assert_eq!(
        upload(&*store, "w", a, sized("e3", 0), at(3), limits).await,
        ArtifactInsertOutcome::TooMany { max: 3 }
    );
    assert!(stored(
        &upload(&*store, "w", a, sized("e2", 1), at(3), limits).await
    ));
    // Another workspace has a quota of its own.
    let other = other_workspace(&*store).await;
    assert_eq!(store.artifact_usage(other).await.unwrap(), 0);
    let job = InsertJob {
        id: JobId::new(),
        workspace_id: other,
        job: new_job(""),
        run_on: accord_model::RunEngine::Http,
        engine_reason: None,
        idempotency: None,
    };
    assert!(matches!(
        store.job_insert(job, at(4)).await.unwrap(),
        InsertOutcome::Created(_)
    ));
    let theirs = claim(&*store, "w", 1, at(4)).await[0];
    assert!(stored(
        &upload(&*store, "w", theirs, sized("big", 100), at(5), limits).await
    ));
    assert_eq!(store.artifact_usage(other).await.unwrap(), 100);
    assert_eq!(
        store.artifact_usage(WorkspaceId::DEFAULT).await.unwrap(),
        91
    );
}

async fn artifacts_are_listed_and_read_within_their_workspace(store: Arc<dyn Store>) {
    let id = insert(&*store, "", t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await[0];
    for name in ["b.txt", "a.txt", "c.png"] {
        assert!(stored(
            &upload(
                &*store,
                "w",
                lease,
                artifact(name, name.as_bytes()),
                at(1),
                ROOMY
            )
            .await
        ));
    }
    assert_eq!(
        names(&*store, WorkspaceId::DEFAULT, id).await,
        ["a.txt", "b.txt", "c.png"]
    );
    let name = ArtifactName::new("b.txt").unwrap();
    let got = store
        .artifact_get(WorkspaceId::DEFAULT, id, &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.reference(), artifact("b.txt", b"b.txt"));
    assert_eq!((got.attempt, got.created_at), (lease.attempt, at(1)));
    let missing = ArtifactName::new("nope").unwrap();
    assert!(store
        .artifact_get(WorkspaceId::DEFAULT, id, &missing)
        .await
        .unwrap()
        .is_none());
    // Another workspace sees neither the job nor its artifacts.
    let other = other_workspace(&*store).await;
    assert!(store.artifact_list(other, id).await.unwrap().is_none());
    assert!(store
        .artifact_get(other, id, &name)
        .await
        .unwrap()
        .is_none());
    // A job without artifacts lists none; an unknown job is `None`.
    let empty = insert(&*store, "", at(2)).await;
    assert_eq!(
        store
            .artifact_list(WorkspaceId::DEFAULT, empty)
            .await
            .unwrap(),
        Some(Vec::new())
    );
    assert!(store
        .artifact_list(WorkspaceId::DEFAULT, JobId::new())
        .await
        .unwrap()
        .is_none());
}

async fn evidence_lists_what_the_attempt_uploaded(store: Arc<dyn Store>) {
    let id = insert(&*store, r#","max_attempts":3"#, t0()).await;
    let first = claim(&*store, "w", 1, at(0)).await[0];
    assert!(stored(
        &upload(&*store, "w", first, artifact("old.txt", b"1"), at(1), ROOMY).await
    ));
    assert!(stored(
        &upload(
            &*store,
            "w",
            first,
            artifact("shot.png", b"1"),
            at(1),
            ROOMY
        )
        .await
    ));
    fail(&*store, "w", first, ErrorKind::Retryable, at(2)).await;
    let second = claim(&*store, "w", 1, at(100)).await[0];
    assert!(stored(
        &upload(
            &*store,
            "w",
            second,
            artifact("shot.png", b"2"),
            at(101),
            ROOMY
        )
        .await
    ));
    assert!(stored(
        &upload(
            &*store,
            "w",
            second,
            artifact("new.txt", b"2"),
            at(101),
            ROOMY
        )
        .await
    ));
    complete(&*store, "w", second, at(102)).await;
    let manifest = artifact(EvidenceManifest::artifact_name(1).as_str(), b"{}");
    assert_eq!(
        record(&*store, id, first.attempt, &manifest, at(102)).await,
        1
    );

    let gone = LeaseRef {
        job_id: JobId::new(),
        attempt: 1,
    };
    let evidence = store
        .artifact_evidence(&[second, gone, first])
        .await
        .unwrap();
    assert_eq!(evidence.len(), 2, "the unknown job is left out");
    let names_of = |index: usize| -> Vec<String> {
        evidence[index]
            .artifacts
            .iter()
            .map(|a| a.name.to_string())
            .collect()
    };
    assert_eq!(
        (evidence[0].job.id, evidence[0].attempt),
        (id, second.attempt)
    );
    assert_eq!(evidence[0].job.state, accord_model::JobState::Succeeded);
    assert_eq!(names_of(0), ["new.txt", "shot.png"]);
    // The first attempt's `shot.png` was replaced; its manifest is not evidence.
    assert_eq!(
        (evidence[1].job.id, evidence[1].attempt),
        (id, first.attempt)
    );
    assert_eq!(names_of(1), ["old.txt"]);
}

async fn manifests_are_recorded_for_jobs_that_exist(store: Arc<dyn Store>) {
    let id = insert(&*store, "", t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await[0];
    complete(&*store, "w", lease, at(1)).await;
    let name = EvidenceManifest::artifact_name(lease.attempt);
    let first = artifact(name.as_str(), b"{\"a\":1}");
    assert_eq!(record(&*store, id, lease.attempt, &first, at(2)).await, 1);
    let second = artifact(name.as_str(), b"{\"a\":2}");
    assert_eq!(record(&*store, id, lease.attempt, &second, at(3)).await, 1);
    let got = store
        .artifact_get(WorkspaceId::DEFAULT, id, &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.reference(), got.attempt), (second, lease.attempt));
    // A batch skips jobs that are gone and records the rest.
    let other = insert(&*store, "", at(4)).await;
    let batch = [
        ArtifactRecord {
            job_id: JobId::new(),
            attempt: 1,
            artifact: first.clone(),
        },
        ArtifactRecord {
            job_id: other,
            attempt: 1,
            artifact: first.clone(),
        },
    ];
    assert_eq!(store.artifact_record(&batch, at(5)).await.unwrap(), 1);
    assert_eq!(
        names(&*store, WorkspaceId::DEFAULT, other).await,
        [name.to_string()]
    );
}

async fn pruning_a_job_removes_its_rows(store: Arc<dyn Store>) {
    let old = insert(&*store, "", t0()).await;
    let lease = claim(&*store, "w", 1, at(0)).await[0];
    let shared = artifact("page.html", b"same bytes in both jobs");
    let own = artifact("own.txt", b"only the old job's");
    assert!(stored(
        &upload(&*store, "w", lease, shared.clone(), at(1), ROOMY).await
    ));
    assert!(stored(
        &upload(&*store, "w", lease, own.clone(), at(1), ROOMY).await
    ));
    complete(&*store, "w", lease, at(2)).await;
    let kept = insert(&*store, "", at(3)).await;
    let lease = claim(&*store, "w", 1, at(3)).await[0];
    assert!(stored(
        &upload(&*store, "w", lease, shared.clone(), at(4), ROOMY).await
    ));
    complete(&*store, "w", lease, at(100)).await;

    assert_eq!(store.job_prune_finished(at(50), 100).await.unwrap(), 1);
    assert!(store
        .artifact_list(WorkspaceId::DEFAULT, old)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        names(&*store, WorkspaceId::DEFAULT, kept).await,
        ["page.html"]
    );
    assert_eq!(
        store.artifact_usage(WorkspaceId::DEFAULT).await.unwrap(),
        shared.size
    );
    // The shared blob is still held; the old job's own is not.
    let referenced = store
        .artifact_referenced(&[shared.sha256, own.sha256])
        .await
        .unwrap();
    assert_eq!(referenced.into_iter().collect::<Vec<_>>(), [shared.sha256]);
}
