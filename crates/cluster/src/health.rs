//! Whether Redis is answering, as seen by this replica: the command
//! connection (rate limits, `PUBLISH`) and the pub/sub subscription each
//! report their outcomes here, and [`RedisStatus`] is the combination.
//!
//! Owns the outage log lines: one `warn!` when an outage starts and one
//! `info!` when it ends, however many requests fail in between. Does not
//! talk to Redis itself (the prober and the event tasks do).

use tokio::sync::watch;
use tracing::{info, warn};

/// Redis as `/ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisStatus {
    /// No Redis URL was given: everything is in-process, by design.
    NotConfigured,
    /// Commands and the job-event subscription both work.
    Up,
    /// Redis is configured but does not answer (or the subscription is not
    /// established yet): rate limits are counted per replica and job events
    /// stay on the replica that published them.
    Down { error: String },
}

/// The two ways this replica uses Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The multiplexed connection: rate-limit scripts, `PUBLISH`, `PING`.
    Commands,
    /// The dedicated pub/sub connection for job events.
    Events,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Commands => "commands",
            Part::Events => "job-event subscription",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PartState {
    /// No outcome yet.
    Starting,
    Up,
    Down(String),
}

#[derive(Debug, Clone)]
pub(crate) struct HealthState {
    commands: PartState,
    events: PartState,
    /// An outage was logged and its end was not yet.
    in_outage: bool,
}

impl HealthState {
    pub(crate) fn status(&self) -> RedisStatus {
        match (&self.commands, &self.events) {
            (PartState::Up, PartState::Up) => RedisStatus::Up,
            (PartState::Down(error), _) | (_, PartState::Down(error)) => RedisStatus::Down {
                error: error.clone(),
            },
            _ => RedisStatus::Down {
                error: "not connected yet".to_owned(),
            },
        }
    }

    pub(crate) fn commands_up(&self) -> bool {
        self.commands == PartState::Up
    }

    fn part_mut(&mut self, part: Part) -> &mut PartState {
        match part {
            Part::Commands => &mut self.commands,
            Part::Events => &mut self.events,
        }
    }
}

/// What a [`Health::record`] call changed, to be logged outside the lock.
enum Transition {
    OutageStarted { part: Part, error: String },
    OutageEnded,
}

/// The shared health of the Redis link. Every clone sees the same state.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    state: watch::Sender<HealthState>,
}

impl Health {
    pub(crate) fn new() -> Self {
        let (state, _) = watch::channel(HealthState {
            commands: PartState::Starting,
            events: PartState::Starting,
            in_outage: false,
        });
        Self { state }
    }

    pub(crate) fn status(&self) -> RedisStatus {
        self.state.borrow().status()
    }

    /// Whether rate limits should go to Redis: the last command answered.
    pub(crate) fn commands_up(&self) -> bool {
        self.state.borrow().commands_up()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<HealthState> {
        self.state.subscribe()
    }

    pub(crate) fn record_up(&self, part: Part) {
        self.record(part, PartState::Up);
    }

    pub(crate) fn record_down(&self, part: Part, error: &dyn std::fmt::Display) {
        self.record(part, PartState::Down(error.to_string()));
    }

    fn record(&self, part: Part, outcome: PartState) {
        let mut transition = None;
        self.state.send_if_modified(|state| {
            let slot = state.part_mut(part);
            // The first error of an outage names its cause; later ones are
            // usually symptoms ("connection refused" after "broken pipe").
            if *slot == outcome
                || matches!((&*slot, &outcome), (PartState::Down(_), PartState::Down(_)))
            {
                return false;
            }
            *slot = outcome;
            match state.status() {
                RedisStatus::Down { error } if !state.in_outage && error_is_real(state) => {
                    state.in_outage = true;
                    transition = Some(Transition::OutageStarted { part, error });
                }
                RedisStatus::Up if state.in_outage => {
                    state.in_outage = false;
                    transition = Some(Transition::OutageEnded);
                }
                _ => {}
            }
            true
        });
        match transition {
            Some(Transition::OutageStarted { part, error }) => warn!(
                part = part.name(),
                error = %error,
                "redis is not answering: rate limits are counted per replica and job events \
                 stay on this replica until it answers again"
            ),
            Some(Transition::OutageEnded) => {
                info!("redis answers again: rate limits and job events are shared again");
            }
            None => {}
        }
    }
}

/// Whether some part actually failed (rather than not having answered yet).
fn error_is_real(state: &HealthState) -> bool {
    matches!(state.commands, PartState::Down(_)) || matches!(state.events, PartState::Down(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(error: &str) -> RedisStatus {
        RedisStatus::Down {
            error: error.to_owned(),
        }
    }

    #[test]
    fn up_only_when_both_parts_answered() {
        let health = Health::new();
        assert_eq!(health.status(), down("not connected yet"));
        health.record_up(Part::Commands);
        assert_eq!(health.status(), down("not connected yet"));
        assert!(health.commands_up());
        health.record_up(Part::Events);
        assert_eq!(health.status(), RedisStatus::Up);
    }

    #[test]
    fn an_outage_keeps_its_first_error_until_it_ends() {
        let health = Health::new();
        health.record_up(Part::Commands);
        health.record_up(Part::Events);
        health.record_down(Part::Commands, &"broken pipe");
        health.record_down(Part::Commands, &"connection refused");
        health.record_down(Part::Events, &"connection refused");
        assert_eq!(health.status(), down("broken pipe"));
        assert!(!health.commands_up());
        health.record_up(Part::Commands);
        assert_eq!(health.status(), down("connection refused"));
        health.record_up(Part::Events);
        assert_eq!(health.status(), RedisStatus::Up);
        assert!(!health.state.borrow().in_outage);
    }

    /// The log lines written while `run` runs.
    fn logs_of(run: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn count(logs: &str, level: &str) -> usize {
        logs.lines().filter(|line| line.contains(level)).count()
    }

    #[test]
    fn one_warning_per_outage_however_many_failures() {
        let logs = logs_of(|| {
            let health = Health::new();
            health.record_up(Part::Commands);
            health.record_up(Part::Events);
            for _ in 0..100 {
                health.record_down(Part::Commands, &"connection refused");
            }
            health.record_down(Part::Events, &"the subscription connection closed");
            health.record_up(Part::Commands);
            health.record_up(Part::Events);
            for _ in 0..10 {
                health.record_down(Part::Events, &"the subscription connection closed");
            }
        });
        assert_eq!(count(&logs, "WARN"), 2, "{logs}");
        assert!(logs.contains("error=connection refused"), "{logs}");
        assert_eq!(count(&logs, "INFO"), 1, "{logs}");
    }

    #[test]
    fn a_redis_down_at_start_is_an_outage() {
        let logs = logs_of(|| {
            let health = Health::new();
            health.record_down(Part::Commands, &"connection refused");
            health.record_down(Part::Events, &"connection refused");
            health.record_up(Part::Commands);
            health.record_up(Part::Events);
        });
        assert_eq!(count(&logs, "WARN"), 1, "{logs}");
        assert_eq!(count(&logs, "INFO"), 1, "{logs}");
        // A clean start is not worth a line here (the cluster logs one).
        assert_eq!(
            logs_of(|| {
                let health = Health::new();
                health.record_up(Part::Commands);
                health.record_up(Part::Events);
            }),
            ""
        );
    }

    #[test]
    fn changes_wake_watchers_and_repeats_do_not() {
        let health = Health::new();
        let mut watcher = health.subscribe();
        watcher.mark_unchanged();
        health.record_up(Part::Commands);
        assert!(watcher.has_changed().unwrap());
        watcher.mark_unchanged();
        health.record_up(Part::Commands);
        assert!(!watcher.has_changed().unwrap());
    }
}
