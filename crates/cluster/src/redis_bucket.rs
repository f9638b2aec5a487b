//! Token buckets in Redis: one atomic script (`token_bucket.lua`, the same
//! rules as `bucket.rs`) per request, over a hash per bucket, timed by the
//! Redis server's clock so replicas with skewed clocks agree.
//!
//! Knows the script and its reply; does not decide when to use Redis (the
//! limiter does) nor how keys are named (callers pass the full key).

use std::sync::LazyLock;
use std::time::Duration;

use crate::bucket::{BucketConfig, Decision};
use crate::link::{CommandError, Link};

/// Keys expire at the latest after this long, even for buckets that take
/// longer to refill completely (they then start full again: lenient, bounded).
const MAX_KEY_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// Sent by hash (EVALSHA); loaded again when Redis has lost its script
/// cache, as after a restart.
static TOKEN_BUCKET: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("token_bucket.lua")));

/// Takes one token from the bucket at `redis_key` when it has one.
pub(crate) async fn redis_bucket_take(
    link: &Link,
    redis_key: String,
    config: BucketConfig,
) -> Result<Decision, CommandError> {
    let mut commands = link.commands();
    let mut invocation = TOKEN_BUCKET.key(redis_key);
    invocation
        .arg(config.limit())
        .arg(config.rate())
        .arg(MAX_KEY_TTL_MS);
    let (allowed, remaining, retry_after_ms, reset_after_ms): (u8, u32, u64, u64) =
        link.run(invocation.invoke_async(&mut commands)).await?;
    Ok(Decision {
        allowed: allowed == 1,
        limit: config.limit(),
        remaining,
        retry_after: Duration::from_millis(retry_after_ms),
        reset_after: Duration::from_millis(reset_after_ms),
    })
}
