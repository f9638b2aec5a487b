//! [`Backoff`]: how long a background task waits before calling something
//! that just failed again (the worker's claims and reports, the audit
//! writer, the wake-up listener, the Redis probe and subscriber).
//!
//! Pure arithmetic: the caller passes the random number in, so the delays
//! are deterministic under test. Does not sleep, count attempts or decide
//! when to give up; job retries follow the job's own
//! [`RetryPolicy`](crate::RetryPolicy) instead.

use std::time::Duration;

/// Exponential delays from `first` up to `max`, each drawn between half and
/// all of its step, so that processes that lost the same dependency at once
/// do not come back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// `first` is the step of the first delay after a success; it doubles
    /// after each failure up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            step: first,
        }
    }

    /// The delay before the next try, and the step doubles. `unit` is a
    /// random number in `[0, 1]` (clamped): 0 gives half the step, 1 all of it.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let step = self.step.min(self.max);
        self.step = step.saturating_mul(2).min(self.max);
        let half = step / 2;
        half.saturating_add(half.mul_f64(unit.clamp(0.0, 1.0)))
    }

    /// After a success the next failure starts over from the first step.
    pub fn reset(&mut self) {
        self.step = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(backoff: &mut Backoff, unit: f64, expected_ms: u64) {
        assert_eq!(
            backoff.next_delay(unit),
            Duration::from_millis(expected_ms),
            "unit {unit}"
        );
    }

    #[test]
    fn steps_double_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for expected in [100, 200, 400, 800, 1_600, 2_000, 2_000] {
            check(&mut backoff, 1.0, expected);
        }
    }

    #[test]
    fn the_random_number_picks_between_half_and_all_of_the_step() {
        let backoff = Backoff::new(Duration::from_millis(400), Duration::from_secs(5));
        check(&mut backoff.clone(), 0.0, 200);
        check(&mut backoff.clone(), 0.5, 300);
        check(&mut backoff.clone(), 1.0, 400);
        check(&mut backoff.clone(), -3.0, 200);
        check(&mut backoff.clone(), 7.0, 400);
    }

    #[test]
    fn a_reset_starts_over_from_the_first_step() {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        check(&mut backoff, 1.0, 250);
        check(&mut backoff, 1.0, 500);
        backoff.reset();
        check(&mut backoff, 1.0, 250);
    }

    #[test]
    fn a_first_step_above_the_cap_is_cut_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(1));
        check(&mut backoff, 1.0, 1_000);
        check(&mut backoff, 1.0, 1_000);
    }

    #[test]
    fn a_huge_cap_does_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::MAX);
        for _ in 0..200 {
            backoff.next_delay(1.0);
        }
        assert!(backoff.next_delay(0.0) > Duration::from_secs(1));
    }
}
