//! robots.txt (RFC 9309) as pure cache policy: what a fetch of
//! `/robots.txt` means, how long that answer holds, and whether a URL may be
//! fetched under it. Parsing is `texting_robots`'.
//!
//! The rules, from the RFC and the product's choices:
//! - 2xx: the file's rules for Accord's product token (or `*`), with
//!   `Crawl-delay` honoured as a minimum gap between requests; at most
//!   [`MAX_ROBOTS_BYTES`] (more than the RFC's 500 KiB minimum) are parsed,
//!   cut at the last whole line;
//! - 4xx (except 429), or more than [`MAX_ROBOTS_REDIRECTS`] redirects: the
//!   file is unavailable and everything is allowed;
//! - 5xx, 429, network errors and timeouts: the site is unreachable and
//!   nothing is allowed until a retry succeeds (retried sooner than the
//!   24 h a real answer is kept);
//! - a file that does not parse at all (binary garbage) has no rules, so
//!   everything is allowed.
//!
//! Deliberately no IO: the engine fetches `/robots.txt` through the guard
//! and hands the result here; sharing answers between workers is the
//! control plane's (a fetch travels there as a [`RobotsRecord`], see
//! [`RobotsFetch::to_record`] and [`RobotsRules::from_record`]). Parsing a large file costs CPU, so callers on the async
//! runtime run [`RobotsRules::from_fetch`] through `spawn_blocking`.

use std::collections::HashMap;
use std::fmt;

use accord_model::{RobotsRecord, RobotsStatus};
use chrono::{DateTime, TimeDelta, Utc};
use texting_robots::Robot;
use url::Url;

/// The most of a robots.txt that is read and parsed.
pub const MAX_ROBOTS_BYTES: usize = 512 * 1024;

/// Redirects followed when fetching robots.txt (RFC 9309 section 2.3.1.2).
pub const MAX_ROBOTS_REDIRECTS: usize = 5;

/// How robots.txt answers are read and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotsConfig {
    /// The product token matched against `User-agent` lines (`accord`).
    pub product_token: String,
    /// How long a fetched or unavailable answer holds.
    pub ttl: TimeDelta,
    /// How soon an unreachable site's robots.txt is tried again.
    pub retry_unreachable_after: TimeDelta,
    /// The longest `Crawl-delay` honoured; longer ones are cut to this.
    pub max_crawl_delay: TimeDelta,
}

impl RobotsConfig {
    pub fn new(product_token: impl Into<String>) -> Self {
        Self {
            product_token: product_token.into(),
            ttl: TimeDelta::hours(24),
            // A site coming back is seen within a minute (a smoke check
            // reports it recovered), at one robots.txt request a minute
            // while it is down.
            retry_unreachable_after: TimeDelta::minutes(1),
            max_crawl_delay: TimeDelta::seconds(60),
        }
    }
}

/// What fetching `/robots.txt` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotsFetch {
    /// A 2xx answer and its body (only the first [`MAX_ROBOTS_BYTES`] need
    /// to be read).
    Fetched(Vec<u8>),
    /// No rules apply: a 4xx answer or too many redirects.
    Unavailable(String),
    /// Nothing may be fetched: a 5xx or 429 answer, or no answer.
    Unreachable(String),
}

impl RobotsFetch {
    /// Classifies a final answer (after at most [`MAX_ROBOTS_REDIRECTS`]
    /// redirects).
    pub fn from_response(status: u16, body: Vec<u8>) -> Self {
        match status {
            200..=299 => Self::Fetched(body),
            429 => Self::Unreachable("robots.txt answered 429".to_owned()),
            300..=499 => Self::Unavailable(format!("robots.txt answered {status}")),
            _ => Self::Unreachable(format!("robots.txt answered {status}")),
        }
    }

    /// The fetch gave up after more than [`MAX_ROBOTS_REDIRECTS`] redirects.
    pub fn too_many_redirects() -> Self {
        Self::Unavailable(format!(
            "robots.txt redirected more than {MAX_ROBOTS_REDIRECTS} times"
        ))
    }

    /// The fetch failed before an answer (network error, timeout, refusal).
    pub fn failed(reason: impl fmt::Display) -> Self {
        Self::Unreachable(format!("robots.txt could not be fetched: {reason}"))
    }

    /// How long this answer holds: a day for a real answer (the file, or
    /// its absence), a minute for an unreachable site.
    pub fn lifetime(&self, config: &RobotsConfig) -> TimeDelta {
        match self {
            Self::Fetched(_) | Self::Unavailable(_) => config.ttl,
            Self::Unreachable(_) => config.retry_unreachable_after,
        }
    }

    /// The answer as shared with other workers: fetched at `fetched_at` for
    /// `origin`, the body cut at the last whole line within
    /// [`MAX_ROBOTS_BYTES`] (all that is ever parsed).
    pub fn to_record(
        &self,
        origin: String,
        config: &RobotsConfig,
        fetched_at: DateTime<Utc>,
    ) -> RobotsRecord {
        let (status, body, reason) = match self {
            Self::Fetched(body) => (
                RobotsStatus::Fetched,
                cut_at_line(body, MAX_ROBOTS_BYTES).to_vec(),
                String::new(),
            ),
            Self::Unavailable(reason) => (RobotsStatus::Unavailable, Vec::new(), reason.clone()),
            Self::Unreachable(reason) => (RobotsStatus::Unreachable, Vec::new(), reason.clone()),
        };
        RobotsRecord {
            origin,
            status,
            body,
            reason,
            fetched_at,
            expires_at: fetched_at + self.lifetime(config),
        }
    }

    /// A shared answer as the fetch it was.
    pub fn from_record(record: RobotsRecord) -> Self {
        match record.status {
            RobotsStatus::Fetched => Self::Fetched(record.body),
            RobotsStatus::Unavailable => Self::Unavailable(record.reason),
            RobotsStatus::Unreachable => Self::Unreachable(record.reason),
        }
    }
}

/// Why a URL may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disallowed {
    /// The site's rules say so.
    ByRules,
    /// robots.txt could not be fetched; nothing is allowed until it can.
    Unreachable(String),
}

impl fmt::Display for Disallowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ByRules => f.write_str("robots.txt disallows it"),
            Self::Unreachable(reason) => write!(f, "{reason}; nothing is fetched until it answers"),
        }
    }
}

/// Whether a URL may be fetched under a site's robots.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotsDecision {
    /// Allowed, no sooner than `min_gap` after the previous request to the
    /// site when the file sets a `Crawl-delay`.
    Allowed {
        min_gap: Option<TimeDelta>,
    },
    Disallowed(Disallowed),
}

#[derive(Debug)]
enum Verdict {
    AllowAll,
    DisallowAll(String),
    Rules(Robot),
}

/// One site's robots.txt answer, parsed, with its lifetime.
#[derive(Debug)]
pub struct RobotsRules {
    verdict: Verdict,
    crawl_delay: Option<TimeDelta>,
    expires_at: DateTime<Utc>,
}

impl RobotsRules {
    /// Turns a fetch into rules. CPU-bound for large files.
    pub fn from_fetch(fetch: RobotsFetch, config: &RobotsConfig, now: DateTime<Utc>) -> Self {
        let expires_at = now + fetch.lifetime(config);
        Self::parse(fetch, config, expires_at)
    }

    /// Turns an answer another worker shared into rules, holding until the
    /// record says (never longer than `config`'s lifetime from when it was
    /// fetched). CPU-bound for large files.
    pub fn from_record(record: RobotsRecord, config: &RobotsConfig) -> Self {
        let fetched_at = record.fetched_at;
        let expires_at = record.expires_at;
        let fetch = RobotsFetch::from_record(record);
        let expires_at = expires_at.min(fetched_at + fetch.lifetime(config));
        Self::parse(fetch, config, expires_at)
    }

    fn parse(fetch: RobotsFetch, config: &RobotsConfig, expires_at: DateTime<Utc>) -> Self {
        let verdict = match fetch {
            RobotsFetch::Fetched(body) => {
                let body = cut_at_line(&body, MAX_ROBOTS_BYTES);
                let agent = config.product_token.to_ascii_lowercase();
                match Robot::new(&agent, body) {
                    Ok(robot) => Verdict::Rules(robot),
                    // texting_robots gives up only on input it cannot read
                    // as lines at all: no rules can be told from it.
                    Err(_) => Verdict::AllowAll,
                }
            }
            RobotsFetch::Unavailable(_) => Verdict::AllowAll,
            RobotsFetch::Unreachable(reason) => Verdict::DisallowAll(reason),
        };
        let crawl_delay = match &verdict {
            Verdict::Rules(robot) => robot.delay.and_then(|seconds| {
                let millis = (f64::from(seconds) * 1000.0).round();
                // A negative, NaN or absurd delay is no delay.
                (millis.is_finite() && millis > 0.0)
                    .then(|| TimeDelta::milliseconds(millis.min(1e12) as i64))
                    .map(|delay| delay.min(config.max_crawl_delay))
            }),
            Verdict::AllowAll | Verdict::DisallowAll(_) => None,
        };
        Self {
            verdict,
            crawl_delay,
            expires_at,
        }
    }

    /// Whether the answer still holds at `now`.
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// Whether `url` (on this rules' site) may be fetched.
    pub fn decide(&self, url: &Url) -> RobotsDecision {
        let allowed = RobotsDecision::Allowed {
            min_gap: self.crawl_delay,
        };
        match &self.verdict {
            Verdict::AllowAll => allowed,
            Verdict::DisallowAll(reason) => {
                RobotsDecision::Disallowed(Disallowed::Unreachable(reason.clone()))
            }
            Verdict::Rules(robot) if robot.allowed(url.as_str()) => allowed,
            Verdict::Rules(_) => RobotsDecision::Disallowed(Disallowed::ByRules),
        }
    }
}

/// The first `limit` bytes, cut after the last whole line within them.
fn cut_at_line(body: &[u8], limit: usize) -> &[u8] {
    if body.len() <= limit {
        return body;
    }
    let head = &body[..limit];
    match head.iter().rposition(|&b| b == b'\n') {
        Some(end) => &head[..=end],
        None => head,
    }
}

/// The origin whose robots.txt governs a URL (`https://example.com:8443`).
pub fn robots_origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Where a URL's robots.txt is.
pub fn robots_url(url: &Url) -> Option<Url> {
    let mut robots = url.join("/robots.txt").ok()?;
    robots.set_query(None);
    robots.set_fragment(None);
    // Credentials belong to the page's request, not to robots.txt.
    robots.set_username("").ok()?;
    robots.set_password(None).ok()?;
    Some(robots)
}

/// What the cache says about a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheAnswer {
    Known(RobotsDecision),
    /// No fresh answer for the site: fetch this robots.txt and
    /// [`RobotsCache::store`] what came back.
    FetchFirst(Url),
}

/// robots.txt answers by origin.
#[derive(Debug)]
pub struct RobotsCache {
    config: RobotsConfig,
    sites: HashMap<String, RobotsRules>,
}

impl RobotsCache {
    pub fn new(config: RobotsConfig) -> Self {
        Self {
            config,
            sites: HashMap::new(),
        }
    }

    pub fn config(&self) -> &RobotsConfig {
        &self.config
    }

    /// Whether `url` may be fetched at `now`, or which robots.txt to fetch
    /// first.
    pub fn decide(&self, url: &Url, now: DateTime<Utc>) -> CacheAnswer {
        match self.sites.get(&robots_origin(url)) {
            Some(rules) if rules.is_fresh(now) => CacheAnswer::Known(rules.decide(url)),
            _ => match robots_url(url) {
                Some(robots) => CacheAnswer::FetchFirst(robots),
                // A URL without a host has no robots.txt and no request.
                None => CacheAnswer::Known(RobotsDecision::Disallowed(Disallowed::Unreachable(
                    "the URL has no robots.txt".to_owned(),
                ))),
            },
        }
    }

    /// Keeps what fetching `url`'s robots.txt gave, replacing the previous
    /// answer for its site.
    pub fn store(&mut self, url: &Url, fetch: RobotsFetch, now: DateTime<Utc>) {
        let rules = RobotsRules::from_fetch(fetch, &self.config, now);
        self.insert(url, rules);
    }

    /// Keeps rules parsed elsewhere (see [`RobotsRules::from_fetch`]) as
    /// `url`'s site's answer.
    pub fn insert(&mut self, url: &Url, rules: RobotsRules) {
        self.sites.insert(robots_origin(url), rules);
    }

    /// Forgets every answer.
    pub fn clear(&mut self) {
        self.sites.clear();
    }

    /// Drops answers that no longer hold.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.sites.retain(|_, rules| rules.is_fresh(now));
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    /// `allowed`, `allowed after Ns`, or why not.
    fn show(decision: &RobotsDecision) -> String {
        match decision {
            RobotsDecision::Allowed { min_gap: None } => "allowed".to_owned(),
            RobotsDecision::Allowed { min_gap: Some(gap) } => {
                format!("allowed, gap {}ms", gap.num_milliseconds())
            }
            RobotsDecision::Disallowed(why) => format!("disallowed: {why}"),
        }
    }

    #[test]
    fn fetches_mean_what_rfc_9309_says() {
        let config = RobotsConfig::new("Accord");
        let check = |fetch: RobotsFetch, path: &str, expected: &str| {
            let rules = RobotsRules::from_fetch(fetch.clone(), &config, t0());
            let url = Url::parse("https://example.com")
                .unwrap()
                .join(path)
                .unwrap();
            assert_eq!(show(&rules.decide(&url)), expected, "{fetch:?} {path}");
        };
        let fetched = |text: &str| RobotsFetch::from_response(200, text.as_bytes().to_vec());
        let rules = "User-agent: *\nDisallow: /private\n\nUser-agent: accord\nDisallow: /no-accord\nAllow: /no-accord/yes\nCrawl-delay: 2.5\n";
        check(fetched(rules), "/", "allowed, gap 2500ms");
        check(fetched(rules), "/private", "allowed, gap 2500ms");
        check(
            fetched(rules),
            "/no-accord/x",
            "disallowed: robots.txt disallows it",
        );
        check(fetched(rules), "/no-accord/yes", "allowed, gap 2500ms");
        check(fetched(rules), "/robots.txt", "allowed, gap 2500ms");
        check(
            fetched("User-agent: *\nDisallow: /private\n"),
            "/private/a",
            "disallowed: robots.txt disallows it",
        );
        check(
            fetched("User-agent: *\nDisallow: /\n"),
            "/",
            "disallowed: robots.txt disallows it",
        );
        check(fetched("User-agent: other\nDisallow: /\n"), "/", "allowed");
        check(
            fetched("User-agent: *\nCrawl-delay: 3600\n"),
            "/",
            "allowed, gap 60000ms",
        );
        check(fetched("User-agent: *\nCrawl-delay: -4\n"), "/", "allowed");
        check(fetched(""), "/anything", "allowed");
        check(
            RobotsFetch::from_response(200, vec![0xff, 0x00, 0xfe, 0x80, 0x01, 0x9c, 0x00]),
            "/",
            "allowed",
        );
        check(RobotsFetch::from_response(404, Vec::new()), "/", "allowed");
        check(RobotsFetch::from_response(401, Vec::new()), "/", "allowed");
        check(RobotsFetch::too_many_redirects(), "/", "allowed");
        check(
            RobotsFetch::from_response(503, Vec::new()),
            "/",
            "disallowed: robots.txt answered 503; nothing is fetched until it answers",
        );
        check(
            RobotsFetch::from_response(429, Vec::new()),
            "/",
            "disallowed: robots.txt answered 429; nothing is fetched until it answers",
        );
        check(
            RobotsFetch::failed("timed out after 10s"),
            "/",
            "disallowed: robots.txt could not be fetched: timed out after 10s; nothing is fetched until it answers",
        );
    }

    #[test]
    fn at_least_500_kib_are_parsed_and_no_more_than_the_limit() {
        let config = RobotsConfig::new("accord");
        // 600 KiB: comment lines, then a rule just before 500 KiB, then one
        // past the limit.
        let mut body = String::from("User-agent: *\n");
        while body.len() < 500 * 1024 - 100 {
            body.push_str("# filler line to make this file heavy\n");
        }
        body.push_str("Disallow: /within-500k\n");
        while body.len() < MAX_ROBOTS_BYTES + 10 {
            body.push_str("# more filler past the parse limit\n");
        }
        body.push_str("Disallow: /past-the-limit\n");
        while body.len() < 600 * 1024 {
            body.push_str("# tail\n");
        }
        let rules = RobotsRules::from_fetch(RobotsFetch::Fetched(body.into_bytes()), &config, t0());
        let check = |path: &str, expected: &str| {
            let url = Url::parse("https://example.com")
                .unwrap()
                .join(path)
                .unwrap();
            assert_eq!(show(&rules.decide(&url)), expected, "{path}");
        };
        check("/within-500k", "disallowed: robots.txt disallows it");
        check("/past-the-limit", "allowed");
        assert_eq!(cut_at_line(b"ab\ncd\nef", 7), b"ab\ncd\n");
        assert_eq!(cut_at_line(b"abcdef", 3), b"abc");
        assert_eq!(cut_at_line(b"ab\n", 7), b"ab\n");
    }

    #[test]
    fn answers_are_kept_for_their_time_and_unreachable_ones_retried_soon() {
        let mut cache = RobotsCache::new(RobotsConfig::new("accord"));
        let page = Url::parse("https://example.com/a/b?c=d").unwrap();
        let robots = Url::parse("https://example.com/robots.txt").unwrap();
        let other_port = Url::parse("https://example.com:8443/").unwrap();
        assert_eq!(
            cache.decide(&page, t0()),
            CacheAnswer::FetchFirst(robots.clone())
        );

        let at = |minutes: i64| t0() + TimeDelta::minutes(minutes);
        cache.store(&robots, RobotsFetch::from_response(503, Vec::new()), at(0));
        let unreachable = CacheAnswer::Known(RobotsDecision::Disallowed(Disallowed::Unreachable(
            "robots.txt answered 503".to_owned(),
        )));
        assert_eq!(
            cache.decide(&page, t0() + TimeDelta::seconds(59)),
            unreachable
        );
        // The retry is due after a minute, not 24 hours.
        assert_eq!(
            cache.decide(&page, at(1)),
            CacheAnswer::FetchFirst(robots.clone())
        );
        cache.store(
            &robots,
            RobotsFetch::from_response(200, b"User-agent: *\nDisallow: /a/\n".to_vec()),
            at(5),
        );
        let by_rules = CacheAnswer::Known(RobotsDecision::Disallowed(Disallowed::ByRules));
        assert_eq!(cache.decide(&page, at(5)), by_rules);
        assert_eq!(cache.decide(&page, at(5 + 24 * 60 - 1)), by_rules);
        assert_eq!(
            cache.decide(&page, at(5 + 24 * 60)),
            CacheAnswer::FetchFirst(robots.clone())
        );
        // Another port is another origin.
        assert_eq!(
            cache.decide(&other_port, at(5)),
            CacheAnswer::FetchFirst(Url::parse("https://example.com:8443/robots.txt").unwrap())
        );
        assert_eq!(cache.len(), 1);
        cache.prune(at(5 + 24 * 60));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_shared_answer_means_what_the_fetch_meant_and_expires_with_it() {
        let config = RobotsConfig::new("accord");
        let page = Url::parse("https://example.com/private/x").unwrap();
        let check = |fetch: RobotsFetch, lifetime: TimeDelta| {
            let record = fetch.to_record("https://example.com".to_owned(), &config, t0());
            assert_eq!(record.expires_at, t0() + lifetime, "{fetch:?}");
            let shared = RobotsRules::from_record(record, &config);
            let own = RobotsRules::from_fetch(fetch.clone(), &config, t0());
            assert_eq!(shared.decide(&page), own.decide(&page), "{fetch:?}");
            assert_eq!(shared.expires_at(), own.expires_at(), "{fetch:?}");
        };
        let day = TimeDelta::hours(24);
        check(
            RobotsFetch::from_response(200, b"User-agent: *\nDisallow: /private\n".to_vec()),
            day,
        );
        check(RobotsFetch::from_response(404, Vec::new()), day);
        check(
            RobotsFetch::from_response(503, Vec::new()),
            TimeDelta::minutes(1),
        );
        // A record that claims to hold longer than a day holds a day.
        let mut long = RobotsFetch::from_response(404, Vec::new()).to_record(
            "https://example.com".to_owned(),
            &config,
            t0(),
        );
        long.expires_at = t0() + TimeDelta::days(30);
        assert_eq!(
            RobotsRules::from_record(long, &config).expires_at(),
            t0() + day
        );
        // Only what is parsed is shared.
        let mut heavy = b"User-agent: *\n".to_vec();
        heavy.resize(MAX_ROBOTS_BYTES + 100, b'\n');
        let record = RobotsFetch::Fetched(heavy).to_record("https://a".to_owned(), &config, t0());
        assert_eq!(record.body.len(), MAX_ROBOTS_BYTES);
    }

    #[test]
    fn robots_urls_drop_everything_but_the_origin() {
        let check = |page: &str, expected: &str| {
            let got = robots_url(&Url::parse(page).unwrap()).map(String::from);
            assert_eq!(got.as_deref(), Some(expected), "{page}");
        };
        check(
            "https://example.com/a/b?c=d#e",
            "https://example.com/robots.txt",
        );
        check(
            "http://user:pw@example.com:8080/x",
            "http://example.com:8080/robots.txt",
        );
        check("https://EXAMPLE.com./", "https://example.com./robots.txt");
    }
}
