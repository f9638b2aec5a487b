//! How an engine is configured. Filled in by the binary from its config file;
//! the defaults are the safe production choice.

use std::time::Duration;

use accord_egress::AllowList;
use accord_model::EgressPolicy;

use crate::PageLimits;

/// Settings of the HTTP engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Which addresses may be fetched; `AllowPrivate` only for tests and
    /// the local demo site, never in production.
    pub egress: EgressPolicy,
    /// Non-public networks reachable all the same under `PublicOnly` (an
    /// internal site, the demo site's own loopback address).
    pub allow_targets: AllowList,
    /// Sent on every request. Accord identifies itself honestly.
    pub user_agent: String,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest time of one `navigate`: request, redirects and the whole body.
    pub navigate_timeout: Duration,
    /// Longest time of one `download`: request, redirects and the whole
    /// file (whose size each step caps).
    pub download_timeout: Duration,
    /// Largest page body kept; a bigger one fails the step.
    pub max_body_bytes: usize,
    /// Most redirects followed by one `navigate`.
    pub max_redirects: usize,
    /// Bounds on parsing and processing one page.
    pub page_limits: PageLimits,
}

impl EngineConfig {
    /// The User-Agent sent unless configured otherwise.
    pub const DEFAULT_USER_AGENT: &'static str = concat!(
        "Accord/",
        env!("CARGO_PKG_VERSION"),
        " (self-hosted web automation; set --user-agent to add your contact)"
    );
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            egress: EgressPolicy::PublicOnly,
            allow_targets: AllowList::default(),
            user_agent: Self::DEFAULT_USER_AGENT.to_owned(),
            connect_timeout: Duration::from_secs(10),
            navigate_timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(300),
            max_body_bytes: 10 * 1024 * 1024,
            max_redirects: 10,
            page_limits: PageLimits::default(),
        }
    }
}
