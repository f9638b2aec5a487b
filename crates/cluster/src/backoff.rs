//! The reconnect delays of the background tasks: exponential from
//! [`MIN_DELAY`] to [`MAX_DELAY`], each delay drawn between half and all of
//! its step so that replicas that lost Redis together do not come back in
//! lockstep. Only for reconnecting to Redis; job retries live in the queue.

use std::time::Duration;

use rand::Rng;

pub(crate) const MIN_DELAY: Duration = Duration::from_millis(100);
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct Backoff {
    step: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { step: MIN_DELAY }
    }

    /// The delay before the next attempt; each call doubles the step.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(MAX_DELAY);
        step.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    /// After a success the next failure starts over from the shortest delay.
    pub(crate) fn reset(&mut self) {
        self.step = MIN_DELAY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new();
        let steps = [100, 200, 400, 800, 1_600, 2_000, 2_000];
        for step in steps {
            let delay = backoff.next_delay();
            let step = Duration::from_millis(step);
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} is not within half of {step:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= MIN_DELAY);
    }
}
