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
//! - Shared between workers when the gate is given a [`RobotsShare`] (the
//!   worker gives it the control plane): before fetching, the gate asks
//!   the share for an answer another worker already fetched; when there
//!   is none it holds the share's claim on the origin, fetches, and
//!   publishes what it got, while other workers asking meanwhile wait for
//!   it. So a site's robots.txt is fetched once for all workers in the
//!   common case. A share that does not answer, or a claim that is not
//!   published in time, never blocks a job: the gate then fetches the file
//!   itself, as it does without a share.
//!
//! Deliberately not here: where shared answers are kept (the share's
//! business) and spacing requests by `Crawl-delay` (the answer carries the
//! gap; the politeness limiter applies it).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord_model::{Clock, RobotsLookupResponse, RobotsRecord};
use reqwest::header::{HeaderValue, USER_AGENT};
use url::Url;

use crate::guard::Guard;
use crate::http_client::{find_refusal, redirect_policy, GuardedResolve, Refusal};
use crate::robots::{
    robots_origin, CacheAnswer, RobotsCache, RobotsConfig, RobotsDecision, RobotsFetch,
    RobotsRules, MAX_ROBOTS_BYTES, MAX_ROBOTS_REDIRECTS,
};

/// How much longer than its own fetch timeout a gate waits for another
/// worker's fetch of the same file before fetching it itself.
const SHARE_WAIT_SLACK: Duration = Duration::from_secs(5);
/// Bounds on how long to wait before asking the share again.
const SHARE_POLL_MIN: Duration = Duration::from_millis(10);
const SHARE_POLL_MAX: Duration = Duration::from_secs(1);

/// Where workers share robots.txt answers (the control plane, for a
/// worker): see [`RobotsGate::shared_through`].
#[async_trait::async_trait]
pub trait RobotsShare: Send + Sync + fmt::Debug {
    /// A fresh answer for `origin`, the claim to fetch it, or how long to
    /// wait for the worker fetching it.
    async fn lookup(&self, origin: &str) -> Result<RobotsLookupResponse, ShareError>;

    /// Keeps what fetching an origin's robots.txt gave, for every worker.
    async fn publish(&self, record: RobotsRecord) -> Result<(), ShareError>;
}

/// Why the share could not be asked (its own words, for the log).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ShareError(pub String);

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
    share: Option<Arc<dyn RobotsShare>>,
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
            share: None,
        })
    }

    /// The same gate (and cache), asking `share` for other workers'
    /// answers before fetching and publishing what it fetches.
    pub fn shared_through(self, share: Arc<dyn RobotsShare>) -> Self {
        Self {
            share: Some(share),
            ..self
        }
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
        let decision = match &self.share {
            Some(share) => self.ask_share(share.as_ref(), url, &robots, &origin).await,
            None => self.fetch_and_keep(url, &robots, &origin, None).await,
        };
        self.lock_fetching().remove(&origin);
        decision
    }

    /// Takes another worker's answer, or fetches and publishes it when the
    /// share gives this gate the claim, or waits for the worker fetching
    /// it (for a while; then fetches it itself).
    async fn ask_share(
        &self,
        share: &dyn RobotsShare,
        url: &Url,
        robots: &Url,
        origin: &str,
    ) -> RobotsDecision {
        // What the URL alone tells the guard refuses is never claimed: the
        // claim would only hold other workers back until it ran out.
        if self.inner.guard.check_url(robots).is_err() {
            return RobotsDecision::Allowed { min_gap: None };
        }
        let deadline = Instant::now() + self.inner.timeout + SHARE_WAIT_SLACK;
        loop {
            match share.lookup(origin).await {
                Ok(RobotsLookupResponse::Fresh { record }) => {
                    return self.keep(url, record).await;
                }
                Ok(RobotsLookupResponse::Fetch { .. }) => {
                    return self.fetch_and_keep(url, robots, origin, Some(share)).await;
                }
                Ok(RobotsLookupResponse::Wait { retry_in_ms }) if Instant::now() < deadline => {
                    let pause =
                        Duration::from_millis(retry_in_ms).clamp(SHARE_POLL_MIN, SHARE_POLL_MAX);
                    tokio::time::sleep(pause).await;
                }
                Ok(RobotsLookupResponse::Wait { .. }) => {
                    tracing::warn!(origin, "another worker's robots.txt fetch did not arrive in time; fetching it here");
                    return self.fetch_and_keep(url, robots, origin, Some(share)).await;
                }
                Err(err) => {
                    tracing::warn!(origin, error = %err, "could not ask for a shared robots.txt answer; fetching it here");
                    return self.fetch_and_keep(url, robots, origin, None).await;
                }
            }
        }
    }

    /// Fetches `robots`, publishes the answer to `share` (if any), keeps it
    /// and answers for `url`.
    async fn fetch_and_keep(
        &self,
        url: &Url,
        robots: &Url,
        origin: &str,
        share: Option<&dyn RobotsShare>,
    ) -> RobotsDecision {
        let Some(fetch) = self.fetch(robots).await else {
            // The guard refused robots.txt: it refuses the page the same
            // way. Nothing is kept or shared; a claim on it runs out.
            return RobotsDecision::Allowed { min_gap: None };
        };
        let now = self.inner.clock.now();
        let config = self.lock_cache().config().clone();
        let record = fetch.to_record(origin.to_owned(), &config, now);
        if let Some(share) = share {
            if let Err(err) = share.publish(record.clone()).await {
                tracing::warn!(origin, error = %err, "could not share a robots.txt answer; other workers fetch it themselves");
            }
        }
        self.keep(url, record).await
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

    /// Parses an answer (off the async threads: a large file costs CPU),
    /// keeps it and answers for `url`.
    async fn keep(&self, url: &Url, record: RobotsRecord) -> RobotsDecision {
        let now = self.inner.clock.now();
        let config = self.lock_cache().config().clone();
        let parsed = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || RobotsRules::from_record(record, &config)).await
        };
        let rules = match parsed {
            Ok(rules) => rules,
            // Parsing panicked: no rules can be told from the file.
            Err(err) => {
                tracing::warn!(error = %err, "parsing a robots.txt failed");
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
