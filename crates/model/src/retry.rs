//! The retry policy and the one decision made after a failed attempt: run
//! again later (exponential backoff with jitter) or give up (dead-letter).
//! Both store backends apply this decision; neither writes its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ErrorKind;

/// How long to wait before the next attempt after a retryable failure.
///
/// The delay before attempt `n + 1` is `initial_delay_ms * multiplier^(n - 1)`,
/// capped at `max_delay_ms`, then shifted by up to `±jitter` of itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    pub multiplier: f64,
    /// Fraction of the delay, 0.0 to 1.0.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay_ms: 1_000,
            max_delay_ms: 300_000,
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// One failed attempt, as the retry decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The attempt that failed (its fencing token); it sets the backoff.
    pub attempt: u32,
    /// Attempts before this one that do not count toward `max_attempts`
    /// (leases released unrun, attempts before an operator's requeue).
    pub uncounted: u32,
    pub max_attempts: u32,
    pub kind: ErrorKind,
}

impl Failure {
    /// Whether this failure used up the job's attempts.
    pub fn exhausts_attempts(&self) -> bool {
        self.attempt.saturating_sub(self.uncounted) >= self.max_attempts
    }
}

/// What becomes of a job after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Queue it again (`retrying`), claimable from `at`.
    Retry { at: DateTime<Utc> },
    /// Give up: the job is dead-lettered (`dead`) until an operator requeues it.
    Dead,
}

impl RetryPolicy {
    /// Decides a failed attempt: a retryable error (`retryable`, `timeout`,
    /// `lease_expired`) is retried after [`RetryPolicy::delay`] while
    /// attempts are left; a permanent one, or one that used up the
    /// attempts, is dead. `unit` is a random number in `[0, 1)` for the
    /// jitter; passing it in keeps this pure.
    pub fn after_failure(&self, failure: Failure, now: DateTime<Utc>, unit: f64) -> Next {
        if !failure.kind.is_retryable() || failure.exhausts_attempts() {
            return Next::Dead;
        }
        let delay = chrono::Duration::from_std(self.delay(failure.attempt, unit))
            .unwrap_or(chrono::Duration::MAX);
        Next::Retry {
            at: now
                .checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The backoff after failed attempt `failed_attempt`; `unit` is a random
    /// number in `[0, 1)`.
    pub fn delay(&self, failed_attempt: u32, unit: f64) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(64) as i32;
        let base = (self.initial_delay_ms as f64) * self.multiplier.powi(exponent);
        let capped = base.min(self.max_delay_ms as f64);
        let spread = capped * self.jitter * (unit.clamp(0.0, 1.0) * 2.0 - 1.0);
        let millis = (capped + spread).clamp(0.0, self.max_delay_ms as f64);
        Duration::from_millis(millis.round() as u64)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_delay_ms > 7 * 24 * 3_600_000 {
            return Err("retry.max_delay_ms must be at most one week".into());
        }
        if self.initial_delay_ms > self.max_delay_ms {
            return Err("retry.initial_delay_ms must not exceed retry.max_delay_ms".into());
        }
        if !(1.0..=10.0).contains(&self.multiplier) {
            return Err("retry.multiplier must be between 1.0 and 10.0".into());
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err("retry.jitter must be between 0.0 and 1.0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn check(policy: RetryPolicy, attempt: u32, unit: f64, expected_ms: u64) {
        assert_eq!(
            policy.delay(attempt, unit),
            Duration::from_millis(expected_ms),
            "attempt {attempt} unit {unit}"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let no_jitter = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        check(no_jitter, 1, 0.5, 1_000);
        check(no_jitter, 2, 0.5, 2_000);
        check(no_jitter, 3, 0.5, 4_000);
        check(no_jitter, 30, 0.5, 300_000);
        check(no_jitter, u32::MAX, 0.5, 300_000);
    }

    #[test]
    fn jitter_spreads_both_ways() {
        let policy = RetryPolicy::default();
        check(policy, 1, 0.0, 800);
        check(policy, 1, 0.5, 1_000);
        check(policy, 1, 1.0, 1_200);
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    /// `(attempt, uncounted, max_attempts, kind)` decided with the default
    /// policy at `now()` and `unit` 0.5; `expected` is the delay in
    /// milliseconds, or `None` for dead.
    fn decide(failure: (u32, u32, u32, ErrorKind), expected: Option<i64>) {
        let (attempt, uncounted, max_attempts, kind) = failure;
        let failure = Failure {
            attempt,
            uncounted,
            max_attempts,
            kind,
        };
        let expected = match expected {
            Some(ms) => Next::Retry {
                at: now() + chrono::Duration::milliseconds(ms),
            },
            None => Next::Dead,
        };
        assert_eq!(
            RetryPolicy::default().after_failure(failure, now(), 0.5),
            expected,
            "{failure:?}"
        );
    }

    #[test]
    fn retryable_failures_back_off_until_attempts_run_out() {
        use ErrorKind::*;
        decide((1, 0, 3, Retryable), Some(1_000));
        decide((2, 0, 3, Retryable), Some(2_000));
        decide((3, 0, 3, Retryable), None);
        decide((1, 0, 3, Timeout), Some(1_000));
        decide((1, 0, 3, LeaseExpired), Some(1_000));
        decide((1, 0, 1, Timeout), None);
    }

    #[test]
    fn permanent_failures_are_dead_at_once() {
        decide((1, 0, 3, ErrorKind::Permanent), None);
        decide((1, 0, 100, ErrorKind::Permanent), None);
    }

    #[test]
    fn uncounted_attempts_leave_the_budget_but_still_grow_the_backoff() {
        // Attempt 4 after one release and two requeued attempts: only one
        // of three counted, yet the delay is that of a fourth attempt.
        decide((4, 3, 3, ErrorKind::Retryable), Some(8_000));
        decide((4, 1, 3, ErrorKind::Retryable), None);
        decide((4, 5, 3, ErrorKind::Retryable), Some(8_000));
    }

    #[test]
    fn jitter_and_far_futures_stay_in_range() {
        let policy = RetryPolicy::default();
        let failure = Failure {
            attempt: 1,
            uncounted: 0,
            max_attempts: 3,
            kind: ErrorKind::Retryable,
        };
        assert_eq!(
            policy.after_failure(failure, now(), 0.0),
            Next::Retry {
                at: now() + chrono::Duration::milliseconds(800)
            }
        );
        assert_eq!(
            policy.after_failure(failure, DateTime::<Utc>::MAX_UTC, 0.5),
            Next::Retry {
                at: DateTime::<Utc>::MAX_UTC
            },
            "saturates instead of overflowing"
        );
    }
}
