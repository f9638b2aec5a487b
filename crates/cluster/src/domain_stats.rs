//! [`DomainStats`]: what the workers' requests to each domain did, as
//! rolled-up counters per minute and per hour (requests, answers by status
//! class, network errors, waits for politeness, a latency histogram), so
//! the last hour and the last day are read from at most 84 buckets and
//! never by scanning jobs. In Redis when configured (shared by every
//! replica), in-process otherwise; counters are hints for operators, so a
//! failed write is dropped, never retried.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::link::{Link, RedisHandle};

/// Upper bounds (ms) of the latency histogram's buckets; a last bucket
/// holds everything slower.
pub const LATENCY_BOUNDS_MS: [u64; 9] = [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000];
const FIELDS: [&str; 7] = ["requests", "c2", "c3", "c4", "c5", "errors", "waits"];
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Domains kept in the in-process index and listed at most.
pub const MAX_DOMAINS: usize = 1_000;

/// One request's outcome as the counters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// The site answered with this status.
    Status { status: u16, latency_ms: u64 },
    /// No answer: network error or timeout.
    Error,
    /// A request had to wait for its permit (rate, gap, cap, pause, breaker).
    Wait,
}

/// Counters over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    /// Answers by status class: 2xx, 3xx, 4xx, 5xx.
    pub by_class: [u64; 4],
    pub errors: u64,
    pub waits: u64,
    pub latency: [u64; LATENCY_BOUNDS_MS.len() + 1],
}

impl Counters {
    fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        self.errors += other.errors;
        self.waits += other.waits;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }

    fn record(&mut self, sample: Sample) {
        match sample {
            Sample::Status { status, latency_ms } => {
                self.requests += 1;
                if let Some(class) = class_index(status) {
                    self.by_class[class] += 1;
                }
                self.latency[latency_bucket(latency_ms)] += 1;
            }
            Sample::Error => {
                self.requests += 1;
                self.errors += 1;
            }
            Sample::Wait => self.waits += 1,
        }
    }

    /// The latency below which `quantile` of the answers fell, as the upper
    /// bound of its bucket (`None` without answers; `u64::MAX` for the last
    /// bucket).
    pub fn latency_quantile_ms(&self, quantile: f64) -> Option<u64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.latency.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Some(LATENCY_BOUNDS_MS.get(index).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }

    fn from_fields(fields: &HashMap<String, u64>) -> Self {
        let get = |name: &str| fields.get(name).copied().unwrap_or(0);
        let mut counters = Counters {
            requests: get("requests"),
            by_class: [get("c2"), get("c3"), get("c4"), get("c5")],
            errors: get("errors"),
            waits: get("waits"),
            ..Counters::default()
        };
        for (index, slot) in counters.latency.iter_mut().enumerate() {
            *slot = get(&format!("l{index}"));
        }
        counters
    }

    fn fields(sample: Sample) -> Vec<String> {
        match sample {
            Sample::Status { status, latency_ms } => {
                let mut fields = vec![FIELDS[0].to_owned()];
                if let Some(class) = class_index(status) {
                    fields.push(FIELDS[1 + class].to_owned());
                }
                fields.push(format!("l{}", latency_bucket(latency_ms)));
                fields
            }
            Sample::Error => vec![FIELDS[0].to_owned(), FIELDS[5].to_owned()],
            Sample::Wait => vec![FIELDS[6].to_owned()],
        }
    }
}

/// The last hour and the last day of one domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    pub last_hour: Counters,
    pub last_day: Counters,
    /// When a request to it was last counted (ms since the epoch).
    pub last_seen_ms: i64,
}

/// Cheap to clone; clones share the counters.
#[derive(Debug, Clone)]
pub struct DomainStats {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    local: Mutex<Local>,
    redis: Option<RedisHandle>,
}

#[derive(Debug, Default)]
struct Local {
    /// By domain: minute and hour buckets (keyed by their start, ms).
    minutes: HashMap<String, BTreeMap<i64, Counters>>,
    hours: HashMap<String, BTreeMap<i64, Counters>>,
    last_seen: HashMap<String, i64>,
}

impl DomainStats {
    pub fn local() -> Self {
        Self::new(None)
    }

    pub(crate) fn new(redis: Option<RedisHandle>) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: Mutex::new(Local::default()),
                redis,
            }),
        }
    }

    /// Counts one sample for `domain` now.
    pub async fn record(&self, domain: &str, sample: Sample) {
        let now = chrono::Utc::now().timestamp_millis();
        if let Some(link) = self.shared_link() {
            let mut pipe = redis::pipe();
            let minute = now - now.rem_euclid(MINUTE_MS);
            let hour = now - now.rem_euclid(HOUR_MS);
            for (key, ttl) in [
                (bucket_key(link, domain, "m", minute), 2 * HOUR_MS),
                (bucket_key(link, domain, "h", hour), DAY_MS + HOUR_MS),
            ] {
                for field in Counters::fields(sample) {
                    pipe.hincr(&key, field, 1u64).ignore();
                }
                pipe.pexpire(&key, ttl).ignore();
            }
            if sample != Sample::Wait {
                pipe.zadd(link.key("domains"), domain, now).ignore();
            }
            let mut commands = link.commands();
            // Counters are hints: a failed write is dropped.
            let _ = link.run(pipe.query_async::<()>(&mut commands)).await;
            return;
        }
        let mut local = self.inner.local.lock().unwrap_or_else(|e| e.into_inner());
        local.record(domain, sample, now);
    }

    /// Domains counted in the last day, most recently seen first, at most
    /// `limit`.
    pub async fn domains(&self, limit: usize) -> Vec<(String, Windows)> {
        let now = chrono::Utc::now().timestamp_millis();
        let names: Vec<String> = if let Some(link) = self.shared_link() {
            let mut commands = link.commands();
            let key = link.key("domains");
            let mut pipe = redis::pipe();
            pipe.zrembyscore(&key, "-inf", now - DAY_MS).ignore();
            pipe.zrevrange(&key, 0, limit.max(1) as isize - 1);
            match link
                .run(pipe.query_async::<(Vec<String>,)>(&mut commands))
                .await
            {
                Ok((names,)) => names,
                Err(_) => Vec::new(),
            }
        } else {
            let local = self.inner.local.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen: Vec<(&String, &i64)> = local
                .last_seen
                .iter()
                .filter(|(_, at)| **at > now - DAY_MS)
                .collect();
            seen.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            seen.into_iter()
                .take(limit)
                .map(|(name, _)| name.clone())
                .collect()
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(windows) = self.domain(&name).await {
                out.push((name, windows));
            }
        }
        out
    }

    /// The last hour and day of `domain`, if it was counted in the last day.
    pub async fn domain(&self, domain: &str) -> Option<Windows> {
        let now = chrono::Utc::now().timestamp_millis();
        if let Some(link) = self.shared_link() {
            let minute = now - now.rem_euclid(MINUTE_MS);
            let hour = now - now.rem_euclid(HOUR_MS);
            let mut pipe = redis::pipe();
            for back in 0..60 {
                pipe.hgetall(bucket_key(link, domain, "m", minute - back * MINUTE_MS));
            }
            for back in 0..24 {
                pipe.hgetall(bucket_key(link, domain, "h", hour - back * HOUR_MS));
            }
            pipe.zscore(link.key("domains"), domain);
            let mut commands = link.commands();
            let mut answer: Vec<redis::Value> =
                link.run(pipe.query_async(&mut commands)).await.ok()?;
            let last_seen: Option<f64> = redis::from_redis_value(answer.pop()?).ok().flatten();
            let mut windows = Windows {
                last_seen_ms: last_seen? as i64,
                ..Windows::default()
            };
            for (index, value) in answer.into_iter().enumerate() {
                let fields: HashMap<String, u64> = redis::from_redis_value(value).ok()?;
                let counters = Counters::from_fields(&fields);
                if index < 60 {
                    windows.last_hour.add(&counters);
                } else {
                    windows.last_day.add(&counters);
                }
            }
            return (windows.last_seen_ms > now - DAY_MS).then_some(windows);
        }
        let local = self.inner.local.lock().unwrap_or_else(|e| e.into_inner());
        local.windows(domain, now)
    }

    fn shared_link(&self) -> Option<&Link> {
        self.inner.redis.as_ref()?.usable_link()
    }
}

impl Local {
    fn record(&mut self, domain: &str, sample: Sample, now: i64) {
        let minute = now - now.rem_euclid(MINUTE_MS);
        let hour = now - now.rem_euclid(HOUR_MS);
        if !self.last_seen.contains_key(domain) && self.last_seen.len() >= MAX_DOMAINS {
            self.forget_oldest();
        }
        let minutes = self.minutes.entry(domain.to_owned()).or_default();
        minutes.entry(minute).or_default().record(sample);
        minutes.retain(|start, _| *start > now - HOUR_MS - MINUTE_MS);
        let hours = self.hours.entry(domain.to_owned()).or_default();
        hours.entry(hour).or_default().record(sample);
        hours.retain(|start, _| *start > now - DAY_MS - HOUR_MS);
        if sample != Sample::Wait {
            self.last_seen.insert(domain.to_owned(), now);
        } else {
            self.last_seen.entry(domain.to_owned()).or_insert(0);
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .last_seen
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(name, _)| name.clone())
        {
            self.last_seen.remove(&oldest);
            self.minutes.remove(&oldest);
            self.hours.remove(&oldest);
        }
    }

    fn windows(&self, domain: &str, now: i64) -> Option<Windows> {
        let last_seen_ms = *self.last_seen.get(domain)?;
        if last_seen_ms <= now - DAY_MS {
            return None;
        }
        let minute = now - now.rem_euclid(MINUTE_MS);
        let hour = now - now.rem_euclid(HOUR_MS);
        let mut windows = Windows {
            last_seen_ms,
            ..Windows::default()
        };
        for (start, counters) in self.minutes.get(domain).into_iter().flatten() {
            if *start > minute - HOUR_MS {
                windows.last_hour.add(counters);
            }
        }
        for (start, counters) in self.hours.get(domain).into_iter().flatten() {
            if *start > hour - DAY_MS {
                windows.last_day.add(counters);
            }
        }
        Some(windows)
    }
}

fn bucket_key(link: &Link, domain: &str, size: &str, start: i64) -> String {
    link.key(&format!("domainstats:{domain}:{size}:{start}"))
}

fn class_index(status: u16) -> Option<usize> {
    match status {
        200..=299 => Some(0),
        300..=399 => Some(1),
        400..=499 => Some(2),
        500..=599 => Some(3),
        _ => None,
    }
}

fn latency_bucket(latency_ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| latency_ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counters_roll_up_by_class_and_latency() {
        let stats = DomainStats::local();
        for (status, latency_ms) in [(200, 40), (200, 90), (304, 30), (404, 20), (503, 3_000)] {
            stats
                .record("a.example", Sample::Status { status, latency_ms })
                .await;
        }
        stats.record("a.example", Sample::Error).await;
        stats.record("a.example", Sample::Wait).await;
        stats.record("b.example", Sample::Wait).await;
        let windows = stats.domain("a.example").await.expect("counted");
        let hour = &windows.last_hour;
        assert_eq!(hour.requests, 6);
        assert_eq!(hour.by_class, [2, 1, 1, 1]);
        assert_eq!((hour.errors, hour.waits), (1, 1));
        assert_eq!(hour.latency_quantile_ms(0.5), Some(50));
        assert_eq!(hour.latency_quantile_ms(0.95), Some(5_000));
        assert_eq!(windows.last_day, windows.last_hour);
        // A domain that only waited was never reached: not listed.
        let listed: Vec<String> = stats.domains(10).await.into_iter().map(|d| d.0).collect();
        assert_eq!(listed, ["a.example"]);
    }
}
