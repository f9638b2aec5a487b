//! Per-domain politeness shared by two replicas through Redis: many tasks
//! asking both replicas for permits never hold more than the cap at once,
//! and a `Retry-After` reported to one replica pauses the domain on the other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accord_cluster::DomainGate;
use accord_egress::{DomainLimits, Finish, PoliteDecision, WaitReason};

use crate::support::{two_replicas, within};

fn limits(max_concurrent: u32) -> DomainLimits {
    DomainLimits {
        max_concurrent: Some(max_concurrent),
        ..DomainLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_from_two_replicas_never_exceed_the_cap() {
    let (a, b) = two_replicas().await;
    let limits = limits(3);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let granted = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..12 {
        let gate: DomainGate = if task % 2 == 0 {
            a.domain_gate().clone()
        } else {
            b.domain_gate().clone()
        };
        let (in_flight, most, granted) = (in_flight.clone(), most.clone(), granted.clone());
        tasks.spawn(async move {
            for round in 0..10 {
                let id = format!("task-{task}-{round}");
                loop {
                    match gate.acquire("cap.example", &limits, &id, 60_000).await {
                        PoliteDecision::Go { .. } => break,
                        PoliteDecision::Wait { .. } => {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                granted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(3)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                gate.finish("cap.example", &limits, &id, Finish::Success, None)
                    .await;
            }
        });
    }
    within(Duration::from_secs(60), "120 permits", async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
    .await;
    assert_eq!(granted.load(Ordering::SeqCst), 120);
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} permits at once, over the cap of 3");
    assert_eq!(most, 3, "twelve eager tasks fill the cap");
    // Every permit ended: the domain's state is gone (idle).
    assert!(a.domain_gate().view("cap.example").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_reported_to_one_replica_pauses_the_domain_on_the_other() {
    let (a, b) = two_replicas().await;
    let limits = limits(4);
    let go = a
        .domain_gate()
        .acquire("pause.example", &limits, "one", 60_000)
        .await;
    assert!(matches!(go, PoliteDecision::Go { probe: false }), "{go:?}");
    a.domain_gate()
        .finish(
            "pause.example",
            &limits,
            "one",
            Finish::Neutral,
            Some(30_000),
        )
        .await;
    let answer = b
        .domain_gate()
        .acquire("pause.example", &limits, "two", 60_000)
        .await;
    let PoliteDecision::Wait { until_ms, reason } = answer else {
        panic!("the other replica let a request through a pause: {answer:?}");
    };
    assert_eq!(reason, WaitReason::Paused);
    let view = b.domain_gate().view("pause.example").await.unwrap();
    assert!(view.shared);
    let left = until_ms - view.now_ms;
    assert!((25_000..=30_000).contains(&left), "{left} ms left");
}
