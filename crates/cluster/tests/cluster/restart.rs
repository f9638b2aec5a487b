//! Redis going away and coming back, on a Redis server of the test's own.

use std::time::Duration;

use accord_cluster::{BucketConfig, Cluster, RedisStatus};
use accord_model::JobState;
use accord_test_support::ThrowawayRedis;

use crate::support::{notice, replica, unique_prefix, within};

const ONE_TOKEN: BucketConfig = BucketConfig {
    burst: 1,
    refill_per_sec: 0.001,
};

/// Whether `first` and `second` share `key`'s bucket: the first takes the
/// only token of a fresh bucket, so the second is refused if and only if
/// they count in the same place (Redis).
async fn share_bucket(first: &Cluster, second: &Cluster, key: &str) -> bool {
    assert!(
        first.limiter().check(key, ONE_TOKEN).await.allowed,
        "a fresh bucket"
    );
    !second.limiter().check(key, ONE_TOKEN).await.allowed
}

/// A notice published on `from` reaches a subscriber on `to`.
async fn fan_out_works(from: &Cluster, to: &Cluster) {
    let mut receiver = to.events().subscribe();
    let sent = notice(JobState::Running);
    from.events().publish(sent);
    let received = within(
        Duration::from_secs(5),
        "a notice from the other replica",
        receiver.recv(),
    )
    .await
    .expect("the bus is open");
    assert_eq!(received, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_degrade_while_redis_is_down_and_share_again_once_it_is_back() {
    let server = ThrowawayRedis::start();
    let prefix = unique_prefix();
    let a = replica(&server.url(), &prefix, "replica-a").await;
    let b = replica(&server.url(), &prefix, "replica-b").await;
    assert!(share_bucket(&a, &b, "before").await);
    fan_out_works(&a, &b).await;

    server.stop();
    // The first request after the outage may still try Redis; it must not
    // wait long on it, and neither may any later one.
    let answered = within(
        Duration::from_secs(2),
        "a rate-limit answer with Redis down",
        a.limiter().check("during", ONE_TOKEN),
    )
    .await;
    assert!(answered.allowed, "a fresh in-process bucket: {answered:?}");
    for cluster in [&a, &b] {
        let status = within(
            Duration::from_secs(5),
            "status Down",
            cluster.wait_for_status(|status| matches!(status, RedisStatus::Down { .. })),
        )
        .await;
        assert!(matches!(status, RedisStatus::Down { .. }));
    }
    // Degraded: each replica counts on its own, and still answers promptly.
    let refused = within(
        Duration::from_secs(2),
        "a second answer with Redis down",
        a.limiter().check("during", ONE_TOKEN),
    )
    .await;
    assert!(
        !refused.allowed,
        "in-process buckets still limit: {refused:?}"
    );
    assert!(
        !share_bucket(&a, &b, "degraded").await,
        "per-replica buckets while down"
    );
    // Publishing does not block; this replica's subscribers still hear it.
    let mut on_a = a.events().subscribe();
    let local = notice(JobState::Dead);
    a.events().publish(local);
    assert_eq!(on_a.try_recv().expect("delivered locally at once"), local);

    server.restart();
    for cluster in [&a, &b] {
        within(
            Duration::from_secs(15),
            "status Up after the restart",
            cluster.wait_for_status(|status| *status == RedisStatus::Up),
        )
        .await;
    }
    assert!(
        share_bucket(&a, &b, "after").await,
        "back on the shared Redis bucket"
    );
    fan_out_works(&a, &b).await;
    fan_out_works(&b, &a).await;

    within(Duration::from_secs(5), "shutdown", a.shutdown()).await;
    assert!(
        !share_bucket(&b, &a, "after-shutdown").await,
        "a shut-down replica counts in-process"
    );
    within(Duration::from_secs(5), "shutdown", b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_holds_requests_up_only_briefly() {
    let server = ThrowawayRedis::start();
    let prefix = unique_prefix();
    let a = replica(&server.url(), &prefix, "replica-a").await;
    let b = replica(&server.url(), &prefix, "replica-b").await;

    server.pause();
    // Connections stay open and nothing answers: only the timeouts end the
    // wait (about a quarter of a second; the bound here is generous).
    let answered = within(
        Duration::from_secs(2),
        "a rate-limit answer with Redis frozen",
        a.limiter().check("frozen", ONE_TOKEN),
    )
    .await;
    assert!(answered.allowed, "a fresh in-process bucket: {answered:?}");
    assert!(
        matches!(a.status(), RedisStatus::Down { .. }),
        "{:?}",
        a.status()
    );
    let again = within(
        Duration::from_secs(2),
        "a second answer with Redis frozen",
        a.limiter().check("frozen", ONE_TOKEN),
    )
    .await;
    assert!(!again.allowed, "in-process buckets still limit: {again:?}");

    server.resume();
    for cluster in [&a, &b] {
        within(
            Duration::from_secs(15),
            "status Up after the freeze",
            cluster.wait_for_status(|status| *status == RedisStatus::Up),
        )
        .await;
    }
    assert!(
        share_bucket(&a, &b, "thawed").await,
        "back on the shared Redis bucket"
    );
    fan_out_works(&a, &b).await;
}
