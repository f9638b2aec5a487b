//! What the tests share: the shared Redis server's URL, a fresh key prefix
//! per test (tests run in parallel on one Redis), and bounded waits.

use std::future::Future;
use std::time::Duration;

use accord_cluster::{Cluster, ClusterConfig, RedisStatus};
use accord_model::{JobId, JobState};

pub use accord_test_support::shared_redis_url;

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("accord-test:{}:", uuid::Uuid::now_v7().simple())
}

/// One replica on `url`, which must answer: tests that need Redis fail
/// loudly without it, they never skip.
pub async fn replica(url: &str, key_prefix: &str, replica_id: &str) -> Cluster {
    let cluster = Cluster::connect(ClusterConfig {
        redis_url: Some(url.to_owned()),
        key_prefix: key_prefix.to_owned(),
        replica_id: replica_id.to_owned(),
    })
    .await
    .expect("the Redis URL is valid");
    let status = cluster.status();
    assert_eq!(
        status,
        RedisStatus::Up,
        "Redis is not usable at {url}: start it (./scripts/test.sh does), \
         or set ACCORD_TEST_REDIS_URL to a Redis server tests may write to"
    );
    cluster
}

/// Two replicas of one deployment on the shared Redis.
pub async fn two_replicas() -> (Cluster, Cluster) {
    let url = shared_redis_url();
    let prefix = unique_prefix();
    (
        replica(&url, &prefix, "replica-a").await,
        replica(&url, &prefix, "replica-b").await,
    )
}

/// Waits for `future`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {limit:?}"))
}

pub fn notice(state: JobState) -> accord_cluster::JobNotice {
    accord_cluster::JobNotice {
        job_id: JobId::new(),
        state,
    }
}
