//! The audit recorder: one task that writes audit entries and keys'
//! last-used times in batches, so a request never waits on them.
//!
//! Entries wait in a bounded channel (a full channel slows requests down
//! rather than dropping entries). When the database is unavailable the task
//! keeps its batch and retries; on shutdown it drains the channel first.
//! A key's last-used time is written at most once a minute.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use accord_model::{ApiKeyId, Backoff, NewAuditEntry};
use accord_store::Store;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const CHANNEL: usize = 10_000;
const BATCH: usize = 500;
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);
/// The pauses between tries while the store is unavailable.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

#[derive(Debug)]
enum Record {
    Entry(NewAuditEntry),
    Used(ApiKeyId, DateTime<Utc>),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// Sends records to the writer task. Cheap to clone; the task ends once
/// every clone is dropped and what they sent is written.
#[derive(Debug, Clone)]
pub struct AuditRecorder {
    tx: mpsc::Sender<Record>,
}

impl AuditRecorder {
    /// Starts the writer task on the store.
    pub fn start(store: Arc<dyn Store>) -> (AuditRecorder, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let task = tokio::spawn(Writer::new(store).run(rx));
        (AuditRecorder { tx }, task)
    }

    pub(crate) async fn record(&self, entry: NewAuditEntry) {
        if self.tx.send(Record::Entry(entry)).await.is_err() {
            tracing::error!("the audit writer has stopped; an audit entry was not written");
        }
    }

    /// Waits until every entry and last-used time recorded before this call
    /// is written (or, at shutdown, given up on). For tests and shutdown:
    /// requests never wait on the writer.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Record::Flush(done)).await.is_ok() {
            // A writer that stopped has nothing left to write.
            let _ = written.await;
        }
    }

    /// Notes that a key was used; never waits.
    pub(crate) fn used(&self, key: &ApiKeyId, at: DateTime<Utc>) {
        // Losing a last-used update under overload is harmless.
        let _ = self.tx.try_send(Record::Used(key.clone(), at));
    }
}

struct Writer {
    store: Arc<dyn Store>,
    touched: HashMap<ApiKeyId, DateTime<Utc>>,
}

impl Writer {
    fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            touched: HashMap::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Record>) {
        let mut entries = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut used = HashMap::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(record) = next {
                match record {
                    Record::Entry(entry) => entries.push(entry),
                    Record::Used(key, at) => {
                        used.insert(key, at);
                    }
                    Record::Flush(done) => flushes.push(done),
                }
                next = if entries.len() < BATCH {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            self.write_entries(&mut entries, rx.is_closed()).await;
            self.touch(used).await;
            for done in flushes {
                let _ = done.send(());
            }
        }
        self.write_entries(&mut entries, true).await;
    }

    /// Writes the batch, retrying while the store is unavailable. Only at
    /// shutdown does it give up, after a few tries, and say how many were lost.
    async fn write_entries(&mut self, entries: &mut Vec<NewAuditEntry>, closing: bool) {
        let mut backoff = RETRY;
        let mut tries = 0;
        while !entries.is_empty() {
            match self.store.audit_insert(entries).await {
                Ok(()) => entries.clear(),
                Err(err) => {
                    tries += 1;
                    if closing && tries >= 5 {
                        tracing::error!(error = %err, lost = entries.len(), "audit entries could not be written before shutdown");
                        entries.clear();
                        return;
                    }
                    let delay = backoff.next_delay(rand::random());
                    tracing::warn!(error = %err, pending = entries.len(), retry_in_ms = delay.as_millis() as u64, "writing audit entries failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn touch(&mut self, used: HashMap<ApiKeyId, DateTime<Utc>>) {
        for (key, at) in used {
            let due = self
                .touched
                .get(&key)
                .is_none_or(|last| at - *last >= TOUCH_EVERY);
            if !due {
                continue;
            }
            match self.store.api_key_touch(&key, at).await {
                Ok(()) => {
                    self.touched.insert(key, at);
                }
                Err(err) => {
                    tracing::debug!(error = %err, key_id = %key, "recording last use failed")
                }
            }
        }
        // Keys come and go; forget the ones not used for a while.
        if self.touched.len() > 10_000 {
            let newest = self.touched.values().max().copied();
            if let Some(newest) = newest {
                self.touched.retain(|_, at| newest - *at < TOUCH_EVERY);
            }
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}
