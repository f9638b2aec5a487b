//! Notifications: where a monitor's news goes (a [`Target`]: a webhook,
//! Slack or Discord incoming webhook, or email addresses), which events a
//! monitor sends to each target ([`Subscription`]), the message kept in the
//! outbox until it is delivered ([`Notice`]) and the log of its delivery
//! attempts ([`DeliveryView`]).
//!
//! Deliberately does not send anything, sign anything or decide when to
//! retry: the notify crate formats and sends, the store keeps the outbox.
//! Whether a URL may be reached is the egress guard's call; here a URL is
//! only parsed.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use crate::{MonitorId, RunTrigger, ValidationError, WorkflowKind, WorkspaceId};

/// Most targets one monitor notifies.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// Longest target name, in bytes.
pub const MAX_TARGET_NAME_BYTES: usize = 200;
/// Longest target URL, in bytes.
pub const MAX_TARGET_URL_BYTES: usize = 2_048;
/// Longest email address, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Most recipients of one email target.
pub const MAX_EMAIL_RECIPIENTS: usize = 10;
/// Longest `email` member (the recipients, comma-separated), in bytes.
pub const MAX_EMAIL_LIST_BYTES: usize = 2_600;
/// The prefix of a webhook signing secret (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated signing secret.
pub const SECRET_BYTES: usize = 24;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

crate::ids::uuid_id!(
    /// A notification target id: a UUIDv7.
    TargetId,
    "target id"
);
crate::ids::uuid_id!(
    /// An outbox message id: a UUIDv7, stable across retries. Receivers see
    /// it as the `webhook-id` (see [`MessageId::webhook_id`]) and drop
    /// repeats by it.
    MessageId,
    "delivery id"
);

impl MessageId {
    /// The message id as sent in the `webhook-id` header: `msg_` and the
    /// UUID's 32 hex digits.
    pub fn webhook_id(&self) -> String {
        format!("msg_{}", self.0.simple())
    }
}

/// What kind of receiver a target is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A generic webhook, signed the Standard Webhooks way.
    Webhook,
    /// A Slack incoming webhook (Block Kit message).
    Slack,
    /// A Discord webhook (embeds).
    Discord,
    /// An email address, sent to over SMTP.
    Email,
}

impl TargetKind {
    pub const ALL: [Self; 4] = [Self::Webhook, Self::Slack, Self::Discord, Self::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    /// Whether the target's address is a URL (every kind but email).
    pub fn takes_url(self) -> bool {
        !matches!(self, Self::Email)
    }
}

/// Something a monitor run can report.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The page or its items changed.
    Changed,
    /// New items appeared.
    NewItems,
    /// A tracked value's condition started to hold.
    ConditionMet,
    /// A smoke check started failing (once per transition).
    Failed,
    /// A smoke check passes again (once per transition).
    Recovered,
}

impl NotifyEvent {
    pub const ALL: [Self; 5] = [
        Self::Changed,
        Self::NewItems,
        Self::ConditionMet,
        Self::Failed,
        Self::Recovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::NewItems => "new_items",
            Self::ConditionMet => "condition_met",
            Self::Failed => "failed",
            Self::Recovered => "recovered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == s)
    }
}

impl fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One target a monitor notifies, and of what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub target: TargetId,
    /// The events this target receives: changed, new_items, condition_met,
    /// failed, recovered.
    #[schema(min_items = 1, max_items = 5)]
    pub events: BTreeSet<NotifyEvent>,
}

/// Checks a monitor's `notify` list: at most [`MAX_SUBSCRIPTIONS`], each
/// target once, each with an event. Whether each target exists in the
/// monitor's workspace is checked against the store by the caller.
pub fn check_subscriptions(notify: &[Subscription]) -> Result<(), ValidationError> {
    if notify.len() > MAX_SUBSCRIPTIONS {
        return Err(invalid(
            "notify",
            format!("at most {MAX_SUBSCRIPTIONS} targets"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, sub) in notify.iter().enumerate() {
        if !seen.insert(sub.target) {
            return Err(invalid(
                format!("notify[{i}].target"),
                format!("target {} is named twice", sub.target),
            ));
        }
        if sub.events.is_empty() {
            return Err(invalid(
                format!("notify[{i}].events"),
                "name at least one event: changed, new_items, condition_met, failed, recovered",
            ));
        }
    }
    Ok(())
}

/// An email address: `local@domain`, checked for shape only (delivery is
/// the proof).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<EmailAddress> for String {
    fn from(address: EmailAddress) -> Self {
        address.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl FromStr for EmailAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_EMAIL_BYTES {
            return Err(format!(
                "an email address is at most {MAX_EMAIL_BYTES} bytes"
            ));
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err(format!("{text:?} is not an email address: it has no @"));
        };
        let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',');
        if local.is_empty() || local.chars().any(|c| bad(c) || c == '@') {
            return Err(format!("{text:?} is not an email address: bad local part"));
        }
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if domain.is_empty() || !labels_ok {
            return Err(format!("{text:?} is not an email address: bad domain"));
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The recipients of an email target: one to [`MAX_EMAIL_RECIPIENTS`]
/// addresses, each once, written comma-separated (`a@example.com,
/// b@example.com`) on the wire and in the store. An address cannot contain
/// a comma ([`EmailAddress`] refuses one), so the list reads back as
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRecipients {
    /// As written back: the addresses joined by `", "`.
    text: String,
    addresses: Vec<EmailAddress>,
}

impl EmailRecipients {
    /// Never empty.
    pub fn addresses(&self) -> &[EmailAddress] {
        &self.addresses
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for EmailRecipients {
    type Err = String;

    /// Parses `a@x, b@y`; an error names the recipient at fault.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_EMAIL_LIST_BYTES {
            return Err(format!("at most {MAX_EMAIL_LIST_BYTES} bytes"));
        }
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() > MAX_EMAIL_RECIPIENTS {
            return Err(format!(
                "at most {MAX_EMAIL_RECIPIENTS} recipients, comma-separated"
            ));
        }
        let mut addresses: Vec<EmailAddress> = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return Err(format!("recipient {} is empty", i + 1));
            }
            let address: EmailAddress = part.parse().map_err(|err| {
                if parts.len() == 1 {
                    err
                } else {
                    format!("recipient {}: {err}", i + 1)
                }
            })?;
            if addresses
                .iter()
                .any(|seen| seen.as_str().eq_ignore_ascii_case(address.as_str()))
            {
                return Err(format!("{address} is named twice"));
            }
            addresses.push(address);
        }
        let text = addresses
            .iter()
            .map(EmailAddress::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self { text, addresses })
    }
}

/// Where a target sends: a URL, or email addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetAddress {
    Url(Url),
    Email(EmailRecipients),
}

impl TargetAddress {
    /// As stored.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Url(url) => url.as_str(),
            Self::Email(address) => address.as_str(),
        }
    }

    /// Reads a stored address back for a target of `kind`.
    pub fn parse(kind: TargetKind, text: &str) -> Result<Self, String> {
        if kind.takes_url() {
            Url::parse(text)
                .map(Self::Url)
                .map_err(|err| err.to_string())
        } else {
            text.parse().map(Self::Email)
        }
    }
}

fn check_target_name(name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(invalid("name", "must not be blank"));
    }
    if name.len() > MAX_TARGET_NAME_BYTES {
        return Err(invalid(
            "name",
            format!("at most {MAX_TARGET_NAME_BYTES} bytes"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "must not contain control characters"));
    }
    Ok(())
}

fn parse_url(text: &str) -> Result<Url, ValidationError> {
    if text.len() > MAX_TARGET_URL_BYTES {
        return Err(invalid(
            "url",
            format!("at most {MAX_TARGET_URL_BYTES} bytes"),
        ));
    }
    let url = Url::parse(text).map_err(|err| invalid("url", format!("{text:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "url",
            format!(
                "the scheme {:?} is not allowed: use https (or http)",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("url", "must not carry a user name or password"));
    }
    Ok(url)
}

/// The address members of a target request, checked against its kind.
fn parse_address(
    kind: TargetKind,
    url: Option<&str>,
    email: Option<&str>,
) -> Result<TargetAddress, ValidationError> {
    match (kind.takes_url(), url, email) {
        (true, Some(url), None) => parse_url(url).map(TargetAddress::Url),
        (true, _, Some(_)) => Err(invalid(
            "email",
            format!("a {} target takes a `url`, not an `email`", kind.as_str()),
        )),
        (true, None, None) => Err(invalid(
            "url",
            format!("a {} target needs a `url`", kind.as_str()),
        )),
        (false, None, Some(email)) => email
            .parse()
            .map(TargetAddress::Email)
            .map_err(|m| invalid("email", m)),
        (false, Some(_), _) => Err(invalid(
            "url",
            "an email target takes an `email`, not a `url`",
        )),
        (false, None, None) => Err(invalid("email", "an email target needs an `email`")),
    }
}

/// `POST /api/v1/notification-targets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTarget {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub kind: TargetKind,
    /// For webhook, slack and discord targets: where to POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Uri, max_length = 2048)]
    pub url: Option<String>,
    /// For email targets: the recipients, comma-separated (1 to 10
    /// addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 3,
        max_length = 2600,
        examples("ops@example.com, oncall@example.com")
    )]
    pub email: Option<String>,
}

impl NewTarget {
    /// Checks the name and parses the address for the kind. Errors name
    /// the field (`name`, `url`, `email`).
    pub fn validate(&self) -> Result<TargetAddress, ValidationError> {
        check_target_name(&self.name)?;
        parse_address(self.kind, self.url.as_deref(), self.email.as_deref())
    }
}

/// `PATCH /api/v1/notification-targets/{id}`: the members to change.
/// Resuming (`"paused": false`) also clears the failure count.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Uri, max_length = 2048)]
    pub url: Option<String>,
    /// For email targets: the recipients, comma-separated (1 to 10
    /// addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 3, max_length = 2600)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

impl TargetPatch {
    /// Applies the patch to `target`, checked like a new target.
    pub fn apply(&self, target: &Target) -> Result<Target, ValidationError> {
        let mut next = target.clone();
        if let Some(name) = &self.name {
            check_target_name(name)?;
            next.name = name.clone();
        }
        if self.url.is_some() || self.email.is_some() {
            next.address = parse_address(target.kind, self.url.as_deref(), self.email.as_deref())?;
        }
        if let Some(paused) = self.paused {
            if !paused {
                next.paused_reason = None;
                next.consecutive_failures = 0;
            } else if !target.paused {
                next.paused_reason = Some("paused by a user".to_owned());
            }
            next.paused = paused;
        }
        Ok(next)
    }
}

/// A webhook signing secret: `whsec_` and the base64 of its key bytes
/// (Standard Webhooks). Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// The secret made of `key` (random bytes from the caller).
    pub fn from_key(key: &[u8]) -> Self {
        Self(format!(
            "{SECRET_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        ))
    }

    /// The secret as written (`whsec_...`), to show once and to store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the base64 after the prefix, decoded.
    pub fn key(&self) -> Vec<u8> {
        let text = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    }
}

impl FromStr for WebhookSecret {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let body = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("a signing secret starts with {SECRET_PREFIX}"))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|err| format!("a signing secret is base64 after its prefix: {err}"))?;
        if key.is_empty() {
            return Err("a signing secret has a key".to_owned());
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// A secret being replaced, still accepted until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: WebhookSecret,
    pub until: DateTime<Utc>,
}

/// A stored target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: TargetId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub kind: TargetKind,
    pub address: TargetAddress,
    /// Webhooks only. Stored as is until the credential vault exists (then
    /// encrypted at rest with the other secrets).
    pub secret: Option<WebhookSecret>,
    pub previous_secret: Option<PreviousSecret>,
    pub paused: bool,
    /// Why it is paused (by a user, or after failing too often).
    pub paused_reason: Option<String>,
    /// Failed attempts since the last delivered one.
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Target {
    /// The secrets to sign with at `now`: the current one, then the previous
    /// one while its grace period lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&WebhookSecret> {
        let mut secrets: Vec<&WebhookSecret> = self.secret.iter().collect();
        if let Some(previous) = &self.previous_secret {
            if previous.until > now {
                secrets.push(&previous.secret);
            }
        }
        secrets
    }
}

/// A target as shown (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetView {
    pub id: TargetId,
    pub name: String,
    pub kind: TargetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For email targets: the recipients, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    pub consecutive_failures: u32,
    /// While a rotated-out secret is still accepted: until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Target> for TargetView {
    fn from(t: &Target) -> Self {
        let (url, email) = match &t.address {
            TargetAddress::Url(url) => (Some(url.to_string()), None),
            TargetAddress::Email(email) => (None, Some(email.as_str().to_owned())),
        };
        Self {
            id: t.id,
            name: t.name.clone(),
            kind: t.kind,
            url,
            email,
            paused: t.paused,
            paused_reason: t.paused_reason.clone(),
            consecutive_failures: t.consecutive_failures,
            previous_secret_valid_until: t.previous_secret.as_ref().map(|p| p.until),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// The answer to creating a webhook target or rotating its secret: the
/// only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedTarget {
    pub target: TargetView,
    /// The signing secret (`whsec_...`), for webhook targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `GET /api/v1/notification-targets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetList {
    pub items: Vec<TargetView>,
}

/// What a message says, kept in the outbox with it: enough to format it
/// for any channel without reading the run again (the run may be pruned or
/// its monitor deleted before the last retry). Versioned: it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notice {
    /// Always 1.
    pub version: u32,
    pub monitor: NoticeMonitor,
    /// Absent in a test message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<NoticeRun>,
    /// The run's `RunOutcome` as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
    /// A sample sent by `POST .../test`.
    #[serde(default)]
    pub test: bool,
}

/// The monitor a notice is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NoticeMonitor {
    pub id: MonitorId,
    pub name: String,
    pub workflow: WorkflowKind,
    #[schema(format = Uri)]
    pub url: String,
}

/// The run a notice is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NoticeRun {
    pub id: i64,
    pub slot: DateTime<Utc>,
    pub trigger: RunTrigger,
    pub finished_at: DateTime<Utc>,
}

/// Where a message stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first or next attempt.
    Pending,
    Delivered,
    /// Every attempt failed, or the target refuses it for good.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// One try at delivering a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first try.
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status (for email, the SMTP reply code), when
    /// it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub delivered: bool,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the receiver's answer (bounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

/// One message and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: MessageId,
    /// The `webhook-id` the receiver sees.
    pub webhook_id: String,
    pub target_id: TargetId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_id: Option<MonitorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    pub events: BTreeSet<NotifyEvent>,
    pub test: bool,
    pub state: DeliveryState,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub attempts: Vec<AttemptView>,
}

/// `GET .../deliveries`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    /// Pass as `before` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<MessageId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(new: &NewTarget, expected: Result<&str, (&str, &str)>) {
        let got = new
            .validate()
            .map(|address| address.as_str().to_owned())
            .map_err(|err| (err.field, err.message));
        match expected {
            Ok(address) => assert_eq!(got, Ok(address.to_owned()), "{new:?}"),
            Err((field, message)) => {
                let (got_field, got_message) = got.expect_err("should be refused");
                assert_eq!(got_field, field, "{new:?}");
                assert!(
                    got_message.contains(message),
                    "{got_message:?} should contain {message:?}"
                );
            }
        }
    }

    fn target(kind: TargetKind, url: Option<&str>, email: Option<&str>) -> NewTarget {
        NewTarget {
            name: "ops".to_owned(),
            kind,
            url: url.map(str::to_owned),
            email: email.map(str::to_owned),
        }
    }

    #[test]
    fn addresses_are_parsed_for_their_kind() {
        use TargetKind::*;
        check(
            &target(Webhook, Some("https://example.com/hook"), None),
            Ok("https://example.com/hook"),
        );
        check(
            &target(Slack, Some("https://hooks.slack.com/services/T/B/X"), None),
            Ok("https://hooks.slack.com/services/T/B/X"),
        );
        check(
            &target(Email, None, Some("ops@example.com")),
            Ok("ops@example.com"),
        );
        check(
            &target(Webhook, Some("not a url"), None),
            Err(("url", "relative URL")),
        );
        check(
            &target(Webhook, Some("ftp://example.com/"), None),
            Err(("url", "scheme")),
        );
        check(
            &target(Webhook, Some("https://u:p@example.com/"), None),
            Err(("url", "password")),
        );
        check(&target(Discord, None, None), Err(("url", "needs a `url`")));
        check(
            &target(Webhook, None, Some("a@b.c")),
            Err(("email", "takes a `url`")),
        );
        check(&target(Email, None, Some("nobody")), Err(("email", "no @")));
        check(
            &target(Email, None, Some("a b@example.com")),
            Err(("email", "local part")),
        );
        check(
            &target(Email, None, Some("a@exa mple.com")),
            Err(("email", "bad domain")),
        );
        check(
            &target(Email, None, Some("a@")),
            Err(("email", "bad domain")),
        );
        check(
            &target(Email, None, Some("a@example.com,b@example.org")),
            Ok("a@example.com, b@example.org"),
        );
        check(
            &target(Email, None, Some("a@example.com, nobody")),
            Err(("email", "recipient 2: \"nobody\" is not an email address")),
        );
        check(
            &target(Email, None, Some("a@example.com,,b@example.com")),
            Err(("email", "recipient 2 is empty")),
        );
        check(
            &target(Email, None, Some("a@example.com, A@example.com")),
            Err(("email", "named twice")),
        );
        let many = ["x@example.com"; MAX_EMAIL_RECIPIENTS + 1].join(",");
        check(
            &target(Email, None, Some(&many)),
            Err(("email", "at most 10 recipients")),
        );
        check(
            &target(Email, Some("https://x.y/"), None),
            Err(("url", "takes an `email`")),
        );
        let mut blank = target(Webhook, Some("https://example.com/"), None);
        blank.name = " ".to_owned();
        check(&blank, Err(("name", "blank")));
    }

    #[test]
    fn an_unknown_event_names_its_field() {
        let body = r#"{"target": "0192b0a0-0000-7000-8000-000000000000", "events": ["changed", "exploded"]}"#;
        let mut de = serde_json::Deserializer::from_str(body);
        let err = serde_path_to_error::deserialize::<_, Subscription>(&mut de).unwrap_err();
        assert_eq!(err.path().to_string(), "events[1]");
        assert!(err.to_string().contains("exploded"), "{err}");
    }

    #[test]
    fn subscriptions_are_bounded_and_name_each_target_once() {
        let id = TargetId::new();
        let sub = |target| Subscription {
            target,
            events: [NotifyEvent::Changed].into_iter().collect(),
        };
        assert_eq!(check_subscriptions(&[sub(id)]), Ok(()));
        assert_eq!(
            check_subscriptions(&[sub(id), sub(id)]).unwrap_err().field,
            "notify[1].target"
        );
        let empty = Subscription {
            target: id,
            events: BTreeSet::new(),
        };
        assert_eq!(
            check_subscriptions(&[empty]).unwrap_err().field,
            "notify[0].events"
        );
        let many: Vec<_> = (0..=MAX_SUBSCRIPTIONS)
            .map(|_| sub(TargetId::new()))
            .collect();
        assert_eq!(check_subscriptions(&many).unwrap_err().field, "notify");
    }

    #[test]
    fn a_secret_round_trips_and_hides_in_debug() {
        let secret = WebhookSecret::from_key(b"0123456789abcdef");
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.key(), b"0123456789abcdef");
        assert_eq!(secret.expose().parse::<WebhookSecret>(), Ok(secret.clone()));
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
        assert!("nope".parse::<WebhookSecret>().is_err());
    }

    #[test]
    fn the_previous_secret_signs_only_during_its_grace_period() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let target = Target {
            id: TargetId::new(),
            workspace_id: WorkspaceId::DEFAULT,
            name: "t".to_owned(),
            kind: TargetKind::Webhook,
            address: TargetAddress::Url(Url::parse("https://example.com/").unwrap()),
            secret: Some(WebhookSecret::from_key(b"new")),
            previous_secret: Some(PreviousSecret {
                secret: WebhookSecret::from_key(b"old"),
                until: now + chrono::Duration::hours(1),
            }),
            paused: false,
            paused_reason: None,
            consecutive_failures: 0,
            created_at: now,
            updated_at: now,
        };
        assert_eq!(target.signing_secrets(now).len(), 2);
        assert_eq!(
            target.signing_secrets(now + chrono::Duration::hours(2)),
            vec![&WebhookSecret::from_key(b"new")]
        );
    }

    #[test]
    fn the_webhook_id_is_stable_text() {
        let id = MessageId::from_uuid(uuid::Uuid::from_u128(
            0x0192_b0a0_0000_7000_8000_0000_0000_0001,
        ));
        assert_eq!(id.webhook_id(), "msg_0192b0a0000070008000000000000001");
    }
}
