//! The control plane's notification settings: flags and the `[notify]`
//! table of the config file, resolved into the delivery loop's and the
//! sender's configuration. The retry schedule is configurable so tests can
//! drive it in milliseconds instead of a day.

use std::time::Duration;

use accord_notify::{DeliveryConfig, SenderConfig, SmtpConfig, SmtpTls};
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
    /// The SMTP server email notifications go through; without it, email
    /// targets are refused. It passes the egress guard like any target.
    #[arg(long, env = "ACCORD_SMTP_HOST", value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// The SMTP server's port [default: 587 for starttls, 465 for tls, 25 for none].
    #[arg(long, env = "ACCORD_SMTP_PORT", value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// starttls, tls, or none (a server on loopback only) [default: starttls].
    #[arg(long, env = "ACCORD_SMTP_TLS", value_name = "MODE")]
    pub smtp_tls: Option<String>,
    #[arg(long, env = "ACCORD_SMTP_USERNAME", value_name = "USER")]
    pub smtp_username: Option<String>,
    #[arg(
        long,
        env = "ACCORD_SMTP_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub smtp_password: Option<String>,
    /// The From of notification emails (`Accord <accord@example.com>`).
    #[arg(long, env = "ACCORD_SMTP_FROM", value_name = "MAILBOX")]
    pub smtp_from: Option<String>,
    /// A PEM file of certificate authorities to trust for the SMTP
    /// server's TLS certificate besides the public ones (an internal relay).
    #[arg(long, env = "ACCORD_SMTP_CA_FILE", value_name = "PATH")]
    pub smtp_ca_file: Option<std::path::PathBuf>,
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
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_tls: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub smtp_from: Option<String>,
    pub smtp_ca_file: Option<std::path::PathBuf>,
}

/// Notifications, resolved.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    pub delivery: DeliveryConfig,
    /// The egress policy and allow-list are the queue's, filled in by the
    /// server settings.
    pub sender: SenderConfig,
    /// The SMTP server of email targets, when configured.
    pub smtp: Option<SmtpConfig>,
}

/// The SMTP settings: none without a host; a host needs a From.
fn smtp_settings(args: &NotifyArgs, file: &FileNotify) -> Result<Option<SmtpConfig>> {
    let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or_else(|| file.clone());
    let Some(host) = pick(&args.smtp_host, &file.smtp_host) else {
        return Ok(None);
    };
    let tls_text = pick(&args.smtp_tls, &file.smtp_tls).unwrap_or_else(|| "starttls".to_owned());
    let tls = SmtpTls::parse(&tls_text)
        .with_context(|| format!("smtp_tls {tls_text:?}: the modes are starttls, tls and none"))?;
    let from = pick(&args.smtp_from, &file.smtp_from).context(
        "an SMTP server needs a From address: --smtp-from, ACCORD_SMTP_FROM or [server.notify] smtp_from",
    )?;
    let ca_pem = match args.smtp_ca_file.as_ref().or(file.smtp_ca_file.as_ref()) {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("smtp_ca_file {}: cannot read it", path.display()))?,
        ),
        None => None,
    };
    Ok(Some(SmtpConfig {
        host,
        port: args
            .smtp_port
            .or(file.smtp_port)
            .unwrap_or_else(|| tls.default_port()),
        tls,
        username: pick(&args.smtp_username, &file.smtp_username),
        password: pick(&args.smtp_password, &file.smtp_password),
        from,
        ca_pem,
    }))
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
            smtp: smtp_settings(args, file)?,
        })
    }

    /// The mailer of `smtp`, under the sender's egress rules.
    pub fn mailer(&self, smtp: SmtpConfig) -> Result<accord_notify::Mailer> {
        accord_notify::Mailer::new(
            smtp,
            accord_notify::MailerEgress {
                policy: self.sender.egress,
                allow: self.sender.allow_targets.clone(),
                timeout: self.sender.timeout,
            },
        )
        .context("the SMTP settings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(args: NotifyArgs, file: FileNotify) -> Result<Option<SmtpConfig>> {
        NotifySettings::resolve(&args, &file).map(|settings| settings.smtp)
    }

    #[test]
    fn smtp_is_off_without_a_host_and_needs_a_from() {
        assert!(smtp(NotifyArgs::default(), FileNotify::default())
            .unwrap()
            .is_none());
        let no_from = NotifyArgs {
            smtp_host: Some("smtp.example.com".to_owned()),
            ..NotifyArgs::default()
        };
        let err = smtp(no_from, FileNotify::default()).unwrap_err();
        assert!(err.to_string().contains("--smtp-from"), "{err}");
    }

    #[test]
    fn flags_win_over_the_file_and_ports_follow_the_mode() {
        let file = FileNotify {
            smtp_host: Some("file.example.com".to_owned()),
            smtp_from: Some("accord@example.com".to_owned()),
            smtp_tls: Some("tls".to_owned()),
            ..FileNotify::default()
        };
        let from_file = smtp(NotifyArgs::default(), file).unwrap().unwrap();
        assert_eq!(from_file.host, "file.example.com");
        assert_eq!((from_file.tls, from_file.port), (SmtpTls::Tls, 465));
        let args = NotifyArgs {
            smtp_host: Some("flag.example.com".to_owned()),
            smtp_from: Some("accord@example.com".to_owned()),
            smtp_port: Some(2525),
            ..NotifyArgs::default()
        };
        let file = FileNotify {
            smtp_host: Some("file.example.com".to_owned()),
            ..FileNotify::default()
        };
        let both = smtp(args, file).unwrap().unwrap();
        assert_eq!(both.host, "flag.example.com");
        assert_eq!((both.tls, both.port), (SmtpTls::StartTls, 2525));
        let bad_mode = FileNotify {
            smtp_host: Some("h".to_owned()),
            smtp_from: Some("a@b.c".to_owned()),
            smtp_tls: Some("ssl".to_owned()),
            ..FileNotify::default()
        };
        let err = smtp(NotifyArgs::default(), bad_mode).unwrap_err();
        assert!(err.to_string().contains("starttls, tls and none"), "{err}");
    }
}
