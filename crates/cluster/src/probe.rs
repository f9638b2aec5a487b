//! The prober: the task that decides when Redis is back. While commands
//! work it checks every [`PROBE_INTERVAL`], so an outage shows in `/ready`
//! even without traffic; while they do not, it retries with backoff, and a
//! failure reported by a request wakes it at once.
//!
//! A probe runs the rate-limit script itself (on a key of its own), not
//! just `PING`: "up" means the limiter works, so a Redis that answers but
//! refuses the script (out of memory, read-only replica, missing ACL
//! permission) keeps the limiter in-process instead of flapping. Does not
//! watch the job-event subscription, which reconnects on its own.

use std::sync::Arc;

use crate::bucket::BucketConfig;
use crate::config::{PROBE_INTERVAL, RECONNECT_BACKOFF};
use crate::health::Part;
use crate::link::Link;
use crate::redis_bucket::redis_bucket_take;

/// Refills at once, so the probe key lives a millisecond.
const PROBE_BUCKET: BucketConfig = BucketConfig {
    burst: 1,
    refill_per_sec: f64::MAX,
};

/// Probes once and records the outcome either way.
pub(crate) async fn probe_once(link: &Link) {
    if redis_bucket_take(link, link.key("probe"), PROBE_BUCKET)
        .await
        .is_ok()
    {
        link.health.record_up(Part::Commands);
    }
}

pub(crate) async fn probe_loop(link: Arc<Link>) {
    let mut health = link.health.subscribe();
    let mut backoff = RECONNECT_BACKOFF;
    loop {
        let delay = if health.borrow_and_update().commands_up() {
            backoff.reset();
            PROBE_INTERVAL
        } else {
            backoff.next_delay(rand::random())
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => probe_once(&link).await,
            changed = health.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
