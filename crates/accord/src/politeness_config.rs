//! The control plane's per-domain politeness defaults: flags and the
//! `[politeness]` table of the config file, resolved into the limits every
//! domain gets (rate, concurrency cap, least gap, circuit breaker).

use accord_egress::DomainLimits;
use anyhow::{bail, Result};
use clap::Args;
use serde::Deserialize;

/// Flags of `accord serve` and `accord up` about politeness.
#[derive(Debug, Args, Default)]
pub struct PolitenessArgs {
    /// Requests in flight to one domain at once, across all workers; 0 for
    /// no cap [default: 16].
    #[arg(long, env = "ACCORD_DOMAIN_MAX_CONCURRENT", value_name = "N")]
    pub domain_max_concurrent: Option<u32>,
    /// Requests started per minute to one domain, across all workers; 0 for
    /// no limit [default: 0].
    #[arg(long, env = "ACCORD_DOMAIN_PER_MINUTE", value_name = "N")]
    pub domain_per_minute: Option<u32>,
    /// Least time between two requests to one domain, in ms [default: 0].
    #[arg(long, env = "ACCORD_DOMAIN_MIN_GAP_MS", value_name = "MS")]
    pub domain_min_gap_ms: Option<u64>,
    /// Failures in a row (network errors, timeouts, 5xx) that open a
    /// domain's circuit breaker [default: 5].
    #[arg(long, env = "ACCORD_DOMAIN_BREAKER_FAILURES", value_name = "N")]
    pub domain_breaker_failures: Option<u32>,
    /// How long an open breaker holds a domain's jobs before one probe, in
    /// ms [default: 30000].
    #[arg(long, env = "ACCORD_DOMAIN_BREAKER_OPEN_MS", value_name = "MS")]
    pub domain_breaker_open_ms: Option<u64>,
}

/// The `[politeness]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePoliteness {
    pub max_concurrent: Option<u32>,
    pub per_minute: Option<u32>,
    pub min_gap_ms: Option<u64>,
    pub breaker_failures: Option<u32>,
    pub breaker_open_ms: Option<u64>,
}

/// Longest least gap and breaker opening accepted: an hour.
const MAX_MS: u64 = 60 * 60 * 1000;

pub fn resolve(args: &PolitenessArgs, file: &FilePoliteness) -> Result<DomainLimits> {
    let defaults = DomainLimits::default();
    let max_concurrent = args
        .domain_max_concurrent
        .or(file.max_concurrent)
        .map_or(defaults.max_concurrent, |n| (n > 0).then_some(n));
    let per_minute = args
        .domain_per_minute
        .or(file.per_minute)
        .map_or(defaults.per_minute, |n| (n > 0).then_some(n));
    let min_gap_ms = args
        .domain_min_gap_ms
        .or(file.min_gap_ms)
        .unwrap_or(defaults.min_gap_ms);
    let breaker_failures = args
        .domain_breaker_failures
        .or(file.breaker_failures)
        .unwrap_or(defaults.breaker_failures);
    let breaker_open_ms = args
        .domain_breaker_open_ms
        .or(file.breaker_open_ms)
        .unwrap_or(defaults.breaker_open_ms);
    if min_gap_ms > MAX_MS {
        bail!("--domain-min-gap-ms ([politeness] min_gap_ms) must be at most {MAX_MS}");
    }
    if breaker_failures == 0 {
        bail!("--domain-breaker-failures ([politeness] breaker_failures) must be at least 1");
    }
    if !(1..=MAX_MS).contains(&breaker_open_ms) {
        bail!("--domain-breaker-open-ms ([politeness] breaker_open_ms) must be between 1 and {MAX_MS}");
    }
    Ok(DomainLimits {
        per_minute,
        max_concurrent,
        min_gap_ms,
        breaker_failures,
        breaker_open_ms,
    })
}
