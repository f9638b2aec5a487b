//! The delivery loop: claims due messages from the outbox with a lease,
//! formats each for its target's channel, sends it through the egress
//! guard and records the attempt with what comes next: delivered, a retry
//! after an exponential backoff with jitter ([`accord_model::Backoff`]),
//! or failed once the attempts run out (about a day with the defaults) or
//! the guard refuses the target. A target failing too many attempts in a
//! row is paused by the store, and the pause is audited here.
//!
//! Every replica may run the loop: the store's claim never hands one
//! message to two claimers while its lease lasts, and a record whose lease
//! was lost is refused (the receiver may then see the message twice, with
//! the same `webhook-id`; it drops the repeat).

use std::sync::Arc;
use std::time::Duration;

use accord_model::{
    AuditOutcome, Backoff, Clock, NewAuditEntry, TargetAddress, TargetKind, WorkspaceId,
};
use accord_store::{AttemptNext, AttemptRecord, ClaimedMessage, RecordOutcome, Store, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::chat::{discord_message, slack_message};
use crate::email::email_content;
use crate::payload::WebhookPayload;
use crate::send::{Attempt, Sender};
use crate::sign::signature_header;
use crate::smtp::Mailer;

/// How the loop paces itself and retries.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The first retry's delay; it doubles up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Attempts per message (per round: a redelivery starts a new one).
    pub max_attempts: u32,
    /// How long a claimed message is held before another claimer may take
    /// it (longer than an attempt).
    pub lease: Duration,
    /// Messages claimed at once, and sent concurrently.
    pub batch: u32,
    /// How long the loop waits when nothing was due.
    pub idle_poll: Duration,
    /// A target is paused after this many failed attempts in a row.
    pub pause_after: u32,
    /// The control plane's URL as receivers reach it, for links.
    pub public_url: Option<Url>,
}

impl Default for DeliveryConfig {
    /// 30 s doubling to 4 h over 16 attempts: the last is about a day
    /// after the first.
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(4 * 3_600),
            max_attempts: 16,
            lease: Duration::from_secs(60),
            batch: 64,
            idle_poll: Duration::from_millis(250),
            pause_after: 50,
            public_url: None,
        }
    }
}

impl DeliveryConfig {
    /// The delay before attempt `next` (2 for the first retry), from a
    /// random `unit` in `[0, 1]`: the step doubles from `retry_base` up
    /// to `retry_max`, and the delay is between half and all of it.
    pub fn retry_delay(&self, next: u32, unit: f64) -> Duration {
        let mut backoff = Backoff::new(self.retry_base, self.retry_max);
        for _ in 2..next {
            backoff.next_delay(1.0);
        }
        backoff.next_delay(unit)
    }
}

/// The delivery loop's handles.
#[derive(Debug, Clone)]
pub struct Deliverer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sender: Sender,
    /// Sends email targets' messages; without it they fail for good.
    mailer: Option<Mailer>,
    config: DeliveryConfig,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sender: Sender,
        config: DeliveryConfig,
    ) -> Self {
        Self {
            store,
            clock,
            sender,
            mailer: None,
            config,
        }
    }

    /// Delivers email targets' messages through this SMTP server.
    pub fn with_mailer(mut self, mailer: Mailer) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Delivers until `shutdown`: a pass, then another at once when it was
    /// busy, or after `idle_poll`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let pause = match self.deliver_due().await {
                Ok(0) => {
                    failures.reset();
                    self.config.idle_poll
                }
                Ok(_) => {
                    failures.reset();
                    Duration::ZERO
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the notification outbox could not be read");
                    failures.next_delay(rand::thread_rng().gen())
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Claims the due messages and sends them; how many were claimed.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX);
        let claimed = self
            .store
            .notification_claim(now, now + lease, self.config.batch)
            .await?;
        let count = claimed.len();
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(claimed)
            .map(|message| self.deliver(message))
            .buffer_unordered(self.config.batch.max(1) as usize)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(count)
    }

    async fn deliver(&self, message: ClaimedMessage) -> Result<(), StoreError> {
        let attempt = self.send(&message).await;
        let at = self.clock.now();
        let next = if attempt.delivered {
            AttemptNext::Delivered
        } else if attempt.permanent || message.round_attempt >= self.config.max_attempts {
            AttemptNext::Failed
        } else {
            let delay = self
                .config
                .retry_delay(message.round_attempt + 1, rand::thread_rng().gen());
            AttemptNext::RetryAt(at + chrono::Duration::from_std(delay).unwrap_or_default())
        };
        let record = AttemptRecord {
            message_id: message.id,
            attempt: message.attempt,
            at,
            status: attempt.status,
            latency_ms: u64::try_from(attempt.latency.as_millis()).unwrap_or(u64::MAX),
            error: attempt.error.clone(),
            excerpt: attempt.excerpt.clone(),
            next,
            pause_after: self.config.pause_after,
        };
        match self.store.notification_record(&record).await? {
            RecordOutcome::Stale => {
                tracing::info!(message_id = %message.id, "a delivery outlived its lease; another attempt owns the message");
            }
            RecordOutcome::Recorded { target_paused } => {
                tracing::debug!(
                    message_id = %message.id,
                    target_id = %message.target.id,
                    attempt = message.attempt,
                    status = ?attempt.status,
                    delivered = attempt.delivered,
                    "delivery attempt"
                );
                if matches!(next, AttemptNext::Failed) {
                    tracing::warn!(message_id = %message.id, target_id = %message.target.id, error = ?attempt.error, "notification failed for good");
                }
                if target_paused {
                    self.audit_pause(message.target.workspace_id, &message, at)
                        .await;
                }
            }
        }
        Ok(())
    }

    async fn audit_pause(
        &self,
        workspace: WorkspaceId,
        message: &ClaimedMessage,
        at: DateTime<Utc>,
    ) {
        tracing::warn!(target_id = %message.target.id, "notification target paused after failing too often");
        let entry = NewAuditEntry {
            workspace_id: workspace,
            at,
            key_id: None,
            role: None,
            action: "pause_notification_target".to_owned(),
            route: "delivery loop".to_owned(),
            target: Some(message.target.id.to_string()),
            outcome: AuditOutcome::Success,
            status: 200,
            client_addr: None,
            detail: Some(format!(
                "paused after {} failed attempts in a row",
                self.config.pause_after
            )),
        };
        if let Err(err) = self.store.audit_insert(&[entry]).await {
            tracing::warn!(error = %err, "the pause of a notification target was not audited");
        }
    }

    /// Formats the message for its channel and sends it once.
    async fn send(&self, message: &ClaimedMessage) -> Attempt {
        let now = self.clock.now();
        let payload = WebhookPayload::new(
            &message.notice,
            &message.events,
            now,
            self.config.public_url.as_ref(),
        );
        let url = match &message.target.address {
            TargetAddress::Url(url) => url,
            TargetAddress::Email(recipients) => {
                let Some(mailer) = &self.mailer else {
                    return Attempt {
                        status: None,
                        latency: Duration::ZERO,
                        delivered: false,
                        error: Some("this control plane has no SMTP server configured".to_owned()),
                        excerpt: None,
                        permanent: true,
                    };
                };
                let content = email_content(&payload);
                return mailer
                    .send(recipients, &content, &message.id.webhook_id())
                    .await;
            }
        };
        let (body, headers) = match message.target.kind {
            TargetKind::Slack => (slack_message(&payload), HeaderMap::new()),
            TargetKind::Discord => (discord_message(&payload), HeaderMap::new()),
            TargetKind::Webhook | TargetKind::Email => {
                let body = serde_json::to_value(&payload).unwrap_or_default();
                (body, HeaderMap::new())
            }
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let headers = if message.target.kind == TargetKind::Webhook {
            webhook_headers(message, now, &body)
        } else {
            headers
        };
        self.sender.post_json(url, headers, body).await
    }
}

/// The Standard Webhooks headers of a message.
fn webhook_headers(message: &ClaimedMessage, now: DateTime<Utc>, body: &[u8]) -> HeaderMap {
    let timestamp = now.timestamp();
    let id = message.id.webhook_id();
    let secrets = message.target.signing_secrets(now);
    let signature = signature_header(&secrets, &id, timestamp, body);
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("webhook-id", id);
    put("webhook-timestamp", timestamp.to_string());
    put("webhook-signature", signature);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(config: &DeliveryConfig, next: u32, unit: f64, expected_ms: u64) {
        assert_eq!(
            config.retry_delay(next, unit),
            Duration::from_millis(expected_ms),
            "attempt {next}, unit {unit}"
        );
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter() {
        let config = DeliveryConfig {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(1_000),
            ..DeliveryConfig::default()
        };
        check(&config, 2, 1.0, 100);
        check(&config, 2, 0.0, 50);
        check(&config, 3, 1.0, 200);
        check(&config, 4, 1.0, 400);
        check(&config, 5, 0.5, 600);
        check(&config, 6, 1.0, 1_000);
        check(&config, 20, 1.0, 1_000);
    }

    /// The default schedule spreads its attempts over about a day.
    #[test]
    fn the_default_schedule_lasts_about_a_day() {
        let config = DeliveryConfig::default();
        let total: Duration = (2..=config.max_attempts)
            .map(|next| config.retry_delay(next, 1.0))
            .sum();
        let hours = total.as_secs_f64() / 3_600.0;
        assert!((20.0..=36.0).contains(&hours), "{hours} hours");
    }
}
