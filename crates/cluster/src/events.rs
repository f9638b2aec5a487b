//! [`EventBus`]: job-state notices for the clients watching jobs, on every
//! replica. A notice goes to this process's subscribers at once and, when
//! Redis is configured, out on a pub/sub channel; a background task
//! re-emits the other replicas' notices here.
//!
//! Notices are hints, never the record: the database's job events are. A
//! notice lost while Redis restarts, or dropped because a subscriber lagged,
//! costs a watcher only latency (it reads the event log again). So this
//! module never retries a notice and never blocks a publisher.

use std::sync::Arc;
use std::time::Duration;

use accord_model::{JobId, JobState};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tracing::debug;

use crate::config::{PROBE_INTERVAL, RECONNECT_BACKOFF, REQUEST_TIMEOUT};
use crate::health::Part;
use crate::link::{CommandError, Link, RedisHandle};

/// The channel's name after the key prefix. The wire format's version is
/// part of it: a replica that speaks another version is not heard (and
/// hears nothing it could misread) instead of failing to parse.
const CHANNEL: &str = "job-events:v1";
/// Notices buffered per local subscriber before the slowest one lags.
const LOCAL_CAPACITY: usize = 1_024;
/// Notices waiting to be published before new ones are dropped.
const OUTBOX_CAPACITY: usize = 1_024;
/// Opening the pub/sub connection and subscribing gives up after this long.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A job changed state. Only a hint, keyed by job id: readers look the
/// job's events up in the database, scoped by their own workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobNotice {
    pub job_id: JobId,
    pub state: JobState,
}

/// A notice on the Redis channel (format version 1, see [`CHANNEL`]).
#[derive(Debug, Serialize, Deserialize)]
struct WireNotice {
    /// The publishing process, so it can skip its own notices.
    origin: String,
    job_id: JobId,
    state: JobState,
}

/// Cheap to clone; clones publish to and subscribe on the same bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    local: broadcast::Sender<JobNotice>,
    /// To the publisher task; `None` without Redis.
    outbox: Option<mpsc::Sender<JobNotice>>,
    /// Keeps the background tasks running while the bus is in use.
    _redis: Option<RedisHandle>,
}

impl EventBus {
    /// A bus that only reaches this process's subscribers.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                local,
                outbox: None,
                _redis: None,
            }),
        }
    }

    /// A bus shared through Redis. Starts the publisher and subscriber
    /// tasks; the receiver fires after the first subscription attempt,
    /// whatever its outcome.
    pub(crate) fn with_redis(redis: RedisHandle, origin: String) -> (Self, oneshot::Receiver<()>) {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        let (first_attempt, first_attempt_done) = oneshot::channel();
        redis
            .background
            .spawn(publish_loop(redis.link.clone(), origin.clone(), queued));
        redis.background.spawn(subscribe_loop(
            redis.link.clone(),
            origin,
            local.clone(),
            first_attempt,
        ));
        let bus = Self {
            inner: Arc::new(Inner {
                local,
                outbox: Some(outbox),
                _redis: Some(redis),
            }),
        };
        (bus, first_attempt_done)
    }

    /// Tells this process's subscribers at once and the other replicas'
    /// soon, best effort. Never blocks and never fails.
    pub fn publish(&self, notice: JobNotice) {
        // No subscriber here is fine: the notice may still matter elsewhere.
        let _ = self.inner.local.send(notice);
        if let Some(outbox) = &self.inner.outbox {
            if outbox.try_send(notice).is_err() {
                debug!(job_id = %notice.job_id, "job notice not published: the outbox is full or closed");
            }
        }
    }

    /// Every notice published from now on, on any replica. A receiver that
    /// falls more than 1024 notices behind gets `RecvError::Lagged` and
    /// should read the event log instead.
    pub fn subscribe(&self) -> broadcast::Receiver<JobNotice> {
        self.inner.local.subscribe()
    }
}

/// Publishes queued notices one by one, dropping them while Redis is down.
async fn publish_loop(link: Arc<Link>, origin: String, mut queued: mpsc::Receiver<JobNotice>) {
    let channel = link.key(CHANNEL);
    while let Some(notice) = queued.recv().await {
        if !link.health.commands_up() {
            continue;
        }
        let wire = WireNotice {
            origin: origin.clone(),
            job_id: notice.job_id,
            state: notice.state,
        };
        let payload = match serde_json::to_vec(&wire) {
            Ok(payload) => payload,
            Err(err) => {
                debug!(error = %err, "job notice not published: it does not serialize");
                continue;
            }
        };
        let mut commands = link.commands();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&channel).arg(payload);
        let publish = async move { publish.query_async::<i64>(&mut commands).await };
        // A failure is recorded in the health by `run`; the notice is lost,
        // which is fine for a hint.
        let _ = link.run(publish).await;
    }
}

/// Holds the subscription, re-emits other replicas' notices locally, and
/// subscribes again with backoff whenever the connection is lost.
async fn subscribe_loop(
    link: Arc<Link>,
    origin: String,
    local: broadcast::Sender<JobNotice>,
    first_attempt: oneshot::Sender<()>,
) {
    let channel = link.key(CHANNEL);
    // `connect` waits for this, so it is sent once the health is recorded.
    let mut first_attempt = Some(first_attempt);
    let mut backoff = RECONNECT_BACKOFF;
    loop {
        let lost = match subscribe(&link.client, &channel).await {
            Ok(pubsub) => {
                link.health.record_up(Part::Events);
                backoff.reset();
                first_attempt_done(&mut first_attempt);
                relay_until_lost(pubsub, &origin, &local).await
            }
            Err(err) => err,
        };
        link.health.record_down(Part::Events, &lost);
        first_attempt_done(&mut first_attempt);
        tokio::time::sleep(backoff.next_delay(rand::random())).await;
    }
}

fn first_attempt_done(first_attempt: &mut Option<oneshot::Sender<()>>) {
    if let Some(done) = first_attempt.take() {
        // `connect` may have given up waiting; nothing to tell then.
        let _ = done.send(());
    }
}

/// Relays notices until the subscription's connection closes or stops
/// answering. A `PING` every [`PROBE_INTERVAL`] finds a connection that died
/// without closing (a network partition), which would otherwise go quiet
/// forever.
async fn relay_until_lost(
    pubsub: redis::aio::PubSub,
    origin: &str,
    local: &broadcast::Sender<JobNotice>,
) -> CommandError {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PROBE_INTERVAL);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick would be immediate; the subscription just answered.
    ping.reset();
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => relay(message.get_payload_bytes(), origin, local),
                None => return CommandError::Closed,
            },
            _ = ping.tick() => {
                match tokio::time::timeout(REQUEST_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return CommandError::Redis(err),
                    Err(_) => return CommandError::TimedOut(REQUEST_TIMEOUT),
                }
            }
        }
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, CommandError> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, attempt).await {
        Ok(outcome) => Ok(outcome?),
        Err(_) => Err(CommandError::TimedOut(SUBSCRIBE_TIMEOUT)),
    }
}

/// Re-emits another replica's notice to this process's subscribers.
fn relay(payload: &[u8], origin: &str, local: &broadcast::Sender<JobNotice>) {
    match serde_json::from_slice::<WireNotice>(payload) {
        // Our own notice, already delivered locally when it was published.
        Ok(wire) if wire.origin == origin => {}
        Ok(wire) => {
            let _ = local.send(JobNotice {
                job_id: wire.job_id,
                state: wire.state,
            });
        }
        Err(err) => debug!(error = %err, "ignoring an unreadable job notice"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> JobNotice {
        JobNotice {
            job_id: JobId::new(),
            state: JobState::Running,
        }
    }

    #[test]
    fn the_wire_format_is_stable() {
        let job_id = JobId::new();
        let wire = WireNotice {
            origin: "api-1/00000000000000ff".to_owned(),
            job_id,
            state: JobState::Succeeded,
        };
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            serde_json::json!({
                "origin": "api-1/00000000000000ff",
                "job_id": job_id.to_string(),
                "state": "succeeded",
            })
        );
    }

    #[test]
    fn relay_skips_own_and_unreadable_notices() {
        let (local, mut received) = broadcast::channel(8);
        let mine = notice();
        let theirs = notice();
        let encode = |origin: &str, notice: JobNotice| {
            serde_json::to_vec(&WireNotice {
                origin: origin.to_owned(),
                job_id: notice.job_id,
                state: notice.state,
            })
            .unwrap()
        };
        relay(&encode("me", mine), "me", &local);
        relay(b"{\"not\": \"a notice\"}", "me", &local);
        relay(&encode("other", theirs), "me", &local);
        assert_eq!(received.try_recv().unwrap(), theirs);
        assert!(received.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_local_bus_delivers_to_every_subscriber_once() {
        let bus = EventBus::local();
        let mut first = bus.subscribe();
        let mut second = bus.clone().subscribe();
        let sent = notice();
        bus.publish(sent);
        assert_eq!(first.try_recv().unwrap(), sent);
        assert_eq!(second.try_recv().unwrap(), sent);
        assert!(first.try_recv().is_err());
    }
}
