//! The page's console: every `console.*` call and uncaught exception, kept
//! for `console.json` and for `assert` `no_console_errors`.
//!
//! A task per page reads the Runtime events as they come, so a page that
//! logs in a loop costs a bounded amount of memory: the first
//! `max_entries` messages are kept, the rest only counted. The job asks it
//! for a snapshot (an assert) or for the final log (the end of the run).

use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown, RemoteObject,
};
use chromiumoxide::listeners::EventStream;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Longest text kept per message.
const MAX_TEXT_CHARS: usize = 2_000;

/// What the page logged.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct ConsoleLog {
    pub entries: Vec<ConsoleEntry>,
    /// Messages past the limit, not kept.
    pub dropped: u64,
    /// Errors (`console.error`, `console.assert` failures, uncaught
    /// exceptions), kept or not.
    pub errors: u64,
}

/// One message.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ConsoleEntry {
    /// `log`, `info`, `warning`, `error`, `debug`, ... or `exception`.
    pub level: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: f64,
}

impl ConsoleLog {
    pub fn first_error(&self) -> Option<&ConsoleEntry> {
        self.entries
            .iter()
            .find(|entry| entry.level == "error" || entry.level == "exception")
    }

    fn push(&mut self, entry: ConsoleEntry, max_entries: usize) {
        if entry.level == "error" || entry.level == "exception" {
            self.errors += 1;
        }
        if self.entries.len() < max_entries {
            // Calls and exceptions come on two streams, each in order but
            // read in either order: keep the page's own order by timestamp.
            let at = self
                .entries
                .partition_point(|kept| kept.timestamp_ms <= entry.timestamp_ms);
            self.entries.insert(at, entry);
        } else {
            self.dropped += 1;
        }
    }
}

/// The handle the job keeps; dropping it ends the task.
#[derive(Debug)]
pub(super) struct Console {
    requests: mpsc::UnboundedSender<oneshot::Sender<ConsoleLog>>,
}

impl Console {
    /// Starts reading the page's console events.
    pub fn start(
        calls: EventStream<EventConsoleApiCalled>,
        exceptions: EventStream<EventExceptionThrown>,
        max_entries: usize,
    ) -> Self {
        let (requests, mut asks) = mpsc::unbounded_channel::<oneshot::Sender<ConsoleLog>>();
        tokio::spawn(async move {
            let mut log = ConsoleLog::default();
            let mut calls = calls.fuse();
            let mut exceptions = exceptions.fuse();
            loop {
                tokio::select! {
                    Some(call) = calls.next() => log.push(call_entry(&call), max_entries),
                    Some(exception) = exceptions.next() => log.push(exception_entry(&exception), max_entries),
                    ask = asks.recv() => {
                        let Some(reply) = ask else { break };
                        // What the connection has delivered so far is part
                        // of the answer: drain it first.
                        while let Some(Some(call)) = calls.next().now_or_never() {
                            log.push(call_entry(&call), max_entries);
                        }
                        while let Some(Some(exception)) = exceptions.next().now_or_never() {
                            log.push(exception_entry(&exception), max_entries);
                        }
                        let _ = reply.send(log.clone());
                    }
                    else => break,
                }
            }
        });
        Self { requests }
    }

    /// Everything logged so far (empty if the page is gone).
    pub async fn snapshot(&self) -> ConsoleLog {
        let (reply, log) = oneshot::channel();
        if self.requests.send(reply).is_err() {
            return ConsoleLog::default();
        }
        log.await.unwrap_or_default()
    }
}

fn call_entry(call: &EventConsoleApiCalled) -> ConsoleEntry {
    let level = match call.r#type {
        ConsoleApiCalledType::Error => "error",
        ConsoleApiCalledType::Assert => "error",
        ConsoleApiCalledType::Warning => "warning",
        ConsoleApiCalledType::Info => "info",
        ConsoleApiCalledType::Debug => "debug",
        _ => "log",
    };
    let text = call.args.iter().map(describe).collect::<Vec<_>>().join(" ");
    let frame = call
        .stack_trace
        .as_ref()
        .and_then(|trace| trace.call_frames.first());
    ConsoleEntry {
        level: level.to_owned(),
        text: cut(text),
        url: frame
            .map(|frame| frame.url.clone())
            .filter(|url| !url.is_empty()),
        line: frame.map(|frame| frame.line_number + 1),
        timestamp_ms: *call.timestamp.inner(),
    }
}

fn exception_entry(event: &EventExceptionThrown) -> ConsoleEntry {
    let details = &event.exception_details;
    let text = details
        .exception
        .as_ref()
        .and_then(|exception| exception.description.clone())
        .unwrap_or_else(|| details.text.clone());
    ConsoleEntry {
        level: "exception".to_owned(),
        text: cut(text),
        url: details.url.clone().filter(|url| !url.is_empty()),
        line: Some(details.line_number + 1),
        timestamp_ms: *event.timestamp.inner(),
    }
}

/// A console argument as the DevTools console would print it, roughly.
fn describe(arg: &RemoteObject) -> String {
    match (&arg.value, &arg.description, &arg.unserializable_value) {
        (Some(serde_json::Value::String(text)), _, _) => text.clone(),
        (Some(value), _, _) => value.to_string(),
        (None, _, Some(value)) => value.inner().clone(),
        (None, Some(description), None) => description.clone(),
        (None, None, None) => format!("{:?}", arg.r#type).to_lowercase(),
    }
}

fn cut(mut text: String) -> String {
    if let Some((at, _)) = text.char_indices().nth(MAX_TEXT_CHARS) {
        text.truncate(at);
        text.push('…');
    }
    text
}
