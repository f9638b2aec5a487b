//! Slack and Discord incoming-webhook messages: readable blocks and
//! embeds built from a [`WebhookPayload`], within each service's
//! documented limits (Slack: a header's text at most 150 characters, a
//! section's 3,000, at most 50 blocks; Discord: an embed title at most
//! 256 characters, a description 4,096, at most 25 fields). Pure.

use serde_json::{json, Value};

use crate::payload::WebhookPayload;

const SLACK_HEADER_CHARS: usize = 150;
const SLACK_SECTION_CHARS: usize = 3_000;
const DISCORD_TITLE_CHARS: usize = 256;
const DISCORD_DESCRIPTION_CHARS: usize = 4_096;
const DISCORD_FIELD_CHARS: usize = 1_024;

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// The diff lines as a code block, within `max` characters.
fn diff_block(payload: &WebhookPayload, max: usize) -> Option<String> {
    let diff = payload.data.summary.diff.as_ref()?;
    if diff.lines.is_empty() {
        return None;
    }
    let mut body = diff.lines.join("\n");
    if diff.truncated {
        body.push_str("\n…");
    }
    // Fences of the diff itself would end the block early.
    let body = body.replace("```", "'''");
    Some(format!("```diff\n{}\n```", cut(&body, max - 12)))
}

/// A Slack incoming-webhook message (Block Kit), with `text` as the
/// notification's fallback.
pub fn slack_message(payload: &WebhookPayload) -> Value {
    let title = payload.title();
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&title, SLACK_HEADER_CHARS), "emoji": true},
    })];
    let monitor = &payload.data.monitor;
    let mut about = format!("*{}* watches <{}>", monitor.workflow, monitor.url);
    if let Some(run) = &payload.data.run {
        about.push_str(&format!(
            " · run {} at {}",
            run.id,
            run.finished_at.to_rfc3339()
        ));
    }
    blocks.push(json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(&about, SLACK_SECTION_CHARS)},
    }));
    let lines = payload.text_lines();
    if !lines.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&lines.join("\n"), SLACK_SECTION_CHARS)},
        }));
    }
    if let Some(diff) = diff_block(payload, SLACK_SECTION_CHARS) {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": diff},
        }));
    }
    if let Some(link) = payload.data.run.as_ref().and_then(|run| run.link.as_ref()) {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("<{link}|Full result in Accord>")}],
        }));
    }
    json!({"text": title, "blocks": blocks})
}

/// Discord's embed colours: red for failing, green for recovered, blue
/// otherwise.
fn colour(payload: &WebhookPayload) -> u32 {
    use accord_model::NotifyEvent::*;
    if payload.data.events.contains(&Failed) {
        0xD0_30_30
    } else if payload.data.events.contains(&Recovered) {
        0x2E_A0_43
    } else {
        0x3B_82_F6
    }
}

/// A Discord webhook message: one embed.
pub fn discord_message(payload: &WebhookPayload) -> Value {
    let monitor = &payload.data.monitor;
    let mut description = payload.text_lines().join("\n");
    if let Some(diff) = diff_block(payload, DISCORD_DESCRIPTION_CHARS / 2) {
        if !description.is_empty() {
            description.push('\n');
        }
        description.push_str(&diff);
    }
    if description.is_empty() {
        description = format!("{} watches {}", monitor.workflow, monitor.url);
    }
    let mut fields = vec![json!({
        "name": "Page",
        "value": cut(&monitor.url, DISCORD_FIELD_CHARS),
        "inline": false,
    })];
    if let Some(run) = &payload.data.run {
        fields.push(json!({"name": "Run", "value": run.id.to_string(), "inline": true}));
    }
    let mut embed = json!({
        "title": cut(&payload.title(), DISCORD_TITLE_CHARS),
        "description": cut(&description, DISCORD_DESCRIPTION_CHARS),
        "color": colour(payload),
        "fields": fields,
        "timestamp": payload.timestamp.to_rfc3339(),
    });
    if let Some(link) = payload.data.run.as_ref().and_then(|run| run.link.as_ref()) {
        embed["url"] = Value::String(link.clone());
    }
    json!({"username": "Accord", "embeds": [embed]})
}
