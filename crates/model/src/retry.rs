//! The retry policy: exponential backoff with jitter, chosen per job.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

impl RetryPolicy {
    /// `unit` is a random number in `[0, 1)`; passing it in keeps this pure.
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
}
