//! Rate limits: the same behaviour from Redis and from the in-process
//! fallback, shared buckets across replicas, isolated keys.

use std::time::Duration;

use accord_cluster::{
    BucketConfig, Cluster, ClusterConfig, ClusterError, Decision, RateLimiter, RedisStatus,
};

use crate::support::{self, two_replicas, within};

/// Refills so slowly (one token every 1000 s) that no test sees a refill.
fn slow(burst: u32) -> BucketConfig {
    BucketConfig {
        burst,
        refill_per_sec: 0.001,
    }
}

/// A fresh bucket of `burst` at `rate`: the burst is allowed with the
/// remaining count going down, then refused with a retry_after of about one
/// token's time and a reset_after of about the whole bucket's. "About":
/// the server's clock moves between the requests; `slack` bounds how much.
async fn check_burst(limiter: &RateLimiter, key: &str, burst: u32, rate: f64, slack: Duration) {
    let config = BucketConfig {
        burst,
        refill_per_sec: rate,
    };
    let token = Duration::from_secs_f64(1.0 / rate);
    for taken in 1..=burst {
        let decision = limiter.check(key, config).await;
        assert!(
            decision.allowed,
            "request {taken} of the burst: {decision:?}"
        );
        assert_eq!(decision.limit, burst);
        assert_eq!(decision.remaining, burst - taken, "{decision:?}");
        assert_eq!(decision.retry_after, Duration::ZERO);
        assert_between(decision.reset_after, token * taken, slack);
    }
    let refused = limiter.check(key, config).await;
    assert!(!refused.allowed, "{refused:?}");
    assert_eq!(refused.remaining, 0);
    assert_between(refused.retry_after, token, slack);
    assert_between(refused.reset_after, token * burst, slack);
}

/// `actual` is at most `expected` (rounded up to a whole millisecond) and
/// less than `slack` below it.
fn assert_between(actual: Duration, expected: Duration, slack: Duration) {
    let ceiling = expected + Duration::from_millis(1);
    assert!(
        actual <= ceiling && actual + slack >= expected,
        "{actual:?} is not within {slack:?} below {expected:?}"
    );
}

async fn allowed_count(limiter: &RateLimiter, key: &str, config: BucketConfig, n: u32) -> u32 {
    let mut allowed = 0;
    for _ in 0..n {
        if limiter.check(key, config).await.allowed {
            allowed += 1;
        }
    }
    allowed
}

#[tokio::test]
async fn redis_buckets_allow_the_burst_then_say_when_to_retry() {
    let (a, _b) = two_replicas().await;
    // 10 tokens per second: a token every 100 ms; the requests take far
    // less than the 50 ms slack unless the machine is very busy.
    check_burst(a.limiter(), "burst", 5, 10.0, Duration::from_millis(50)).await;
    check_burst(a.limiter(), "slow", 3, 0.001, Duration::from_secs(5)).await;
    assert_eq!(
        a.status(),
        RedisStatus::Up,
        "answered from Redis throughout"
    );
}

#[tokio::test]
async fn in_process_buckets_behave_the_same() {
    let cluster = Cluster::local();
    assert_eq!(cluster.status(), RedisStatus::NotConfigured);
    check_burst(
        cluster.limiter(),
        "burst",
        5,
        10.0,
        Duration::from_millis(50),
    )
    .await;
    check_burst(cluster.limiter(), "slow", 3, 0.001, Duration::from_secs(5)).await;
    let limiter = RateLimiter::local();
    assert_eq!(allowed_count(&limiter, "a", slow(2), 5).await, 2);
    assert_eq!(allowed_count(&limiter, "b", slow(2), 5).await, 2);
    assert_eq!(
        allowed_count(&limiter.clone(), "a", slow(2), 5).await,
        0,
        "clones share buckets"
    );
}

#[tokio::test]
async fn a_refused_request_is_allowed_once_retry_after_has_passed() {
    let (a, b) = two_replicas().await;
    let config = BucketConfig {
        burst: 1,
        refill_per_sec: 20.0,
    };
    assert!(a.limiter().check("retry", config).await.allowed);
    let refused = b.limiter().check("retry", config).await;
    assert!(!refused.allowed);
    assert!(
        refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(50)
    );
    // Waiting for the refill is the behaviour under test, not synchronisation.
    tokio::time::sleep(refused.retry_after).await;
    let retried = b.limiter().check("retry", config).await;
    assert!(retried.allowed, "{retried:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hammering_one_key_share_one_burst() {
    let (a, b) = two_replicas().await;
    let burst = 10;
    let mut requests = Vec::new();
    for i in 0..60 {
        let limiter = if i % 2 == 0 { a.limiter() } else { b.limiter() }.clone();
        requests.push(tokio::spawn(async move {
            limiter.check("hammered", slow(burst)).await
        }));
    }
    let mut decisions: Vec<Decision> = Vec::new();
    for request in requests {
        decisions.push(request.await.expect("the request task"));
    }
    let allowed = decisions.iter().filter(|d| d.allowed).count();
    // At most the burst proves the bucket is shared; exactly the burst that
    // no request was answered in-process (which would allow more, or fewer
    // had Redis refused them all).
    assert_eq!(allowed, burst as usize, "{decisions:?}");
    let mut remaining: Vec<u32> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..burst).collect::<Vec<_>>(),
        "each token taken once"
    );
    assert_eq!(a.status(), RedisStatus::Up);
    assert_eq!(b.status(), RedisStatus::Up);
}

#[tokio::test]
async fn keys_are_isolated() {
    let (a, b) = two_replicas().await;
    assert_eq!(allowed_count(a.limiter(), "key-a", slow(3), 5).await, 3);
    assert_eq!(
        allowed_count(b.limiter(), "key-a", slow(3), 5).await,
        0,
        "same key on another replica"
    );
    assert_eq!(
        allowed_count(b.limiter(), "key-b", slow(3), 5).await,
        3,
        "another key"
    );
    assert_eq!(allowed_count(a.limiter(), "key-b", slow(3), 5).await, 0);
}

#[tokio::test]
async fn deployments_with_different_prefixes_have_separate_buckets() {
    let url = support::shared_redis_url();
    let one = support::replica(&url, &support::unique_prefix(), "one").await;
    let other = support::replica(&url, &support::unique_prefix(), "other").await;
    assert_eq!(allowed_count(one.limiter(), "key", slow(2), 3).await, 2);
    assert_eq!(allowed_count(other.limiter(), "key", slow(2), 3).await, 2);
}

#[tokio::test]
async fn bucket_keys_expire_once_they_would_be_full_again() {
    let url = support::shared_redis_url();
    let prefix = support::unique_prefix();
    let cluster = support::replica(&url, &prefix, "replica").await;
    let config = BucketConfig {
        burst: 4,
        refill_per_sec: 2.0,
    };
    cluster.limiter().check("expiring", config).await;
    cluster.limiter().check("expiring", config).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}ratelimit:expiring"))
        .query_async(&mut connection)
        .await
        .unwrap();
    // Two tokens short of full at two a second: about one second.
    assert!((1..=1_000).contains(&ttl_ms), "PTTL {ttl_ms}");
}

#[tokio::test]
async fn malformed_redis_urls_are_refused() {
    for url in [
        "not a url",
        "http://127.0.0.1:6379",
        "redis://127.0.0.1:6379/not-a-database",
        // This build has no TLS.
        "rediss://127.0.0.1:6379",
    ] {
        let connected = Cluster::connect(ClusterConfig::new(Some(url.to_owned()), "replica")).await;
        assert!(
            matches!(connected, Err(ClusterError::InvalidRedisUrl(_))),
            "{url}: {connected:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_a_degraded_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let config = ClusterConfig::new(Some(format!("redis://127.0.0.1:{port}")), "replica");
    let cluster = within(
        Duration::from_secs(5),
        "a degraded start",
        Cluster::connect(config),
    )
    .await
    .expect("a Redis that does not answer is not an error");
    assert!(
        matches!(cluster.status(), RedisStatus::Down { .. }),
        "{:?}",
        cluster.status()
    );
    assert_eq!(allowed_count(cluster.limiter(), "key", slow(2), 3).await, 2);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_foreign_value_under_a_bucket_key_is_replaced() {
    let url = support::shared_redis_url();
    let prefix = support::unique_prefix();
    let cluster = support::replica(&url, &prefix, "replica").await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg(format!("{prefix}ratelimit:clobbered"))
        .arg("not a bucket")
        .arg("EX")
        .arg(60)
        .query_async(&mut connection)
        .await
        .unwrap();
    check_burst(
        cluster.limiter(),
        "clobbered",
        2,
        0.001,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(cluster.status(), RedisStatus::Up, "answered from Redis");
}
