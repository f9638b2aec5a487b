//! A per-domain circuit breaker as a pure state machine: closed, open after
//! repeated failures, half-open with exactly one probe, closed again when
//! the probe succeeds. Time is a parameter, so the caller's injected clock
//! (and the tests) decide it.
//!
//! Every admitted request carries a [`Ticket`]; its outcome is recorded with
//! that ticket. A ticket issued before the breaker last opened is stale: its
//! outcome no longer counts, so a slow success from before an outage cannot
//! close the breaker, and only the probe's own outcome decides the
//! half-open state.
//!
//! Each change of state is kept with its time and reason, the last
//! [`MAX_BREAKER_HISTORY`] of them, so operators can see how a domain has
//! been doing ([`Breaker::history`]).
//!
//! Deliberately not here: where the state lives (one process, Redis or the
//! control plane) and what a rejected job does (wait or fail fast, as the
//! domain's policy says).

use std::collections::VecDeque;

use accord_model::{BreakerReason, BreakerStatus, BreakerTransition, MAX_BREAKER_HISTORY};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one probe is let through.
    #[serde(with = "millis")]
    pub open_for: TimeDelta,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: TimeDelta::seconds(30),
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow; `failures` in a row so far.
    Closed { failures: u32 },
    /// Requests are refused until `until`.
    Open { until: DateTime<Utc> },
    /// One probe is out; everything else is refused until it reports.
    HalfOpen,
}

/// Permission to send one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Which opening of the breaker this ticket belongs to.
    generation: u64,
    probe: bool,
}

impl Ticket {
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// The answer to "may I send a request?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Go(Ticket),
    /// Not now; ask again at `retry_at` (for a half-open breaker, the probe
    /// must report first, so the time is the earliest it could).
    Refused {
        retry_at: DateTime<Utc>,
    },
}

/// How a request ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A failure that says the site is in trouble (network error, 5xx,
    /// timeout), not one that says the job is wrong.
    Failure,
}

/// One domain's breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    generation: u64,
    /// The last transitions, oldest first. Absent from states written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    history: VecDeque<BreakerTransition>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed { failures: 0 },
            generation: 0,
            history: VecDeque::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The last transitions, newest first.
    pub fn history(&self) -> impl Iterator<Item = &BreakerTransition> {
        self.history.iter().rev()
    }

    /// When the breaker last changed state, if it ever did.
    pub fn last_change(&self) -> Option<DateTime<Utc>> {
        self.history.back().map(|transition| transition.at)
    }

    /// Asks to send a request at `now`. An open breaker whose time is up
    /// lets exactly one probe through and turns half-open.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Permit {
        match self.state {
            BreakerState::Closed { .. } => Permit::Go(self.ticket(false)),
            BreakerState::Open { until } if now < until => Permit::Refused { retry_at: until },
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen;
                self.note(now, BreakerReason::ProbeDue, None);
                Permit::Go(self.ticket(true))
            }
            BreakerState::HalfOpen => Permit::Refused { retry_at: now },
        }
    }

    /// Records how the request of `ticket` ended, at `now`.
    pub fn record(&mut self, ticket: Ticket, outcome: Outcome, now: DateTime<Utc>) {
        if ticket.generation != self.generation {
            return;
        }
        match (self.state, outcome, ticket.probe) {
            (BreakerState::Closed { .. }, Outcome::Success, _) => {
                self.state = BreakerState::Closed { failures: 0 };
            }
            (BreakerState::Closed { failures }, Outcome::Failure, _) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold {
                    self.open(now);
                    self.note(now, BreakerReason::FailuresInARow, Some(failures));
                } else {
                    self.state = BreakerState::Closed { failures };
                }
            }
            (BreakerState::HalfOpen, Outcome::Success, true) => {
                self.state = BreakerState::Closed { failures: 0 };
                self.generation += 1;
                self.note(now, BreakerReason::ProbeSucceeded, None);
            }
            (BreakerState::HalfOpen, Outcome::Failure, true) => {
                self.open(now);
                self.note(now, BreakerReason::ProbeFailed, None);
            }
            // Requests admitted while closed that report once the breaker
            // opened or went half-open carry an older generation and never
            // get here; nothing else can report in these states.
            (BreakerState::Open { .. } | BreakerState::HalfOpen, _, _) => {}
        }
    }

    /// A probe that was admitted but never sent (its job was cancelled):
    /// the next request from `now` on may probe instead, and the abandoned
    /// ticket no longer counts.
    pub fn abandon(&mut self, ticket: Ticket, now: DateTime<Utc>) {
        let current = ticket.generation == self.generation;
        if ticket.probe && current && self.state == BreakerState::HalfOpen {
            self.state = BreakerState::Open { until: now };
            self.generation += 1;
            self.note(now, BreakerReason::ProbeAbandoned, None);
        }
    }

    /// Keeps a transition to the current state.
    fn note(&mut self, at: DateTime<Utc>, reason: BreakerReason, failures: Option<u32>) {
        let to = match self.state {
            BreakerState::Closed { .. } => BreakerStatus::Closed,
            BreakerState::Open { .. } => BreakerStatus::Open,
            BreakerState::HalfOpen => BreakerStatus::HalfOpen,
        };
        if self.history.len() == MAX_BREAKER_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(BreakerTransition {
            at,
            to,
            reason,
            failures,
        });
    }

    fn open(&mut self, now: DateTime<Utc>) {
        self.state = BreakerState::Open {
            until: now + self.config.open_for,
        };
        self.generation += 1;
    }

    fn ticket(&self, probe: bool) -> Ticket {
        Ticket {
            generation: self.generation,
            probe,
        }
    }
}

/// A [`TimeDelta`] as whole milliseconds, for keeping a breaker in Redis.
mod millis {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(delta: &TimeDelta, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(delta.num_milliseconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TimeDelta, D::Error> {
        i64::deserialize(deserializer).map(TimeDelta::milliseconds)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// One step of a scenario: at second `at`, do something and see the
    /// breaker in `state` afterwards.
    enum Step {
        /// Ask; expect `go`, `probe` or `refused until <second>`; keep the
        /// ticket under `name`.
        Admit(i64, &'static str, &'static str),
        /// Report the ticket kept under `name`.
        Report(i64, &'static str, Outcome),
        Abandon(i64, &'static str),
    }

    fn at(second: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(second)
    }

    fn show_state(state: BreakerState) -> String {
        match state {
            BreakerState::Closed { failures } => format!("closed({failures})"),
            BreakerState::Open { until } => {
                format!("open until {}", (until - at(0)).num_seconds())
            }
            BreakerState::HalfOpen => "half-open".to_owned(),
        }
    }

    /// Runs the steps on a breaker that opens after 3 failures for 10 s;
    /// each step expects the state it leaves. Returns the breaker.
    fn check(steps: &[(Step, &str)]) -> Breaker {
        let config = BreakerConfig {
            failure_threshold: 3,
            open_for: TimeDelta::seconds(10),
        };
        let mut breaker = Breaker::new(config);
        let mut tickets = std::collections::HashMap::new();
        for (i, (step, expected_state)) in steps.iter().enumerate() {
            match step {
                Step::Admit(second, name, expected) => {
                    let got = match breaker.admit(at(*second)) {
                        Permit::Go(ticket) => {
                            tickets.insert(*name, ticket);
                            if ticket.is_probe() { "probe" } else { "go" }.to_owned()
                        }
                        Permit::Refused { retry_at } => {
                            format!("refused until {}", (retry_at - at(0)).num_seconds())
                        }
                    };
                    assert_eq!(got, *expected, "step {i}");
                }
                Step::Report(second, name, outcome) => {
                    breaker.record(tickets[name], *outcome, at(*second));
                }
                Step::Abandon(second, name) => breaker.abandon(tickets[name], at(*second)),
            }
            assert_eq!(
                show_state(breaker.state()),
                *expected_state,
                "after step {i}"
            );
        }
        breaker
    }

    /// The history, newest first, as `second: state (reason)`.
    fn show_history(breaker: &Breaker) -> Vec<String> {
        breaker
            .history()
            .map(|t| {
                let failures = t.failures.map(|n| format!(" {n}")).unwrap_or_default();
                format!(
                    "{}: {:?} ({:?}{failures})",
                    (t.at - at(0)).num_seconds(),
                    t.to,
                    t.reason
                )
            })
            .collect()
    }

    #[test]
    fn every_transition_is_kept_with_its_time_and_reason() {
        let breaker = check(&[
            (Admit(0, "a", "go"), "closed(0)"),
            (Report(1, "a", Failure), "closed(1)"),
            (Report(1, "a", Failure), "closed(2)"),
            (Report(2, "a", Failure), "open until 12"),
            (Admit(12, "probe", "probe"), "half-open"),
            (Report(13, "probe", Failure), "open until 23"),
            (Admit(23, "probe2", "probe"), "half-open"),
            (Abandon(24, "probe2"), "open until 24"),
            (Admit(25, "probe3", "probe"), "half-open"),
            (Report(26, "probe3", Success), "closed(0)"),
        ]);
        assert_eq!(
            show_history(&breaker),
            [
                "26: Closed (ProbeSucceeded)",
                "25: HalfOpen (ProbeDue)",
                "24: Open (ProbeAbandoned)",
                "23: HalfOpen (ProbeDue)",
                "13: Open (ProbeFailed)",
                "12: HalfOpen (ProbeDue)",
                "2: Open (FailuresInARow 3)",
            ]
        );
        assert_eq!(breaker.last_change(), Some(at(26)));
        // It survives the trip through Redis.
        let json = serde_json::to_string(&breaker).unwrap();
        let back: Breaker = serde_json::from_str(&json).unwrap();
        assert_eq!(back, breaker);
        // A breaker stored before the history was kept still reads.
        let old = r#"{"config":{"failure_threshold":3,"open_for":10000},"state":{"state":"closed","failures":0},"generation":0}"#;
        let read: Breaker = serde_json::from_str(old).unwrap();
        assert_eq!(read.history().count(), 0);
    }

    #[test]
    fn only_the_last_transitions_are_kept() {
        let mut breaker = Breaker::new(BreakerConfig {
            failure_threshold: 1,
            open_for: TimeDelta::seconds(1),
        });
        for round in 0..30 {
            let Permit::Go(ticket) = breaker.admit(at(round * 10)) else {
                panic!("round {round}: refused");
            };
            breaker.record(ticket, Outcome::Failure, at(round * 10));
        }
        assert_eq!(breaker.history().count(), MAX_BREAKER_HISTORY);
        assert_eq!(breaker.last_change(), Some(at(290)));
    }

    use Outcome::{Failure, Success};
    use Step::{Abandon, Admit, Report};

    #[test]
    fn opens_after_repeated_failures_probes_once_and_closes() {
        check(&[
            (Admit(0, "a", "go"), "closed(0)"),
            (Admit(0, "b", "go"), "closed(0)"),
            (Admit(0, "c", "go"), "closed(0)"),
            (Report(1, "a", Failure), "closed(1)"),
            (Report(1, "b", Failure), "closed(2)"),
            (Report(2, "c", Failure), "open until 12"),
            (Admit(5, "d", "refused until 12"), "open until 12"),
            (Admit(12, "probe", "probe"), "half-open"),
            // Exactly one probe: everyone else waits for it.
            (Admit(12, "e", "refused until 12"), "half-open"),
            (Admit(13, "f", "refused until 13"), "half-open"),
            (Report(14, "probe", Success), "closed(0)"),
            (Admit(14, "g", "go"), "closed(0)"),
        ]);
    }

    #[test]
    fn a_failed_probe_opens_again() {
        check(&[
            (Admit(0, "a", "go"), "closed(0)"),
            (Report(0, "a", Failure), "closed(1)"),
            (Admit(0, "b", "go"), "closed(1)"),
            (Report(0, "b", Failure), "closed(2)"),
            (Admit(0, "c", "go"), "closed(2)"),
            (Report(0, "c", Failure), "open until 10"),
            (Admit(10, "probe", "probe"), "half-open"),
            (Report(11, "probe", Failure), "open until 21"),
            (Admit(20, "d", "refused until 21"), "open until 21"),
            (Admit(21, "probe2", "probe"), "half-open"),
            (Report(22, "probe2", Success), "closed(0)"),
        ]);
    }

    #[test]
    fn a_success_resets_the_count() {
        check(&[
            (Admit(0, "a", "go"), "closed(0)"),
            (Report(0, "a", Failure), "closed(1)"),
            (Report(0, "a", Failure), "closed(2)"),
            (Report(0, "a", Success), "closed(0)"),
            (Report(0, "a", Failure), "closed(1)"),
        ]);
    }

    #[test]
    fn stale_tickets_do_not_count() {
        check(&[
            (Admit(0, "slow", "go"), "closed(0)"),
            (Admit(0, "a", "go"), "closed(0)"),
            (Report(0, "a", Failure), "closed(1)"),
            (Report(0, "a", Failure), "closed(2)"),
            (Report(0, "a", Failure), "open until 10"),
            // A success from before the outage does not close it...
            (Report(3, "slow", Success), "open until 10"),
            (Admit(10, "probe", "probe"), "half-open"),
            // ...nor decide the probe's half-open state.
            (Report(10, "slow", Failure), "half-open"),
            (Report(10, "a", Success), "half-open"),
            (Report(11, "probe", Success), "closed(0)"),
            // After closing, the probe's generation is over too.
            (Report(12, "probe", Failure), "closed(0)"),
        ]);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        check(&[
            (Admit(0, "a", "go"), "closed(0)"),
            (Report(0, "a", Failure), "closed(1)"),
            (Report(0, "a", Failure), "closed(2)"),
            (Report(0, "a", Failure), "open until 10"),
            (Admit(10, "probe", "probe"), "half-open"),
            (Abandon(11, "probe"), "open until 11"),
            (Admit(11, "next", "probe"), "half-open"),
            (Abandon(11, "a"), "half-open"),
            // The abandoned probe reporting late does not decide.
            (Report(12, "probe", Failure), "half-open"),
            (Report(12, "next", Success), "closed(0)"),
        ]);
    }
}
