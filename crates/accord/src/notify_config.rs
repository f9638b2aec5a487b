//! The control plane's notification settings: flags and the `[notify]`
//! table of the config file, resolved into the delivery loop's and the
//! sender's configuration. The retry schedule is configurable so tests can
//! drive it in milliseconds instead of a day.

use std::time::Duration;

use accord_notify::{DeliveryConfig, SenderConfig};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use url::Url;

/// Flags of `accord serve` and `accord up` about notifications.
#[derive(Debug, Args, Default)]
pub struct NotifyArgs {
    /// The first retry delay of a failed notification, in ms; it doubles up
    /// to --notify-retry-max-ms [default: 30000].
    #[arg(long, env = "ACCORD_NOTIFY_RETRY_BASE_MS", value_name = "MS")]
    pub notify_retry_base_ms: Option<u64>,
    /// The longest delay between two attempts, in ms [default: 14400000].
    #[arg(long, env = "ACCORD_NOTIFY_RETRY_MAX_MS", value_name = "MS")]
    pub notify_retry_max_ms: Option<u64>,
    /// Attempts per notification before it is marked failed [default: 16].
    #[arg(long, env = "ACCORD_NOTIFY_MAX_ATTEMPTS", value_name = "N")]
    pub notify_max_attempts: Option<u32>,
    /// Longest one delivery attempt may take, in ms [default: 10000].
    #[arg(long, env = "ACCORD_NOTIFY_TIMEOUT_MS", value_name = "MS")]
    pub notify_timeout_ms: Option<u64>,
    /// A target is paused after this many failed attempts in a row [default: 50].
    #[arg(long, env = "ACCORD_NOTIFY_PAUSE_AFTER", value_name = "N")]
    pub notify_pause_after: Option<u32>,
    /// How often the delivery loop looks for due messages when idle, in ms [default: 250].
    #[arg(long, env = "ACCORD_NOTIFY_POLL_MS", value_name = "MS")]
    pub notify_poll_ms: Option<u64>,
    /// This control plane's URL as receivers reach it, for links in messages.
    #[arg(long, env = "ACCORD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
}

/// The `[notify]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNotify {
    pub retry_base_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub pause_after: Option<u32>,
    pub poll_ms: Option<u64>,
    pub public_url: Option<String>,
}

/// Notifications, resolved.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    pub delivery: DeliveryConfig,
    /// The egress policy and allow-list are the queue's, filled in by the
    /// server settings.
    pub sender: SenderConfig,
}

impl NotifySettings {
    pub fn resolve(args: &NotifyArgs, file: &FileNotify) -> Result<Self> {
        let defaults = DeliveryConfig::default();
        let ms = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file)
                .map_or(default, |ms| Duration::from_millis(ms.max(1)))
        };
        let retry_base = ms(
            args.notify_retry_base_ms,
            file.retry_base_ms,
            defaults.retry_base,
        );
        let retry_max = ms(
            args.notify_retry_max_ms,
            file.retry_max_ms,
            defaults.retry_max,
        );
        if retry_max < retry_base {
            bail!("notify_retry_max_ms must be at least notify_retry_base_ms");
        }
        let timeout = ms(
            args.notify_timeout_ms,
            file.timeout_ms,
            SenderConfig::default().timeout,
        );
        let public_url = args
            .public_url
            .clone()
            .or_else(|| file.public_url.clone())
            .map(|text| {
                let text = if text.ends_with('/') {
                    text
                } else {
                    format!("{text}/")
                };
                Url::parse(&text).with_context(|| format!("--public-url {text}"))
            })
            .transpose()?;
        Ok(Self {
            delivery: DeliveryConfig {
                retry_base,
                retry_max,
                max_attempts: args
                    .notify_max_attempts
                    .or(file.max_attempts)
                    .unwrap_or(defaults.max_attempts)
                    .max(1),
                // An attempt never outlives its lease.
                lease: timeout * 2 + Duration::from_secs(1),
                pause_after: args
                    .notify_pause_after
                    .or(file.pause_after)
                    .unwrap_or(defaults.pause_after)
                    .max(1),
                idle_poll: ms(args.notify_poll_ms, file.poll_ms, defaults.idle_poll),
                public_url,
                ..defaults
            },
            sender: SenderConfig {
                timeout,
                connect_timeout: timeout.min(SenderConfig::default().connect_timeout),
                ..SenderConfig::default()
            },
        })
    }
}
