//! Token-bucket arithmetic: what a bucket holds after some time and whether
//! it can give one more token. Pure: time is a parameter.
//!
//! The in-process limiter runs this code; the Redis limiter runs the same
//! rules in Lua (`token_bucket.lua`), and the tests hold both to the same
//! cases. Storing buckets is not this module's business.

use std::time::Duration;

/// Below this refill rate (one token a day) a bucket is treated as refilling
/// at this rate, so every duration stays finite and representable.
const MIN_REFILL_PER_SEC: f64 = 1.0 / 86_400.0;
/// Above this rate a bucket is treated as refilling at this rate.
const MAX_REFILL_PER_SEC: f64 = 1_000_000_000.0;
/// Floating-point slack when comparing token counts: a bucket that refilled
/// to 0.999_999_999_9 tokens through rounding holds one token.
const EPSILON: f64 = 1e-9;

/// The shape of one limit: up to `burst` requests at once, then
/// `refill_per_sec` requests per second on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketConfig {
    /// The bucket's capacity; a full bucket allows this many requests at once.
    /// Zero is treated as one.
    pub burst: u32,
    /// Tokens added per second. Values below one a day (including zero,
    /// negative and NaN) are treated as one a day; huge values as 10^9 a second.
    pub refill_per_sec: f64,
}

impl BucketConfig {
    /// The burst, at least one.
    pub(crate) fn limit(&self) -> u32 {
        self.burst.max(1)
    }

    pub(crate) fn capacity(&self) -> f64 {
        f64::from(self.limit())
    }

    pub(crate) fn rate(&self) -> f64 {
        if self.refill_per_sec.is_nan() {
            return MIN_REFILL_PER_SEC;
        }
        self.refill_per_sec
            .clamp(MIN_REFILL_PER_SEC, MAX_REFILL_PER_SEC)
    }
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The bucket's capacity (`burst`, at least one).
    pub limit: u32,
    /// Whole tokens left after this request.
    pub remaining: u32,
    /// How long until a request would be allowed; zero when this one was.
    pub retry_after: Duration,
    /// How long until the bucket is full again (no recent use at all).
    pub reset_after: Duration,
}

/// A bucket's content at a point in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    pub(crate) tokens: f64,
    /// When `tokens` was counted, on the caller's time line.
    pub(crate) at: Duration,
}

/// Refills `previous` (a full bucket when there is none) up to `now`, takes
/// one token when there is one, and returns the new content and the answer.
/// Time running backwards refills nothing.
pub(crate) fn bucket_take(
    previous: Option<Bucket>,
    config: BucketConfig,
    now: Duration,
) -> (Bucket, Decision) {
    let capacity = config.capacity();
    let rate = config.rate();
    let (tokens, now) = match previous {
        None => (capacity, now),
        Some(bucket) => {
            let elapsed = now.saturating_sub(bucket.at).as_secs_f64();
            // Keeping the later time means a clock that steps back and
            // forth cannot refill the same interval twice.
            (
                (bucket.tokens + elapsed * rate).min(capacity),
                now.max(bucket.at),
            )
        }
    };
    let allowed = tokens + EPSILON >= 1.0;
    let tokens = if allowed {
        (tokens - 1.0).max(0.0)
    } else {
        tokens
    };
    let retry_after = if allowed {
        Duration::ZERO
    } else {
        whole_millis((1.0 - tokens) / rate)
    };
    let decision = Decision {
        allowed,
        limit: config.limit(),
        remaining: whole_tokens(tokens),
        retry_after,
        reset_after: whole_millis((capacity - tokens) / rate),
    };
    (Bucket { tokens, at: now }, decision)
}

/// Rounds up to whole milliseconds, like the Redis script: callers never
/// see a `retry_after` that is a hair too short.
fn whole_millis(seconds: f64) -> Duration {
    let millis = (seconds * 1000.0 - EPSILON).ceil().max(0.0);
    // At most about 4.3e17 ms (burst u32::MAX at one token a day): in range.
    Duration::from_millis(millis as u64)
}

fn whole_tokens(tokens: f64) -> u32 {
    // Tokens never exceed the burst, a u32.
    (tokens + EPSILON).floor() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request at `at_ms` and what it must be answered.
    struct Step {
        at_ms: u64,
        allowed: bool,
        remaining: u32,
        retry_after_ms: u64,
        reset_after_ms: u64,
    }

    fn step(
        at_ms: u64,
        allowed: bool,
        remaining: u32,
        retry_after_ms: u64,
        reset_after_ms: u64,
    ) -> Step {
        Step {
            at_ms,
            allowed,
            remaining,
            retry_after_ms,
            reset_after_ms,
        }
    }

    fn check(config: BucketConfig, steps: &[Step]) {
        let mut bucket = None;
        for (index, expected) in steps.iter().enumerate() {
            let (next, decision) =
                bucket_take(bucket, config, Duration::from_millis(expected.at_ms));
            bucket = Some(next);
            assert_eq!(
                decision,
                Decision {
                    allowed: expected.allowed,
                    limit: config.limit(),
                    remaining: expected.remaining,
                    retry_after: Duration::from_millis(expected.retry_after_ms),
                    reset_after: Duration::from_millis(expected.reset_after_ms),
                },
                "request {index} at {} ms",
                expected.at_ms
            );
        }
    }

    fn config(burst: u32, refill_per_sec: f64) -> BucketConfig {
        BucketConfig {
            burst,
            refill_per_sec,
        }
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        check(
            config(3, 1.0),
            &[
                step(0, true, 2, 0, 1000),
                step(0, true, 1, 0, 2000),
                step(0, true, 0, 0, 3000),
                step(0, false, 0, 1000, 3000),
                step(0, false, 0, 1000, 3000),
            ],
        );
    }

    #[test]
    fn tokens_come_back_at_the_refill_rate() {
        check(
            config(2, 4.0),
            &[
                step(0, true, 1, 0, 250),
                step(0, true, 0, 0, 500),
                step(100, false, 0, 150, 400),
                step(250, true, 0, 0, 500),
                step(500, true, 0, 0, 500),
                step(2_000, true, 1, 0, 250),
            ],
        );
    }

    #[test]
    fn a_refused_request_takes_nothing() {
        check(
            config(1, 0.5),
            &[
                step(0, true, 0, 0, 2000),
                step(1_000, false, 0, 1000, 1000),
                step(1_500, false, 0, 500, 500),
                step(2_000, true, 0, 0, 2000),
            ],
        );
    }

    #[test]
    fn a_bucket_never_holds_more_than_its_burst() {
        check(
            config(2, 10.0),
            &[
                step(0, true, 1, 0, 100),
                step(3_600_000, true, 1, 0, 100),
                step(3_600_000, true, 0, 0, 200),
                step(3_600_000, false, 0, 100, 200),
            ],
        );
    }

    #[test]
    fn fractional_rates_round_retry_after_up_to_whole_milliseconds() {
        check(
            config(1, 3.0),
            &[
                step(0, true, 0, 0, 334),
                step(0, false, 0, 334, 334),
                step(333, false, 0, 1, 1),
                step(334, true, 0, 0, 334),
            ],
        );
    }

    #[test]
    fn time_running_backwards_refills_nothing() {
        check(
            config(1, 1.0),
            &[
                step(5_000, true, 0, 0, 1000),
                step(1_000, false, 0, 1000, 1000),
                step(5_500, false, 0, 500, 500),
                step(6_000, true, 0, 0, 1000),
            ],
        );
    }

    #[test]
    fn degenerate_configs_are_clamped() {
        // A zero burst still allows one request; a zero or NaN rate refills one a day.
        check(
            config(0, 0.0),
            &[
                step(0, true, 0, 0, 86_400_000),
                step(0, false, 0, 86_400_000, 86_400_000),
            ],
        );
        check(config(1, f64::NAN), &[step(0, true, 0, 0, 86_400_000)]);
        check(
            config(1, f64::INFINITY),
            &[
                step(0, true, 0, 0, 1),
                step(0, false, 0, 1, 1),
                step(1, true, 0, 0, 1),
            ],
        );
    }
}
