//! Atom feeds (RFC 4287) of monitor events: a workspace's or one
//! monitor's newest runs that reported something, each entry telling what
//! happened the way an email does (title, summary, the diff as escaped
//! HTML content). Pure: the store reads the entries, the API serves them.
//!
//! Ids are stable URNs (`urn:accord:monitor:<id>:run:<run>`), so a feed
//! reader shows each run once however often it polls. Text is escaped
//! for XML, and characters XML 1.0 cannot carry (most control
//! characters) are dropped.

use std::fmt::Write as _;

use accord_model::{Notice, NoticeMonitor, NoticeRun, RunTrigger};
use accord_store::FeedEntry;
use chrono::{DateTime, SecondsFormat, Utc};
use url::Url;

use crate::email::html_fragment;
use crate::payload::WebhookPayload;

/// What a feed is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMeta {
    /// A stable URN.
    pub id: String,
    pub title: String,
    /// The feed's own URL, when the control plane knows its public URL.
    pub self_url: Option<String>,
    /// When there are no entries: the feed's `updated`.
    pub empty_updated: DateTime<Utc>,
}

/// The feed id of a workspace.
pub fn workspace_feed_id(workspace: &str) -> String {
    format!("urn:accord:workspace:{workspace}:events")
}

/// The feed id of a monitor.
pub fn monitor_feed_id(monitor: &str) -> String {
    format!("urn:accord:monitor:{monitor}:events")
}

/// The entry id of a run.
pub fn entry_id(monitor: &str, run: i64) -> String {
    format!("urn:accord:monitor:{monitor}:run:{run}")
}

/// Escapes text for XML content and attributes, dropping characters XML
/// 1.0 does not allow.
pub fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The payload an entry is rendered from: the same digest a webhook
/// carries, so every channel tells a run alike.
fn payload_of(entry: &FeedEntry, public_url: Option<&Url>) -> WebhookPayload {
    let notice = Notice {
        version: 1,
        monitor: NoticeMonitor {
            id: entry.monitor_id,
            name: entry.monitor_name.clone(),
            workflow: entry.workflow,
            url: entry.monitor_url.clone(),
        },
        run: Some(NoticeRun {
            id: entry.run_id,
            slot: entry.finished_at,
            // Not shown in a feed.
            trigger: RunTrigger::Schedule,
            finished_at: entry.finished_at,
        }),
        outcome: Some(entry.outcome.clone()),
        test: false,
    };
    WebhookPayload::new(&notice, &entry.events, entry.finished_at, public_url)
}

/// The Atom document of `entries` (newest first).
pub fn render_feed(meta: &FeedMeta, entries: &[FeedEntry], public_url: Option<&Url>) -> String {
    let updated = entries
        .iter()
        .map(|entry| entry.finished_at)
        .max()
        .unwrap_or(meta.empty_updated);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    xml.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let _ = writeln!(xml, "  <id>{}</id>", xml_text(&meta.id));
    let _ = writeln!(xml, "  <title>{}</title>", xml_text(&meta.title));
    let _ = writeln!(xml, "  <updated>{}</updated>", time(updated));
    xml.push_str("  <author><name>Accord</name></author>\n");
    let _ = writeln!(
        xml,
        "  <generator version=\"{}\">Accord</generator>",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(url) = &meta.self_url {
        let _ = writeln!(
            xml,
            "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>",
            xml_text(url)
        );
    }
    for entry in entries {
        let payload = payload_of(entry, public_url);
        xml.push_str("  <entry>\n");
        let _ = writeln!(
            xml,
            "    <id>{}</id>",
            entry_id(&entry.monitor_id.to_string(), entry.run_id)
        );
        let _ = writeln!(xml, "    <title>{}</title>", xml_text(&payload.title()));
        let _ = writeln!(xml, "    <updated>{}</updated>", time(entry.finished_at));
        for event in &entry.events {
            let _ = writeln!(xml, "    <category term=\"{}\"/>", event.as_str());
        }
        if let Some(link) = payload.data.run.as_ref().and_then(|r| r.link.as_ref()) {
            let _ = writeln!(
                xml,
                "    <link rel=\"alternate\" href=\"{}\"/>",
                xml_text(link)
            );
        }
        let mut summary = payload.text_lines().join("\n");
        if summary.is_empty() {
            summary = payload.title();
        }
        let _ = writeln!(
            xml,
            "    <summary type=\"text\">{}</summary>",
            xml_text(&summary)
        );
        let _ = writeln!(
            xml,
            "    <content type=\"html\">{}</content>",
            xml_text(&html_fragment(&payload))
        );
        xml.push_str("  </entry>\n");
    }
    xml.push_str("</feed>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use accord_model::{MonitorId, NotifyEvent, WorkflowKind};
    use accord_test_support::parse_atom;

    fn entry(run_id: i64, name: &str) -> FeedEntry {
        FeedEntry {
            monitor_id: MonitorId::from_uuid(uuid::Uuid::from_u128(7)),
            monitor_name: name.to_owned(),
            workflow: WorkflowKind::PageChange,
            monitor_url: "https://example.com/?a=1&b=2".to_owned(),
            run_id,
            finished_at: DateTime::from_timestamp(1_800_000_000 + run_id, 0).unwrap(),
            events: [NotifyEvent::Changed].into_iter().collect(),
            outcome: serde_json::json!({"not": "a run outcome"}),
        }
    }

    #[test]
    fn a_feed_is_well_formed_with_stable_ids_and_escaped_text() {
        let meta = FeedMeta {
            id: monitor_feed_id("m"),
            title: "Accord: <Shop> & co".to_owned(),
            self_url: Some("https://accord.example.com/feeds/t/workspace.atom".to_owned()),
            empty_updated: DateTime::from_timestamp(0, 0).unwrap(),
        };
        let public = Url::parse("https://accord.example.com/").unwrap();
        let xml = render_feed(
            &meta,
            &[entry(2, "Shop <b>\u{1}"), entry(1, "Shop")],
            Some(&public),
        );
        let feed = parse_atom(&xml).unwrap();
        assert_eq!(feed.id, "urn:accord:monitor:m:events");
        assert_eq!(feed.title, "Accord: <Shop> & co");
        assert_eq!(feed.updated, "2027-01-15T08:00:02Z");
        assert_eq!(
            feed.links,
            ["https://accord.example.com/feeds/t/workspace.atom"]
        );
        let monitor = uuid::Uuid::from_u128(7);
        let ids: Vec<&str> = feed.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                format!("urn:accord:monitor:{monitor}:run:2"),
                format!("urn:accord:monitor:{monitor}:run:1"),
            ]
        );
        let first = &feed.entries[0];
        assert_eq!(first.title, "Shop <b>: changed");
        assert_eq!(first.categories, ["changed"]);
        assert_eq!(
            first.links,
            [format!(
                "https://accord.example.com/api/v1/monitors/{monitor}/runs/2"
            )]
        );
        let content = first.content.as_deref().unwrap();
        assert!(
            content.contains("https://example.com/?a=1&amp;b=2"),
            "{content}"
        );
        assert!(
            content.contains("<p>Shop &lt;b&gt; (page_change)"),
            "{content}"
        );
    }

    #[test]
    fn an_empty_feed_is_updated_at_its_fallback() {
        let meta = FeedMeta {
            id: workspace_feed_id("w"),
            title: "t".to_owned(),
            self_url: None,
            empty_updated: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        let feed = parse_atom(&render_feed(&meta, &[], None)).unwrap();
        assert_eq!(feed.updated, "2027-01-15T08:00:00Z");
        assert!(feed.entries.is_empty());
    }

    #[test]
    fn xml_text_drops_what_xml_cannot_carry() {
        assert_eq!(xml_text("a\u{0}b\u{1b}c\td'"), "abc\td&apos;");
    }
}
