//! [`DomainGate`]: per-domain politeness (rate, concurrency cap, least gap,
//! `Retry-After` pauses, circuit breaker) shared by every replica through
//! Redis, kept in-process when Redis is not configured or not answering.
//!
//! The rules are [`accord_egress::DomainState`], pure Rust. On Redis a
//! domain's state is one JSON value: read it with the server's clock
//! (`GET` + `TIME`, so replicas with skewed clocks agree), apply the rule,
//! write it back with a compare-and-set script (`politeness.lua`), and read
//! again when another replica got there first. While Redis is known to be
//! down, answers come from this process's own states, so each replica then
//! enforces the limits on its own; a single slow or failed call is answered
//! "wait a moment", never from the local state, which would ignore the
//! permits other replicas hold.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use accord_egress::{DomainLimits, DomainState, Finish, PoliteDecision, WaitReason};

use crate::link::{CommandError, Link, RedisHandle};

/// A domain's state outlives its last use by this long at most (a pause or
/// an open breaker ends well before).
const KEY_TTL_MS: u64 = 2 * 60 * 60 * 1000;
/// Compare-and-set rounds before an acquire gives up and asks the caller to
/// wait a moment (only under heavy contention on one domain).
const MAX_ROUNDS: usize = 16;
/// How long a caller that lost every round waits before asking again.
const CONTENDED_WAIT_MS: i64 = 20;
/// Tries to end a permit on Redis.
const FINISH_TRIES: usize = 3;

static COMPARE_AND_SET: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("politeness.lua")));

/// Cheap to clone; clones share the states.
#[derive(Debug, Clone)]
pub struct DomainGate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    local: Mutex<HashMap<String, DomainState>>,
    redis: Option<RedisHandle>,
}

/// What the gate knows about one domain right now.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainView {
    pub state: DomainState,
    pub now_ms: i64,
    /// Whether the answer came from Redis (shared) or this process.
    pub shared: bool,
}

impl DomainGate {
    /// A gate that only ever counts in this process.
    pub fn local() -> Self {
        Self::new(None)
    }

    pub(crate) fn new(redis: Option<RedisHandle>) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: Mutex::new(HashMap::new()),
                redis,
            }),
        }
    }

    /// Asks to start one request to `domain`; on `Go` the permit `id` holds
    /// a slot for at most `ttl_ms` (a worker that dies frees it then).
    /// Never fails: while Redis is down the answer comes from this process.
    pub async fn acquire(
        &self,
        domain: &str,
        limits: &DomainLimits,
        id: &str,
        ttl_ms: u64,
    ) -> PoliteDecision {
        let ttl = i64::try_from(ttl_ms).unwrap_or(i64::MAX);
        let apply = |state: &mut DomainState, now: i64| {
            state.acquire(limits, id, now.saturating_add(ttl), now)
        };
        if let Some(link) = self.shared_link() {
            return match update(link, domain, limits, &apply).await {
                Ok(Some(decision)) => decision,
                // Lost every round to other replicas, or Redis was slow
                // this once: ask again shortly. Answering from this
                // process's own state now would ignore every permit the
                // other replicas hold (only a known outage does that).
                Ok(None) | Err(_) => PoliteDecision::Wait {
                    until_ms: chrono::Utc::now().timestamp_millis() + CONTENDED_WAIT_MS,
                    reason: WaitReason::Concurrency,
                },
            };
        }
        self.update_local(domain, limits, apply)
    }

    /// Ends permit `id` of `domain`, pausing the domain for `pause_ms` when
    /// the site asked for it.
    pub async fn finish(
        &self,
        domain: &str,
        limits: &DomainLimits,
        id: &str,
        finish: Finish,
        pause_ms: Option<u64>,
    ) {
        let apply = |state: &mut DomainState, now: i64| state.finish(id, finish, pause_ms, now);
        if let Some(link) = self.shared_link() {
            // A permit that is never ended holds its slot until it expires:
            // worth a few tries. After them it expires by itself (late,
            // never lost).
            for _ in 0..FINISH_TRIES {
                if let Ok(Some(())) = update(link, domain, limits, &apply).await {
                    return;
                }
            }
            tracing::warn!(
                domain,
                "could not end a politeness permit in redis; it expires by itself"
            );
            return;
        }
        self.update_local(domain, limits, apply);
    }

    /// The domain's state as the gate sees it now, if it has one.
    pub async fn view(&self, domain: &str) -> Option<DomainView> {
        if let Some(link) = self.shared_link() {
            if let Ok((stored, now_ms)) = read(link, &state_key(link, domain)).await {
                let state = stored.and_then(|json| serde_json::from_str(&json).ok())?;
                return Some(DomainView {
                    state,
                    now_ms,
                    shared: true,
                });
            }
        }
        let states = self.inner.local.lock().unwrap_or_else(|e| e.into_inner());
        states.get(domain).map(|state| DomainView {
            state: state.clone(),
            now_ms: chrono::Utc::now().timestamp_millis(),
            shared: false,
        })
    }

    fn shared_link(&self) -> Option<&Link> {
        self.inner.redis.as_ref()?.usable_link()
    }

    fn update_local<T>(
        &self,
        domain: &str,
        limits: &DomainLimits,
        apply: impl FnOnce(&mut DomainState, i64) -> T,
    ) -> T {
        let now = chrono::Utc::now().timestamp_millis();
        let mut states = self.inner.local.lock().unwrap_or_else(|e| e.into_inner());
        let state = states
            .entry(domain.to_owned())
            .or_insert_with(|| DomainState::new(limits, now));
        let answer = apply(state, now);
        if state.is_idle(limits, now) {
            states.remove(domain);
        }
        answer
    }
}

/// Reads, applies and writes back one domain's state on Redis; `None` when
/// every round lost to another replica.
async fn update<T>(
    link: &Link,
    domain: &str,
    limits: &DomainLimits,
    apply: &impl Fn(&mut DomainState, i64) -> T,
) -> Result<Option<T>, CommandError> {
    let key = state_key(link, domain);
    for _ in 0..MAX_ROUNDS {
        let (stored, now) = read(link, &key).await?;
        let mut state = stored
            .as_deref()
            .and_then(|json| serde_json::from_str::<DomainState>(json).ok())
            .unwrap_or_else(|| DomainState::new(limits, now));
        let answer = apply(&mut state, now);
        let next = if state.is_idle(limits, now) {
            String::new()
        } else {
            serde_json::to_string(&state).unwrap_or_default()
        };
        let mut commands = link.commands();
        let mut invocation = COMPARE_AND_SET.key(&key);
        invocation
            .arg(stored.unwrap_or_default())
            .arg(next)
            .arg(KEY_TTL_MS);
        let swapped: u8 = link.run(invocation.invoke_async(&mut commands)).await?;
        if swapped == 1 {
            return Ok(Some(answer));
        }
    }
    Ok(None)
}

/// The state stored at `key` (if any) and the Redis server's clock in
/// milliseconds.
async fn read(link: &Link, key: &str) -> Result<(Option<String>, i64), CommandError> {
    let mut commands = link.commands();
    let mut pipe = redis::pipe();
    pipe.get(key).cmd("TIME");
    let (stored, (seconds, micros)): (Option<String>, (i64, i64)) =
        link.run(pipe.query_async(&mut commands)).await?;
    Ok((stored, seconds * 1000 + micros / 1000))
}

fn state_key(link: &Link, domain: &str) -> String {
    link.key(&format!("politeness:{domain}"))
}
