//! Per-domain politeness as a pure state machine: how many requests a
//! domain may get per minute, how many at once, how far apart, whether the
//! site asked us to stay away (`Retry-After`), and its circuit breaker.
//!
//! One [`DomainState`] per domain. A worker asks before it fetches
//! ([`DomainState::acquire`]) and says how it went when it is done
//! ([`DomainState::finish`]); every grant is a permit with an expiry, so a
//! worker that dies holding one frees its slot when the permit expires.
//! Time is a parameter (milliseconds since the epoch on the caller's clock).
//!
//! Deliberately not here: where the state lives (one process, or Redis
//! shared by every replica; both keep this type, serialised) and what the
//! limits are (the server's defaults or a domain policy).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::breaker::{Breaker, BreakerConfig, BreakerState, Outcome, Permit, Ticket};

/// Longest pause a `Retry-After` can impose: a site cannot park a domain
/// for days through one header.
pub const MAX_PAUSE_MS: u64 = 60 * 60 * 1000;

/// How long a domain's breaker history is kept after its latest
/// transition: the state is not idle (not forgotten) until then.
pub const BREAKER_HISTORY_KEPT_MS: i64 = 2 * 60 * 60 * 1000;

/// What one domain may receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainLimits {
    /// Requests started per minute, on average (a token bucket holding at
    /// most one second's worth); `None` for no rate limit.
    pub per_minute: Option<u32>,
    /// Requests in flight at once; `None` for no cap.
    pub max_concurrent: Option<u32>,
    /// Least time between two request starts, in milliseconds.
    pub min_gap_ms: u64,
    /// Consecutive failures (network errors, timeouts, 5xx) that open the
    /// breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses requests before one probe.
    pub breaker_open_ms: u64,
}

impl Default for DomainLimits {
    fn default() -> Self {
        Self {
            per_minute: None,
            max_concurrent: Some(16),
            min_gap_ms: 0,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
        }
    }
}

impl DomainLimits {
    fn breaker_config(&self) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: self.breaker_failures.max(1),
            open_for: TimeDelta::milliseconds(ms_i64(self.breaker_open_ms)),
        }
    }
}

/// Why a request has to wait: the worker protocol's reason, as the permit
/// answer carries it.
pub use accord_model::EgressWaitReason as WaitReason;

/// The answer to "may I send a request to this domain now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go; report how it went under the permit's id.
    Go { probe: bool },
    /// Not before `until_ms`.
    Wait { until_ms: i64, reason: WaitReason },
}

/// How a request ended, as far as politeness cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The site answered (any status that does not say it is in trouble).
    Success,
    /// The site is in trouble: network error, timeout, 5xx.
    Failure,
    /// The request never went out, or what happened says nothing about
    /// the site (the job was cancelled, a selector was wrong).
    Neutral,
}

/// A permit in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InFlight {
    expires_ms: i64,
    /// The breaker ticket: `(generation, probe)`.
    ticket: Ticket,
}

/// One domain's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainState {
    /// Tokens in the rate bucket, counted at `refilled_ms`.
    tokens: f64,
    refilled_ms: i64,
    last_start_ms: Option<i64>,
    paused_until_ms: Option<i64>,
    in_flight: BTreeMap<String, InFlight>,
    breaker: Breaker,
}

impl DomainState {
    pub fn new(limits: &DomainLimits, now_ms: i64) -> Self {
        Self {
            tokens: bucket_capacity(limits),
            refilled_ms: now_ms,
            last_start_ms: None,
            paused_until_ms: None,
            in_flight: BTreeMap::new(),
            breaker: Breaker::new(limits.breaker_config()),
        }
    }

    /// Asks to start one request at `now_ms`; on `Go`, the permit `id`
    /// holds a slot until it is finished or `expires_ms` passes.
    pub fn acquire(
        &mut self,
        limits: &DomainLimits,
        id: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Decision {
        self.expire(now_ms);
        self.refill(limits, now_ms);
        if let Some(until) = self.paused_until_ms.filter(|until| *until > now_ms) {
            return wait(until, WaitReason::Paused);
        }
        if let Some(max) = limits.max_concurrent {
            if self.in_flight.len() >= max.max(1) as usize {
                // The earliest a slot frees by itself; a finish frees it sooner.
                let until = self
                    .in_flight
                    .values()
                    .map(|permit| permit.expires_ms)
                    .min()
                    .unwrap_or(now_ms);
                return wait(until.min(now_ms + 1_000), WaitReason::Concurrency);
            }
        }
        if let Some(last) = self.last_start_ms {
            let next = last.saturating_add(ms_i64(limits.min_gap_ms));
            if next > now_ms {
                return wait(next, WaitReason::Gap);
            }
        }
        if let Some(per_minute) = limits.per_minute {
            if self.tokens < 1.0 {
                let per_ms = f64::from(per_minute.max(1)) / 60_000.0;
                let missing_ms = ((1.0 - self.tokens) / per_ms).ceil() as i64;
                return wait(now_ms + missing_ms.max(1), WaitReason::Rate);
            }
        }
        let ticket = match self.breaker.admit(millis_to_time(now_ms)) {
            Permit::Go(ticket) => ticket,
            Permit::Refused { retry_at } => {
                // A half-open breaker answers "now": ask again a little later.
                let until = retry_at.timestamp_millis().max(now_ms + 250);
                return wait(until, WaitReason::BreakerOpen);
            }
        };
        if limits.per_minute.is_some() {
            self.tokens -= 1.0;
        }
        self.last_start_ms = Some(now_ms);
        self.in_flight
            .insert(id.to_owned(), InFlight { expires_ms, ticket });
        Decision::Go {
            probe: ticket.is_probe(),
        }
    }

    /// Ends permit `id` at `now_ms`. `pause_ms` (from a `Retry-After`,
    /// capped at [`MAX_PAUSE_MS`]) keeps every request to the domain waiting
    /// that long. An unknown or expired permit still applies the pause.
    pub fn finish(&mut self, id: &str, finish: Finish, pause_ms: Option<u64>, now_ms: i64) {
        if let Some(pause) = pause_ms {
            let until = now_ms.saturating_add(ms_i64(pause.min(MAX_PAUSE_MS)));
            self.paused_until_ms = Some(self.paused_until_ms.unwrap_or(until).max(until));
        }
        let Some(permit) = self.in_flight.remove(id) else {
            return;
        };
        let now = millis_to_time(now_ms);
        match finish {
            Finish::Success => self.breaker.record(permit.ticket, Outcome::Success, now),
            Finish::Failure => self.breaker.record(permit.ticket, Outcome::Failure, now),
            Finish::Neutral => self.breaker.abandon(permit.ticket, now),
        }
    }

    /// Requests in flight at `now_ms`.
    pub fn in_flight(&self, now_ms: i64) -> usize {
        self.in_flight
            .values()
            .filter(|permit| permit.expires_ms > now_ms)
            .count()
    }

    pub fn breaker(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The breaker's last transitions, newest first.
    pub fn breaker_history(&self) -> impl Iterator<Item = &accord_model::BreakerTransition> {
        self.breaker.history()
    }

    pub fn paused_until_ms(&self) -> Option<i64> {
        self.paused_until_ms
    }

    /// Nothing in flight, no pause and a quiet breaker that has not changed
    /// for [`BREAKER_HISTORY_KEPT_MS`]: the state can be forgotten (a fresh
    /// one behaves the same, and the history has served its time).
    pub fn is_idle(&self, limits: &DomainLimits, now_ms: i64) -> bool {
        self.in_flight(now_ms) == 0
            && self.paused_until_ms.is_none_or(|until| until <= now_ms)
            && self.breaker.state() == (BreakerState::Closed { failures: 0 })
            && self.breaker.last_change().is_none_or(|at| {
                at.timestamp_millis()
                    .saturating_add(BREAKER_HISTORY_KEPT_MS)
                    <= now_ms
            })
            && self
                .last_start_ms
                .is_none_or(|last| last.saturating_add(ms_i64(limits.min_gap_ms)) <= now_ms)
            && self.bucket_full(limits, now_ms)
    }

    /// Whether the rate bucket has refilled completely by `now_ms`.
    fn bucket_full(&self, limits: &DomainLimits, now_ms: i64) -> bool {
        limits.per_minute.is_none()
            || self.tokens_at(limits, now_ms) + 1e-9 >= bucket_capacity(limits)
    }

    /// The rate bucket's tokens at `now_ms`, refilled since it was counted.
    fn tokens_at(&self, limits: &DomainLimits, now_ms: i64) -> f64 {
        let per_minute = limits.per_minute.unwrap_or(0);
        let elapsed = now_ms.saturating_sub(self.refilled_ms).max(0) as f64;
        let per_ms = f64::from(per_minute.max(1)) / 60_000.0;
        (self.tokens + elapsed * per_ms).min(bucket_capacity(limits))
    }

    fn expire(&mut self, now_ms: i64) {
        let expired: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, permit)| permit.expires_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            // A worker that died with the permit: what happened is unknown.
            self.finish(&id, Finish::Neutral, None, now_ms);
        }
    }

    fn refill(&mut self, limits: &DomainLimits, now_ms: i64) {
        if limits.per_minute.is_none() {
            return;
        }
        self.tokens = self.tokens_at(limits, now_ms);
        self.refilled_ms = self.refilled_ms.max(now_ms);
    }
}

/// At most one second's worth of requests at once, and at least one.
fn bucket_capacity(limits: &DomainLimits) -> f64 {
    limits
        .per_minute
        .map_or(1.0, |per_minute| (f64::from(per_minute) / 60.0).max(1.0))
}

fn wait(until_ms: i64, reason: WaitReason) -> Decision {
    Decision::Wait { until_ms, reason }
}

fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn millis_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn limits() -> DomainLimits {
        DomainLimits {
            per_minute: None,
            max_concurrent: None,
            min_gap_ms: 0,
            breaker_failures: 3,
            breaker_open_ms: 10_000,
        }
    }

    fn go(state: &mut DomainState, limits: &DomainLimits, id: &str, now: i64) -> bool {
        matches!(
            state.acquire(limits, id, now + 60_000, now),
            Decision::Go { .. }
        )
    }

    #[test]
    fn the_concurrency_cap_holds_until_a_permit_finishes_or_expires() {
        let limits = DomainLimits {
            max_concurrent: Some(2),
            ..limits()
        };
        let mut state = DomainState::new(&limits, T0);
        assert!(go(&mut state, &limits, "a", T0));
        assert_eq!(
            state.acquire(&limits, "b", T0 + 5_000, T0),
            Decision::Go { probe: false }
        );
        assert_eq!(
            state.acquire(&limits, "c", T0 + 60_000, T0),
            wait(T0 + 1_000, WaitReason::Concurrency)
        );
        state.finish("a", Finish::Success, None, T0 + 10);
        assert!(go(&mut state, &limits, "c", T0 + 10));
        // "b" expires at T0 + 5 s: its slot is free again without a finish.
        assert!(!go(&mut state, &limits, "d", T0 + 4_999));
        assert!(go(&mut state, &limits, "d", T0 + 5_000));
        assert_eq!(state.in_flight(T0 + 5_000), 2);
    }

    #[test]
    fn the_minimum_gap_spaces_request_starts() {
        let limits = DomainLimits {
            min_gap_ms: 500,
            ..limits()
        };
        let mut state = DomainState::new(&limits, T0);
        assert!(go(&mut state, &limits, "a", T0));
        assert_eq!(
            state.acquire(&limits, "b", T0 + 60_000, T0 + 200),
            wait(T0 + 500, WaitReason::Gap)
        );
        assert!(go(&mut state, &limits, "b", T0 + 500));
    }

    #[test]
    fn the_rate_allows_one_seconds_worth_then_spaces_the_rest() {
        let limits = DomainLimits {
            per_minute: Some(120),
            ..limits()
        };
        let mut state = DomainState::new(&limits, T0);
        assert!(go(&mut state, &limits, "a", T0));
        assert!(go(&mut state, &limits, "b", T0));
        assert_eq!(
            state.acquire(&limits, "c", T0 + 60_000, T0),
            wait(T0 + 500, WaitReason::Rate)
        );
        assert!(go(&mut state, &limits, "c", T0 + 500));
    }

    #[test]
    fn retry_after_pauses_the_domain_and_is_capped() {
        let limits = limits();
        let mut state = DomainState::new(&limits, T0);
        assert!(go(&mut state, &limits, "a", T0));
        state.finish("a", Finish::Neutral, Some(2_000), T0 + 100);
        assert_eq!(
            state.acquire(&limits, "b", T0 + 60_000, T0 + 1_000),
            wait(T0 + 2_100, WaitReason::Paused)
        );
        assert!(go(&mut state, &limits, "b", T0 + 2_100));
        state.finish("b", Finish::Success, Some(u64::MAX), T0 + 3_000);
        assert_eq!(
            state.paused_until_ms(),
            Some(T0 + 3_000 + MAX_PAUSE_MS as i64)
        );
    }

    #[test]
    fn the_breaker_opens_lets_one_probe_through_and_closes() {
        let limits = limits();
        let mut state = DomainState::new(&limits, T0);
        for n in 0..3 {
            let id = format!("f{n}");
            assert!(go(&mut state, &limits, &id, T0));
            state.finish(&id, Finish::Failure, None, T0 + 1);
        }
        assert_eq!(
            state.acquire(&limits, "x", T0 + 60_000, T0 + 2),
            wait(T0 + 10_001, WaitReason::BreakerOpen)
        );
        // Time is up: one probe, and nobody else while it is out.
        assert_eq!(
            state.acquire(&limits, "probe", T0 + 60_000, T0 + 10_001),
            Decision::Go { probe: true }
        );
        assert!(matches!(
            state.acquire(&limits, "y", T0 + 60_000, T0 + 10_002),
            Decision::Wait {
                reason: WaitReason::BreakerOpen,
                ..
            }
        ));
        state.finish("probe", Finish::Success, None, T0 + 10_100);
        assert_eq!(state.breaker(), BreakerState::Closed { failures: 0 });
        assert!(go(&mut state, &limits, "y", T0 + 10_100));
        state.finish("y", Finish::Success, None, T0 + 10_200);
        // The history is kept for a while after the breaker closed: the
        // closed state is not forgotten until then.
        let reasons: Vec<_> = state.breaker_history().map(|t| t.reason).collect();
        assert_eq!(
            reasons,
            [
                accord_model::BreakerReason::ProbeSucceeded,
                accord_model::BreakerReason::ProbeDue,
                accord_model::BreakerReason::FailuresInARow,
            ]
        );
        assert!(!state.is_idle(&limits, T0 + 20_000));
        assert!(state.is_idle(&limits, T0 + 10_100 + BREAKER_HISTORY_KEPT_MS));
    }

    #[test]
    fn a_probe_whose_worker_died_lets_the_next_request_probe() {
        let limits = limits();
        let mut state = DomainState::new(&limits, T0);
        for n in 0..3 {
            let id = format!("f{n}");
            assert!(go(&mut state, &limits, &id, T0));
            state.finish(&id, Finish::Failure, None, T0);
        }
        assert_eq!(
            state.acquire(&limits, "probe", T0 + 10_500, T0 + 10_000),
            Decision::Go { probe: true }
        );
        // The probe's permit expires unreported.
        assert_eq!(
            state.acquire(&limits, "next", T0 + 60_000, T0 + 10_500),
            Decision::Go { probe: true }
        );
    }

    #[test]
    fn a_state_round_trips_through_json_and_idles() {
        let limits = DomainLimits {
            per_minute: Some(60),
            min_gap_ms: 100,
            ..limits()
        };
        let mut state = DomainState::new(&limits, T0);
        assert!(go(&mut state, &limits, "a", T0));
        let json = serde_json::to_string(&state).expect("serialises");
        let back: DomainState = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, state);
        assert!(!state.is_idle(&limits, T0));
        state.finish("a", Finish::Success, None, T0 + 10);
        assert!(state.is_idle(&limits, T0 + 1_000));
    }
}
