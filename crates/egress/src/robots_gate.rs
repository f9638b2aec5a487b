//! robots.txt as a worker asks it: "may I fetch this URL?", answered from
//! a cache of parsed files, fetching a site's `/robots.txt` through the
//! guard the first time (and again when its answer runs out).
//!
//! - One fetch per origin at a time: jobs for a site whose file is being
//!   fetched wait for that fetch instead of starting their own.
//! - The fetch sends Accord's user agent, follows at most
//!   [`MAX_ROBOTS_REDIRECTS`] redirects (each checked by the guard), reads at
//!   most [`MAX_ROBOTS_BYTES`] and gives up after a timeout; what it got is
//!   classified by [`RobotsFetch`] and parsed off the async threads.
//! - A robots.txt the guard refuses (the site is not public, or does not
//!   resolve) gets no answer of its own: the page's fetch is refused by the
//!   same guard with its one message, so robots.txt never tells a user
//!   more about internal names than the guard does.
//!
//! Deliberately not here: sharing answers between workers (each worker
//! keeps its own cache) and spacing requests by `Crawl-delay` (the answer
//! carries the gap; the politeness limiter applies it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_model::Clock;
use reqwest::header::{HeaderValue, USER_AGENT};
use url::Url;

use crate::guard::Guard;
use crate::http_client::{find_refusal, redirect_policy, GuardedResolve, Refusal};
use crate::robots::{
    robots_origin, CacheAnswer, RobotsCache, RobotsConfig, RobotsDecision, RobotsFetch,
    RobotsRules, MAX_ROBOTS_BYTES, MAX_ROBOTS_REDIRECTS,
};

/// Answers kept before stale ones are dropped (and, if all are fresh, all).
const MAX_SITES: usize = 10_000;

/// How the gate fetches.
#[derive(Debug, Clone)]
pub struct RobotsGateConfig {
    pub robots: RobotsConfig,
    /// Sent when fetching robots.txt: the same user agent the engines send.
    pub user_agent: String,
    /// Longest a whole fetch (connect, redirects, body) may take.
    pub timeout: Duration,
}

/// Why the gate could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RobotsGateError {
    #[error("invalid user agent {0:?}: not a valid HTTP header value")]
    UserAgent(String),
    #[error("could not build the http client for robots.txt")]
    Client(#[source] reqwest::Error),
}

/// The worker's robots.txt answers. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct RobotsGate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    guard: Guard,
    user_agent: HeaderValue,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    /// A plain cache: answers by origin.
    cache: Mutex<RobotsCache>,
    /// Origins whose robots.txt is being fetched, so that only one fetch
    /// per origin runs at a time.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RobotsGate {
    pub fn new(
        config: RobotsGateConfig,
        guard: Guard,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RobotsGateError> {
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| RobotsGateError::UserAgent(config.user_agent.clone()))?;
        let client = reqwest::Client::builder()
            // A proxy would connect on our behalf to addresses the guard never sees.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolve::new(guard.clone())))
            .redirect(redirect_policy(guard.clone(), MAX_ROBOTS_REDIRECTS))
            .build()
            .map_err(RobotsGateError::Client)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                guard,
                user_agent,
                timeout: config.timeout,
                clock,
                cache: Mutex::new(RobotsCache::new(config.robots)),
                fetching: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether `url` may be fetched, fetching its site's robots.txt first
    /// when no fresh answer is known.
    pub async fn check(&self, url: &Url) -> RobotsDecision {
        let robots = match self.cached(url) {
            CacheAnswer::Known(decision) => return decision,
            CacheAnswer::FetchFirst(robots) => robots,
        };
        let origin = robots_origin(url);
        let lock = self.fetch_lock(&origin);
        let _fetching = lock.lock().await;
        // Another job may have fetched it while this one waited.
        if let CacheAnswer::Known(decision) = self.cached(url) {
            return decision;
        }
        let decision = match self.fetch(&robots).await {
            Some(fetch) => self.store(url, fetch).await,
            // The guard refused robots.txt: it refuses the page the same way.
            None => RobotsDecision::Allowed { min_gap: None },
        };
        self.lock_fetching().remove(&origin);
        decision
    }

    /// Sites with an answer in the cache.
    pub fn len(&self) -> usize {
        self.lock_cache().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cached(&self, url: &Url) -> CacheAnswer {
        let now = self.inner.clock.now();
        self.lock_cache().decide(url, now)
    }

    fn fetch_lock(&self, origin: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_fetching()
            .entry(origin.to_owned())
            .or_default()
            .clone()
    }

    /// Parses what a fetch gave (off the async threads: a large file costs
    /// CPU), keeps it and answers for `url`.
    async fn store(&self, url: &Url, fetch: RobotsFetch) -> RobotsDecision {
        let now = self.inner.clock.now();
        let config = self.lock_cache().config().clone();
        let parsed =
            tokio::task::spawn_blocking(move || RobotsRules::from_fetch(fetch, &config, now)).await;
        let rules = match parsed {
            Ok(rules) => rules,
            // Parsing panicked: no rules can be told from the file.
            Err(err) => {
                tracing::warn!(error = %err, "parsing a robots.txt failed");
                let config = self.lock_cache().config().clone();
                RobotsRules::from_fetch(RobotsFetch::Unavailable(String::new()), &config, now)
            }
        };
        let decision = rules.decide(url);
        let mut cache = self.lock_cache();
        if cache.len() >= MAX_SITES {
            cache.prune(now);
            if cache.len() >= MAX_SITES {
                cache.clear();
            }
        }
        cache.insert(url, rules);
        decision
    }

    /// Fetches `robots`: `None` when the guard refused it.
    async fn fetch(&self, robots: &Url) -> Option<RobotsFetch> {
        let inner = &self.inner;
        if inner.guard.check_url(robots).is_err() {
            return None;
        }
        let fetch = async {
            let mut response = inner
                .client
                .get(robots.clone())
                .header(USER_AGENT, inner.user_agent.clone())
                .send()
                .await?;
            if let Err(blocked) = inner
                .guard
                .check_peer(response.url(), response.remote_addr())
            {
                return Ok(Err(blocked));
            }
            let status = response.status().as_u16();
            let mut body = Vec::new();
            // Read past the cap by at most one chunk, then stop: the parser
            // cuts at the last whole line within the cap.
            while body.len() <= MAX_ROBOTS_BYTES {
                match response.chunk().await? {
                    Some(chunk) => body.extend_from_slice(&chunk),
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>(Ok(RobotsFetch::from_response(status, body)))
        };
        match tokio::time::timeout(inner.timeout, fetch).await {
            Err(_) => Some(RobotsFetch::failed(format_args!(
                "timed out after {} s",
                inner.timeout.as_secs()
            ))),
            Ok(Ok(Ok(fetched))) => Some(fetched),
            Ok(Ok(Err(_blocked))) => None,
            Ok(Err(err)) => match find_refusal(&err) {
                Some(Refusal::Blocked(_) | Refusal::Denied(_)) => None,
                Some(Refusal::TooManyRedirects(_)) => Some(RobotsFetch::too_many_redirects()),
                None => Some(RobotsFetch::failed(describe(&err))),
            },
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, RobotsCache> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_fetching(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.inner
            .fetching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A fetch error in words, without the URL (the caller names the site).
fn describe(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    }
}
