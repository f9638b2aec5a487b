//! In-process token buckets: the limiter's answer when Redis is not
//! configured or not answering.
//!
//! A plain cache behind one mutex (held for a map lookup and a few float
//! operations, never across an await). A bucket that has refilled completely
//! is the same as no bucket, so such entries are swept out once the map has
//! doubled since the last sweep: memory follows the number of keys used
//! recently, not the number ever seen. It knows nothing of Redis.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::bucket::{bucket_take, Bucket, BucketConfig, Decision};

/// The map is not swept while it holds fewer entries than this.
const MIN_SWEEP_LEN: usize = 1_024;

#[derive(Debug)]
pub(crate) struct LocalBuckets {
    /// The start of this limiter's time line.
    epoch: Instant,
    map: Mutex<Map>,
}

#[derive(Debug)]
struct Map {
    buckets: HashMap<String, Slot>,
    /// Sweep when the map reaches this many entries.
    sweep_at_len: usize,
}

#[derive(Debug)]
struct Slot {
    bucket: Bucket,
    /// From then on the bucket is full and the entry can go.
    full_at: Duration,
}

impl LocalBuckets {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            map: Mutex::new(Map {
                buckets: HashMap::new(),
                sweep_at_len: MIN_SWEEP_LEN,
            }),
        }
    }

    pub(crate) fn check(&self, key: &str, config: BucketConfig) -> Decision {
        self.check_at(key, config, self.epoch.elapsed())
    }

    fn check_at(&self, key: &str, config: BucketConfig, now: Duration) -> Decision {
        let mut map = self.lock();
        let previous = map.buckets.get(key).map(|slot| slot.bucket);
        let (bucket, decision) = bucket_take(previous, config, now);
        let slot = Slot {
            bucket,
            full_at: bucket.at + decision.reset_after,
        };
        match map.buckets.get_mut(key) {
            Some(existing) => *existing = slot,
            None => {
                map.buckets.insert(key.to_owned(), slot);
            }
        }
        if map.buckets.len() >= map.sweep_at_len {
            map.buckets.retain(|_, slot| slot.full_at > now);
            map.sweep_at_len = (map.buckets.len() * 2).max(MIN_SWEEP_LEN);
        }
        decision
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        // Nothing can panic while the lock is held but a bug; the map is a
        // cache, so carrying on with it is safe either way.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: BucketConfig = BucketConfig {
        burst: 2,
        refill_per_sec: 100.0,
    };

    fn at_ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn keys_have_buckets_of_their_own() {
        let buckets = LocalBuckets::new();
        let config = BucketConfig {
            burst: 1,
            refill_per_sec: 1.0,
        };
        assert!(buckets.check_at("a", config, at_ms(0)).allowed);
        assert!(!buckets.check_at("a", config, at_ms(0)).allowed);
        assert!(buckets.check_at("b", config, at_ms(0)).allowed);
        assert!(buckets.check_at("a", config, at_ms(1_000)).allowed);
    }

    #[test]
    fn full_buckets_are_swept_once_the_map_has_grown() {
        let buckets = LocalBuckets::new();
        for key in 0..MIN_SWEEP_LEN - 1 {
            buckets.check_at(&format!("old-{key}"), FAST, at_ms(0));
        }
        assert_eq!(buckets.lock().buckets.len(), MIN_SWEEP_LEN - 1);
        // A second later every old bucket is full again; the next new key
        // reaches the threshold and sweeps them.
        buckets.check_at("new", FAST, at_ms(1_000));
        assert_eq!(buckets.lock().buckets.len(), 1);
        assert_eq!(buckets.lock().sweep_at_len, MIN_SWEEP_LEN);
    }

    #[test]
    fn buckets_in_use_survive_a_sweep_and_keep_their_tokens() {
        let buckets = LocalBuckets::new();
        let slow = BucketConfig {
            burst: 1,
            refill_per_sec: 0.001,
        };
        assert!(buckets.check_at("busy", slow, at_ms(0)).allowed);
        for key in 0..MIN_SWEEP_LEN {
            buckets.check_at(&format!("old-{key}"), FAST, at_ms(0));
        }
        buckets.check_at("new", FAST, at_ms(1_000));
        assert!(!buckets.check_at("busy", slow, at_ms(1_000)).allowed);
    }

    #[test]
    fn a_map_of_live_buckets_grows_before_it_is_swept_again() {
        let buckets = LocalBuckets::new();
        let slow = BucketConfig {
            burst: 1,
            refill_per_sec: 0.001,
        };
        for key in 0..MIN_SWEEP_LEN + 10 {
            buckets.check_at(&format!("live-{key}"), slow, at_ms(0));
        }
        let map = buckets.lock();
        assert_eq!(map.buckets.len(), MIN_SWEEP_LEN + 10);
        assert_eq!(map.sweep_at_len, MIN_SWEEP_LEN * 2);
    }
}
