//! The [`Queue`] handle: shared by the api's handlers and the maintenance loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use accord_artifacts::BlobStore;
use accord_cluster::{EventBus, JobNotice};
use accord_model::{Clock, Job, JobEvent, JobId, JobState, WorkerId, WorkspaceId};
use accord_store::{CancelOutcome, JobFilter, QueueStats, RetryOutcome, Store};
use tokio::sync::{watch, Notify};

use crate::{QueueConfig, QueueError, QueueMetrics};

/// The job lifecycle. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Queue {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: QueueConfig,
    pub(crate) metrics: Arc<QueueMetrics>,
    /// Woken whenever jobs may have become claimable, so waiting claims look again.
    pub(crate) wake: Notify,
    /// How many claims are waiting for a wake-up right now.
    pub(crate) waiting: watch::Sender<usize>,
    /// When each worker was last heard from: a plain cache for the worker gauge.
    pub(crate) workers_seen: Mutex<HashMap<WorkerId, Instant>>,
    /// Whether this process currently runs the background duties.
    pub(crate) leading: AtomicBool,
    /// Where every state change is announced (to this process's event
    /// streams and, through Redis, to other replicas'). Hints only: the
    /// event log in the store is the record.
    pub(crate) events: EventBus,
    /// Where artifact bytes and manifests go; without one, uploads are
    /// refused and no manifest is written (see [`Queue::with_blobs`]).
    pub(crate) blobs: Option<BlobStore>,
    /// When the blob sweep last ran in this process.
    pub(crate) last_sweep: Mutex<Option<Instant>>,
    /// When this process last forgot expired robots.txt answers.
    pub(crate) last_robots_prune: Mutex<Option<Instant>>,
    /// The egress rules of `config` (policy and allow-list), to refuse at
    /// submission what the engines would refuse anyway without DNS: literal
    /// non-public addresses and loopback names.
    pub(crate) targets: accord_egress::Guard,
}

impl Queue {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: QueueConfig,
        metrics: Arc<QueueMetrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                targets: accord_egress::Guard::new(accord_egress::GuardConfig {
                    policy: config.egress,
                    allow: config.allow_targets.clone(),
                    ..accord_egress::GuardConfig::default()
                }),
                config,
                metrics,
                wake: Notify::new(),
                waiting: watch::Sender::new(0),
                workers_seen: Mutex::new(HashMap::new()),
                leading: AtomicBool::new(false),
                events: EventBus::local(),
                blobs: None,
                last_sweep: Mutex::new(None),
                last_robots_prune: Mutex::new(None),
            }),
        }
    }

    /// Announces state changes on this bus (shared with other replicas
    /// through Redis when configured). Call before sharing the queue.
    pub fn with_events(mut self, events: EventBus) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_events is called before the queue is shared")
            .events = events;
        self
    }

    /// Keeps artifacts and evidence manifests in this blob store. Call
    /// before sharing the queue.
    pub fn with_blobs(mut self, blobs: BlobStore) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_blobs is called before the queue is shared")
            .blobs = Some(blobs);
        self
    }

    pub(crate) fn blobs(&self) -> Result<&BlobStore, QueueError> {
        self.inner.blobs.as_ref().ok_or(QueueError::NoBlobStore)
    }

    /// The bus state changes are announced on.
    pub fn event_bus(&self) -> &EventBus {
        &self.inner.events
    }

    pub(crate) fn announce(&self, job_id: JobId, state: JobState) {
        self.inner.events.publish(JobNotice { job_id, state });
    }

    pub fn metrics(&self) -> &Arc<QueueMetrics> {
        &self.inner.metrics
    }

    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    /// How many claims are waiting for jobs right now (registered for
    /// wake-ups, after looking at the store and finding nothing): a signal
    /// that lets a caller, such as a test, act once a claim is waiting.
    pub fn claims_waiting(&self) -> watch::Receiver<usize> {
        self.inner.waiting.subscribe()
    }

    /// Tells waiting claims that jobs may have become claimable. Called after
    /// inserts here, and by whatever learns of inserts made elsewhere.
    pub fn wake_claimers(&self) {
        self.inner.wake.notify_waiters();
    }

    pub async fn get(&self, workspace: WorkspaceId, id: JobId) -> Result<Job, QueueError> {
        self.inner
            .store
            .job_get(workspace, id)
            .await?
            .ok_or(QueueError::JobNotFound(id))
    }

    pub async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, QueueError> {
        Ok(self.inner.store.job_list(workspace, filter).await?)
    }

    pub async fn events(
        &self,
        workspace: WorkspaceId,
        id: JobId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JobEvent>, QueueError> {
        self.inner
            .store
            .job_events(workspace, id, after, limit)
            .await?
            .ok_or(QueueError::JobNotFound(id))
    }

    /// Cancels a queued job at once; a running one stops at its worker's next
    /// heartbeat, and nothing the worker reports afterwards is accepted.
    pub async fn cancel(&self, workspace: WorkspaceId, id: JobId) -> Result<Job, QueueError> {
        match self
            .inner
            .store
            .job_cancel(workspace, id, self.now())
            .await?
        {
            CancelOutcome::Cancelled { job, was } => {
                tracing::info!(job_id = %id, was = %was, "job cancelled");
                self.announce(job.id, job.state);
                Ok(job)
            }
            CancelOutcome::Finished(job) if job.state == accord_model::JobState::Cancelled => {
                Ok(job)
            }
            CancelOutcome::Finished(job) => Err(QueueError::NotCancellable {
                id,
                state: job.state,
            }),
            CancelOutcome::NotFound => Err(QueueError::JobNotFound(id)),
        }
    }

    /// Requeues a dead or cancelled job with a fresh set of attempts.
    pub async fn retry(&self, workspace: WorkspaceId, id: JobId) -> Result<Job, QueueError> {
        match self
            .inner
            .store
            .job_retry(workspace, id, self.now())
            .await?
        {
            RetryOutcome::Requeued(job) => {
                tracing::info!(job_id = %id, "job requeued");
                self.announce(job.id, job.state);
                self.wake_claimers();
                Ok(job)
            }
            RetryOutcome::NotRetryable(job) => Err(QueueError::NotRetryable {
                id,
                state: job.state,
            }),
            RetryOutcome::NotFound => Err(QueueError::JobNotFound(id)),
        }
    }

    /// Counts, the oldest due job and the last minute's throughput.
    pub async fn stats(&self, workspace: WorkspaceId) -> Result<QueueStats, QueueError> {
        let now = self.now();
        let since = now - chrono::Duration::seconds(60);
        Ok(self.inner.store.queue_stats(workspace, since, now).await?)
    }

    /// Refreshes the gauges that are read from the store, then encodes every metric.
    pub async fn render_metrics(&self) -> Result<String, QueueError> {
        let counts = self.inner.store.job_counts().await?;
        self.inner.metrics.set_job_counts(&counts);
        let gauges = self
            .inner
            .store
            .monitor_gauges(crate::metrics::MAX_MONITOR_GAUGES)
            .await?;
        self.inner.metrics.set_monitor_gauges(&gauges);
        self.inner.metrics.workers.set(self.active_workers() as i64);
        Ok(self.inner.metrics.encode())
    }

    /// Whether this process runs the reaper and the pruner right now.
    pub fn is_maintenance_leader(&self) -> bool {
        self.inner.leading.load(Ordering::Relaxed)
    }

    /// Workers heard from within two lease lengths.
    pub fn active_workers(&self) -> usize {
        let horizon = self.inner.config.lease_ttl * 2;
        let mut seen = self.inner.workers_seen.lock().expect("workers cache lock");
        seen.retain(|_, at| at.elapsed() < horizon);
        seen.len()
    }

    pub(crate) fn saw_worker(&self, worker: &WorkerId) {
        let mut seen = self.inner.workers_seen.lock().expect("workers cache lock");
        match seen.get_mut(worker) {
            Some(at) => *at = Instant::now(),
            None => {
                seen.insert(worker.clone(), Instant::now());
            }
        }
    }
}
