//! The generic webhook's JSON payload ([`WebhookPayload`], version 1, in
//! the OpenAPI document's `webhooks` section) and the [`Digest`] of a
//! run's outcome every channel shows: diff stats with the first lines of
//! the diff, new items, failed checks and tracked values. Pure.

use std::collections::BTreeSet;

use accord_model::{Notice, NotifyEvent};
use accord_workflows::{RunOutcome, WorkflowOutcome};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

/// Most diff lines a message carries.
pub const MAX_DIFF_LINES: usize = 20;
/// Most new items a message lists.
pub const MAX_ITEMS: usize = 10;
/// Longest text of one line, field or message in a digest, in characters.
pub const MAX_TEXT_CHARS: usize = 300;

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        text.to_owned()
    } else {
        let mut clipped: String = text.chars().take(MAX_TEXT_CHARS - 1).collect();
        clipped.push('…');
        clipped
    }
}

/// What a message says about a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct Digest {
    pub changed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<DiffDigest>,
    pub new_items_count: u32,
    pub removed_items_count: u32,
    pub changed_items_count: u32,
    /// The first new items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_items: Vec<ItemDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<CheckDigest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ValueDigest>,
}

/// Diff stats and the first lines of the unified diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiffDigest {
    pub added: u32,
    pub removed: u32,
    /// The first lines of the unified diff (`+`, `-` or ` ` first).
    pub lines: Vec<String>,
    /// Whether lines were left out.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemDigest {
    pub key: String,
    pub fields: std::collections::BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckDigest {
    /// The check's name (`status`, `text`, ...).
    pub check: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValueDigest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<f64>,
    pub condition_met: bool,
}

impl Digest {
    /// The digest of a stored `RunOutcome`; empty when it cannot be read.
    pub fn of(outcome: Option<&serde_json::Value>) -> Self {
        let Some(outcome) = outcome else {
            return Self::default();
        };
        let Ok(outcome) = serde_json::from_value::<RunOutcome>(outcome.clone()) else {
            return Self::default();
        };
        let summary = outcome.summary;
        let mut digest = Self {
            changed: summary.changed,
            new_items_count: summary.new_items,
            removed_items_count: summary.removed_items,
            changed_items_count: summary.changed_items,
            ..Self::default()
        };
        match &outcome.detail {
            WorkflowOutcome::PageChange(page) => {
                digest.diff = page.diff.as_ref().map(|diff| {
                    let all: Vec<&str> = diff
                        .unified
                        .lines()
                        .filter(|line| !line.starts_with("@@"))
                        .collect();
                    DiffDigest {
                        added: diff.added,
                        removed: diff.removed,
                        lines: all.iter().take(MAX_DIFF_LINES).map(|l| clip(l)).collect(),
                        truncated: diff.truncated || all.len() > MAX_DIFF_LINES,
                    }
                });
                digest.values = page
                    .values
                    .iter()
                    .map(|v| ValueDigest {
                        name: clip(&v.name),
                        value: v.value,
                        previous: v.previous,
                        condition_met: v.condition_met,
                    })
                    .collect();
            }
            WorkflowOutcome::ExtractItems(items) => {
                digest.new_items = items
                    .new
                    .iter()
                    .take(MAX_ITEMS)
                    .map(|item| ItemDigest {
                        key: clip(&item.key),
                        fields: item
                            .fields
                            .iter()
                            .map(|(k, v)| (clip(k), v.as_deref().map(clip)))
                            .collect(),
                    })
                    .collect();
            }
            WorkflowOutcome::SmokeCheck(smoke) => {
                digest.failed_checks = smoke
                    .failed_checks()
                    .map(|check| CheckDigest {
                        check: serde_json::to_value(check.check)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        message: clip(&check.message),
                    })
                    .collect();
            }
        }
        digest
    }
}

/// The monitor a payload is about, with its link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PayloadMonitor {
    pub id: String,
    pub name: String,
    pub workflow: String,
    /// The page it watches.
    pub url: String,
    /// The monitor in Accord's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The run a payload is about, with its link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PayloadRun {
    pub id: i64,
    pub slot: DateTime<Utc>,
    pub trigger: String,
    pub finished_at: DateTime<Utc>,
    /// The full result in Accord's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The `data` of a webhook payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PayloadData {
    /// What happened: changed, new_items, condition_met, failed, recovered
    /// (those this target subscribed to).
    pub events: Vec<NotifyEvent>,
    pub monitor: PayloadMonitor,
    /// Absent in a test message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<PayloadRun>,
    pub summary: Digest,
    /// A sample sent by `POST /api/v1/notification-targets/{id}/test`.
    pub test: bool,
}

/// The body of a generic webhook (Standard Webhooks' `type`, `timestamp`,
/// `data`). The `webhook-id` header is the message's stable id; receivers
/// drop repeats by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookPayload {
    /// `monitor.<first event>` (`monitor.changed`, `monitor.failed`, ...),
    /// or `test`.
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: DateTime<Utc>,
    /// Always 1.
    pub version: u32,
    pub data: PayloadData,
}

/// Links are built from the control plane's public URL, when it has one.
fn link(base: Option<&Url>, path: &str) -> Option<String> {
    base.and_then(|base| base.join(path).ok())
        .map(|url| url.to_string())
}

impl WebhookPayload {
    /// The payload of a message with `events` (those its target asked for).
    pub fn new(
        notice: &Notice,
        events: &BTreeSet<NotifyEvent>,
        timestamp: DateTime<Utc>,
        public_url: Option<&Url>,
    ) -> Self {
        let monitor_path = format!("api/v1/monitors/{}", notice.monitor.id);
        let kind = match (notice.test, events.iter().next()) {
            (true, _) | (false, None) => "test".to_owned(),
            (false, Some(first)) => format!("monitor.{first}"),
        };
        Self {
            kind,
            timestamp,
            version: 1,
            data: PayloadData {
                events: events.iter().copied().collect(),
                monitor: PayloadMonitor {
                    id: notice.monitor.id.to_string(),
                    name: notice.monitor.name.clone(),
                    workflow: notice.monitor.workflow.as_str().to_owned(),
                    url: notice.monitor.url.clone(),
                    link: (!notice.test)
                        .then(|| link(public_url, &monitor_path))
                        .flatten(),
                },
                run: notice.run.as_ref().map(|run| PayloadRun {
                    id: run.id,
                    slot: run.slot,
                    trigger: run.trigger.as_str().to_owned(),
                    finished_at: run.finished_at,
                    link: link(public_url, &format!("{monitor_path}/runs/{}", run.id)),
                }),
                summary: Digest::of(notice.outcome.as_ref()),
                test: notice.test,
            },
        }
    }

    /// A one-line title for chat and email: `<monitor>: changed, new items`.
    pub fn title(&self) -> String {
        if self.data.test {
            return format!("Accord test message for {}", self.data.monitor.name);
        }
        let events: Vec<&str> = self
            .data
            .events
            .iter()
            .map(|event| match event {
                NotifyEvent::Changed => "changed",
                NotifyEvent::NewItems => "new items",
                NotifyEvent::ConditionMet => "condition met",
                NotifyEvent::Failed => "failing",
                NotifyEvent::Recovered => "recovered",
            })
            .collect();
        format!("{}: {}", self.data.monitor.name, events.join(", "))
    }

    /// The digest as lines of plain text (chat and email bodies).
    pub fn text_lines(&self) -> Vec<String> {
        let summary = &self.data.summary;
        let mut lines = Vec::new();
        if let Some(diff) = &summary.diff {
            lines.push(format!("+{} −{} lines", diff.added, diff.removed));
        }
        if summary.new_items_count > 0 || summary.removed_items_count > 0 {
            lines.push(format!(
                "{} new, {} removed, {} changed items",
                summary.new_items_count, summary.removed_items_count, summary.changed_items_count
            ));
        }
        for item in &summary.new_items {
            let fields: Vec<String> = item
                .fields
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}")))
                .collect();
            lines.push(format!("• {} ({})", item.key, fields.join(", ")));
        }
        for check in &summary.failed_checks {
            lines.push(format!("✗ {}: {}", check.check, check.message));
        }
        for value in &summary.values {
            let shown = value
                .value
                .map(|v| v.to_string())
                .unwrap_or_else(|| "none".to_owned());
            lines.push(format!(
                "{} = {}{}",
                value.name,
                shown,
                if value.condition_met {
                    " (condition met)"
                } else {
                    ""
                }
            ));
        }
        lines
    }
}
