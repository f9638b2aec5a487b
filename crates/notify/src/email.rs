//! The email of a notification: a subject naming the monitor and its
//! events, a plain-text body and its HTML alternative, both with the diff,
//! the new items, the failed checks, the tracked values and the link to
//! the run. Pure: the SMTP side is [`crate::smtp`].
//!
//! Everything that comes from a page (the diff, item fields, check
//! messages) or from a user (the monitor's name and URL) is escaped in the
//! HTML part: a page that contains `<script>` shows it as text.

use std::fmt::Write as _;

use crate::payload::WebhookPayload;

/// What an email says, ready for the SMTP side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    /// One line, control characters removed.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The longest subject, in characters (longer ones are cut with `…`).
pub const MAX_SUBJECT_CHARS: usize = 200;

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn subject(payload: &WebhookPayload) -> String {
    let line: String = format!("[Accord] {}", payload.title())
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() <= MAX_SUBJECT_CHARS {
        line
    } else {
        let mut cut: String = line.chars().take(MAX_SUBJECT_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// The email of a payload (the same payload a webhook would carry).
pub fn email_content(payload: &WebhookPayload) -> EmailContent {
    EmailContent {
        subject: subject(payload),
        text: text_body(payload),
        html: html_body(payload),
    }
}

fn about(payload: &WebhookPayload) -> String {
    let monitor = &payload.data.monitor;
    let mut about = format!(
        "{} ({}) watches {}",
        monitor.name, monitor.workflow, monitor.url
    );
    if let Some(run) = &payload.data.run {
        let _ = write!(
            about,
            "; run {} finished at {}",
            run.id,
            run.finished_at.to_rfc3339()
        );
    }
    about
}

fn diff_lines(payload: &WebhookPayload) -> Option<(&[String], bool)> {
    let diff = payload.data.summary.diff.as_ref()?;
    (!diff.lines.is_empty()).then_some((diff.lines.as_slice(), diff.truncated))
}

fn text_body(payload: &WebhookPayload) -> String {
    let mut text = format!("{}\n\n{}\n", payload.title(), about(payload));
    let lines = payload.text_lines();
    if !lines.is_empty() {
        text.push('\n');
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    if let Some((diff, truncated)) = diff_lines(payload) {
        text.push_str("\nDiff:\n");
        for line in diff {
            text.push_str(line);
            text.push('\n');
        }
        if truncated {
            text.push_str("…\n");
        }
    }
    if let Some(link) = payload.data.run.as_ref().and_then(|r| r.link.as_deref()) {
        let _ = write!(text, "\nFull result: {link}\n");
    }
    if payload.data.test {
        text.push_str("\nThis is a test message sent from Accord.\n");
    }
    text
}

/// A diff line's style: green for added, red for removed.
fn diff_style(line: &str) -> &'static str {
    match line.chars().next() {
        Some('+') => "background:#e6ffec;color:#1a7f37",
        Some('-') => "background:#ffebe9;color:#cf222e",
        _ => "color:#57606a",
    }
}

fn html_body(payload: &WebhookPayload) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif\">\n",
    );
    let _ = writeln!(html, "<h2>{}</h2>", html_escape(&payload.title()));
    html.push_str(&html_fragment(payload));
    html.push_str("</body></html>\n");
    html
}

/// The body of the HTML part without its title: what happened, the diff
/// and the link, every text escaped. Atom entries carry it as content.
pub fn html_fragment(payload: &WebhookPayload) -> String {
    let mut html = String::new();
    let _ = writeln!(html, "<p>{}</p>", html_escape(&about(payload)));
    let lines = payload.text_lines();
    if !lines.is_empty() {
        html.push_str("<ul>\n");
        for line in &lines {
            let _ = writeln!(html, "<li>{}</li>", html_escape(line));
        }
        html.push_str("</ul>\n");
    }
    if let Some((diff, truncated)) = diff_lines(payload) {
        html.push_str("<h3>Diff</h3>\n<pre style=\"font-family:monospace;font-size:13px\">");
        for line in diff {
            let _ = writeln!(
                html,
                "<span style=\"{}\">{}</span>",
                diff_style(line),
                html_escape(line)
            );
        }
        if truncated {
            html.push_str("…\n");
        }
        html.push_str("</pre>\n");
    }
    if let Some(link) = payload.data.run.as_ref().and_then(|r| r.link.as_deref()) {
        let _ = writeln!(
            html,
            "<p><a href=\"{0}\">Full result in Accord</a></p>",
            html_escape(link)
        );
    }
    if payload.data.test {
        html.push_str("<p>This is a test message sent from Accord.</p>\n");
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{DiffDigest, PayloadData, PayloadMonitor, PayloadRun};
    use accord_model::NotifyEvent;
    use chrono::DateTime;

    fn payload(name: &str, lines: &[&str]) -> WebhookPayload {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        WebhookPayload {
            kind: "monitor.changed".to_owned(),
            timestamp: at,
            version: 1,
            data: PayloadData {
                events: vec![NotifyEvent::Changed, NotifyEvent::NewItems],
                monitor: PayloadMonitor {
                    id: "m".to_owned(),
                    name: name.to_owned(),
                    workflow: "page_change".to_owned(),
                    url: "https://example.com/?a=1&b=2".to_owned(),
                    link: None,
                },
                run: Some(PayloadRun {
                    id: 7,
                    slot: at,
                    trigger: "schedule".to_owned(),
                    finished_at: at,
                    link: Some("https://accord.example.com/api/v1/monitors/m/runs/7".to_owned()),
                }),
                summary: crate::payload::Digest {
                    changed: true,
                    diff: Some(DiffDigest {
                        added: 1,
                        removed: 1,
                        lines: lines.iter().map(|l| (*l).to_owned()).collect(),
                        truncated: true,
                    }),
                    ..Default::default()
                },
                test: false,
            },
        }
    }

    #[test]
    fn the_subject_names_the_monitor_and_its_events() {
        let email = email_content(&payload("Prices\r\nBcc: x@y", &[]));
        assert_eq!(
            email.subject,
            "[Accord] Prices  Bcc: x@y: changed, new items"
        );
        let long = email_content(&payload(&"n".repeat(400), &[]));
        assert_eq!(long.subject.chars().count(), MAX_SUBJECT_CHARS);
        assert!(long.subject.ends_with('…'));
    }

    #[test]
    fn the_diff_is_escaped_in_html_and_plain_in_text() {
        let email = email_content(&payload(
            "<b>Shop</b>",
            &["-<p>old</p>", "+<script>alert('x')</script>"],
        ));
        assert!(email
            .text
            .contains("\nDiff:\n-<p>old</p>\n+<script>alert('x')</script>\n…\n"));
        assert!(email
            .text
            .contains("Full result: https://accord.example.com/api/v1/monitors/m/runs/7"));
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(email
            .html
            .contains("+&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</span>"));
        assert!(email
            .html
            .contains("<h2>&lt;b&gt;Shop&lt;/b&gt;: changed, new items</h2>"));
        assert!(email.html.contains("https://example.com/?a=1&amp;b=2"));
        assert!(email
            .html
            .contains("<a href=\"https://accord.example.com/api/v1/monitors/m/runs/7\">"));
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
