//! Monitors on the queue: creating and changing them (checked against the
//! workspace's minimum interval and their workflow's input schema),
//! starting runs (the workflow expanded into a job, inserted with its run
//! in one transaction), and completing a run's job with its outcome.
//!
//! At completion the workflow runs on a blocking thread
//! (`spawn_blocking`), from the job's result and the monitor's baseline
//! snapshot; the outcome and the new snapshot are written in the same
//! transaction as the job's completion, fenced on the lease and on that
//! baseline. When another completion moved the baseline first, the outcome
//! is computed again against the new one. A visual change that counts
//! keeps its highlight image: its bytes go to the blob store before the
//! completion, and its artifact row (`visual-diff.png` of the run's job)
//! commits with the outcome that names it. An `extract_items` run brings
//! its monitor's item history up to date in the same transaction.
//!
//! Does not decide when a run is due (`scheduler.rs` does) and does not
//! speak HTTP.

use accord_model::{
    ArtifactName, ArtifactRef, CompleteItem, Job, JobId, JobResult, Monitor, MonitorId,
    MonitorPatch, MonitorRun, NewJob, NewMonitor, Priority, RunTrigger, SeriesPoint, Sha256Digest,
    ValidationError, WorkerId, WorkspaceId,
};
use accord_store::{
    Advance, CompleteRun, CompleteRunOutcome, InsertJob, MonitorFilter, ReportOutcome, RunContext,
    RunRecord, SeenItem, StartOutcome, StartRun,
};
use accord_workflows::{
    capture_from_result, expand, HighlightArtifact, JobTarget, Previous, RunOutcome, Snapshot,
    WorkflowInput, HIGHLIGHT_ARTIFACT, SCREENSHOT_ARTIFACT,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::notifications::run_notice;
use crate::{Queue, QueueError};

/// Runs of one completed batch whose workflows are computed side by side
/// (their outcomes are then written together).
const COMPLETIONS_IN_FLIGHT: usize = 16;

/// How many times a completion is computed again after losing the
/// baseline race before it gives up (the job stays leased, and its worker
/// reports again or the lease expires).
const BASELINE_ATTEMPTS: usize = 3;

/// The label every monitor job carries, with its monitor's id.
pub const MONITOR_LABEL: &str = "monitor";

/// A run started by hand or by the scheduler.
#[derive(Debug, Clone)]
pub struct StartedRun {
    pub run: MonitorRun,
    pub job: Job,
}

impl Queue {
    fn min_interval_seconds(&self) -> u64 {
        self.inner.config.monitors.min_interval.as_secs()
    }

    /// Checks a monitor's input against its workflow and that its job can
    /// be built and would be accepted, its workspace's domain policies
    /// included.
    async fn check_monitor(&self, monitor: &Monitor) -> Result<(), QueueError> {
        let job = self.monitor_job(monitor)?;
        job.validate(&self.inner.config.limits)?;
        let policies = self.policy_set(monitor.workspace_id).await?;
        self.check_targets(&job, &policies)?;
        crate::policies::check_with(&policies, &job)
    }

    /// The job that runs `monitor` once. Errors name the monitor's field
    /// (`input.selectors[0]`).
    fn monitor_job(&self, monitor: &Monitor) -> Result<NewJob, QueueError> {
        let prefix = |err: ValidationError| ValidationError {
            field: if err.field == "input" {
                "input".to_owned()
            } else {
                format!("input.{}", err.field)
            },
            message: err.message,
        };
        let input = WorkflowInput::parse(monitor.workflow, &monitor.input).map_err(prefix)?;
        let config = &self.inner.config.monitors;
        let spec = expand(
            &input,
            &JobTarget {
                url: &monitor.url,
                engine: monitor.engine,
                timeout_seconds: config.timeout_seconds,
            },
        )
        .map_err(prefix)?;
        Ok(NewJob {
            queue: Default::default(),
            priority: Priority::Normal,
            run_at: None,
            max_attempts: config.max_attempts,
            timeout_seconds: spec.timeout_seconds,
            engine: spec.engine,
            steps: spec.steps,
            labels: [(MONITOR_LABEL.to_owned(), monitor.id.to_string())]
                .into_iter()
                .collect(),
            retry: Default::default(),
        })
    }

    pub async fn monitor_create(
        &self,
        workspace: WorkspaceId,
        new: NewMonitor,
    ) -> Result<Monitor, QueueError> {
        let schedule = new.validate(self.min_interval_seconds())?;
        let now = self.now();
        let mut monitor = Monitor {
            id: MonitorId::new(),
            workspace_id: workspace,
            name: new.name,
            workflow: new.workflow,
            url: new.url,
            engine: new.engine,
            input: new.input,
            schedule,
            tags: new.tags,
            paused: new.paused,
            notify: new.notify,
            created_at: now,
            updated_at: now,
            next_due_at: now,
        };
        self.check_monitor(&monitor).await?;
        self.check_monitor_targets(&monitor).await?;
        // Store the input as the workflow reads it back (defaults filled).
        monitor.input = WorkflowInput::parse(monitor.workflow, &monitor.input)?.to_json();
        monitor.next_due_at = next_due(&monitor, now);
        self.inner.store.monitor_insert(&monitor).await?;
        tracing::info!(monitor_id = %monitor.id, workflow = %monitor.workflow, "monitor created");
        Ok(monitor)
    }

    pub async fn monitor_get(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<Monitor, QueueError> {
        self.inner
            .store
            .monitor_get(workspace, id)
            .await?
            .ok_or(QueueError::MonitorNotFound(id))
    }

    pub async fn monitor_list(
        &self,
        workspace: WorkspaceId,
        filter: &MonitorFilter,
    ) -> Result<Vec<Monitor>, QueueError> {
        Ok(self.inner.store.monitor_list(workspace, filter).await?)
    }

    /// Writes `next` over `current` (as read), refused when the monitor
    /// changed in between.
    async fn monitor_replace(
        &self,
        current: &Monitor,
        next: Monitor,
    ) -> Result<Monitor, QueueError> {
        if self
            .inner
            .store
            .monitor_update(&next, current.updated_at)
            .await?
        {
            Ok(next)
        } else {
            Err(QueueError::MonitorChanged(current.id))
        }
    }

    pub async fn monitor_update(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        patch: &MonitorPatch,
    ) -> Result<Monitor, QueueError> {
        let current = self.monitor_get(workspace, id).await?;
        let mut next = patch.apply(&current, self.min_interval_seconds())?;
        self.check_monitor(&next).await?;
        self.check_monitor_targets(&next).await?;
        next.input = WorkflowInput::parse(next.workflow, &next.input)?.to_json();
        let now = self
            .now()
            .max(current.updated_at + chrono::Duration::milliseconds(1));
        next.updated_at = now;
        if next.schedule != current.schedule {
            next.next_due_at = next_due(&next, now);
        }
        self.monitor_replace(&current, next).await
    }

    pub async fn monitor_delete(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<(), QueueError> {
        if self.inner.store.monitor_delete(workspace, id).await? {
            tracing::info!(monitor_id = %id, "monitor deleted");
            Ok(())
        } else {
            Err(QueueError::MonitorNotFound(id))
        }
    }

    /// Pauses a monitor: no scheduled run starts until it is resumed (a run
    /// in progress finishes).
    pub async fn monitor_pause(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<Monitor, QueueError> {
        self.monitor_set_paused(workspace, id, true).await
    }

    /// Resumes a monitor from its first slot after now: the slots missed
    /// while paused are not run.
    pub async fn monitor_resume(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<Monitor, QueueError> {
        self.monitor_set_paused(workspace, id, false).await
    }

    async fn monitor_set_paused(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        paused: bool,
    ) -> Result<Monitor, QueueError> {
        let current = self.monitor_get(workspace, id).await?;
        if current.paused == paused {
            return Ok(current);
        }
        let now = self
            .now()
            .max(current.updated_at + chrono::Duration::milliseconds(1));
        let mut next = current.clone();
        next.paused = paused;
        next.updated_at = now;
        if !paused {
            next.next_due_at = next_due(&next, now);
        }
        self.monitor_replace(&current, next).await
    }

    /// Starts a run now, outside the schedule; refused while a run is in
    /// progress (a monitor never runs concurrently with itself).
    pub async fn monitor_run_now(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<StartedRun, QueueError> {
        let monitor = self.monitor_get(workspace, id).await?;
        let now = self.now();
        match self
            .start_run(&monitor, RunTrigger::Manual, now, None, now)
            .await?
        {
            StartOutcome::Started { run, job } => Ok(StartedRun { run, job: *job }),
            StartOutcome::Busy => Err(QueueError::MonitorBusy(id)),
            // Deleted since it was read, or a second request in the same
            // millisecond took the slot.
            StartOutcome::Moved => Err(QueueError::MonitorChanged(id)),
        }
    }

    /// Builds the run's job and inserts both in one transaction.
    pub(crate) async fn start_run(
        &self,
        monitor: &Monitor,
        trigger: RunTrigger,
        slot: DateTime<Utc>,
        advance: Option<Advance>,
        now: DateTime<Utc>,
    ) -> Result<StartOutcome, QueueError> {
        let start = self.run_start(monitor, trigger, slot, advance, now).await?;
        let outcome = self.inner.store.monitor_run_start(&start).await?;
        if let StartOutcome::Started { run, job } = &outcome {
            self.started_run(monitor, run, job);
        }
        Ok(outcome)
    }

    /// What starting a run of `monitor` for `slot` writes: the run and its
    /// job, built here (errors name the monitor's field).
    pub(crate) async fn run_start(
        &self,
        monitor: &Monitor,
        trigger: RunTrigger,
        slot: DateTime<Utc>,
        advance: Option<Advance>,
        now: DateTime<Utc>,
    ) -> Result<StartRun, QueueError> {
        let job = self.monitor_job(monitor)?;
        let (run_on, engine_reason) = self.first_engine(monitor.workspace_id, &job).await?;
        Ok(StartRun {
            workspace_id: monitor.workspace_id,
            monitor_id: monitor.id,
            trigger,
            slot,
            advance,
            job: InsertJob {
                id: JobId::new(),
                workspace_id: monitor.workspace_id,
                job,
                run_on,
                engine_reason,
                idempotency: None,
            },
            now,
        })
    }

    /// Announces a started run: logs, metrics, and the claimers woken.
    pub(crate) fn started_run(&self, monitor: &Monitor, run: &MonitorRun, job: &Job) {
        tracing::info!(
            monitor_id = %monitor.id,
            run_id = run.id,
            job_id = %job.id,
            slot = %run.slot,
            trigger = run.trigger.as_str(),
            "monitor run started"
        );
        self.record_enqueued(job);
        self.inner.metrics.monitor_runs_started.inc();
        self.announce(job.id, job.state);
        self.wake_claimers();
    }

    pub async fn monitor_runs(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<MonitorRun>, QueueError> {
        self.monitor_get(workspace, id).await?;
        Ok(self
            .inner
            .store
            .monitor_runs(workspace, id, before, limit)
            .await?)
    }

    /// One run with its snapshot.
    pub async fn monitor_run(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        run_id: i64,
    ) -> Result<(MonitorRun, Option<serde_json::Value>), QueueError> {
        self.inner
            .store
            .monitor_run_get(workspace, id, run_id)
            .await?
            .ok_or(QueueError::RunNotFound {
                monitor: id,
                run: run_id,
            })
    }

    pub async fn monitor_series(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SeriesPoint>, QueueError> {
        self.monitor_get(workspace, id).await?;
        Ok(self
            .inner
            .store
            .monitor_series(workspace, id, name, limit)
            .await?)
    }

    /// Completes the jobs of monitor runs (and of workflow runs) among
    /// `items` with their outcomes, and returns the other items (plain
    /// jobs) untouched, with the outcome of each run's item, in the order
    /// of `items`.
    pub(crate) async fn complete_monitor_items(
        &self,
        worker: &WorkerId,
        items: &[CompleteItem],
    ) -> Result<(Vec<CompleteItem>, Vec<(usize, ReportOutcome)>), QueueError> {
        let jobs: Vec<JobId> = items.iter().map(|item| item.job_id).collect();
        let contexts = self.inner.store.monitor_run_contexts(&jobs).await?;
        let mut runs = Vec::new();
        let mut others = Vec::new();
        for (index, context) in contexts.into_iter().enumerate() {
            match context {
                Some(context) => runs.push((index, context)),
                None => others.push(index),
            }
        }
        let mut done = self.complete_runs(worker, items, runs).await?;
        // A workflow run's job completes with its outcome too.
        let jobs: Vec<JobId> = others.iter().map(|&index| items[index].job_id).collect();
        let pending = if jobs.is_empty() {
            Vec::new()
        } else {
            self.inner.store.workflow_runs_pending(&jobs).await?
        };
        let mut plain = Vec::with_capacity(others.len());
        for (index, run) in others.into_iter().zip(pending) {
            match run {
                Some(run) => {
                    let outcome = self
                        .complete_workflow_run(worker, &items[index], run)
                        .await?;
                    done.push((index, outcome));
                }
                None => plain.push(items[index].clone()),
            }
        }
        done.sort_unstable_by_key(|(index, _)| *index);
        Ok((plain, done))
    }

    /// Completes the runs of a batch (`runs`: indices into `items`, with
    /// their contexts) in one store call: their workflows run side by
    /// side, then every outcome is written in one transaction. Runs that
    /// lost the baseline race are computed again against the new baseline,
    /// together, up to [`BASELINE_ATTEMPTS`] times.
    async fn complete_runs(
        &self,
        worker: &WorkerId,
        items: &[CompleteItem],
        mut runs: Vec<(usize, RunContext)>,
    ) -> Result<Vec<(usize, ReportOutcome)>, QueueError> {
        let mut done = Vec::with_capacity(runs.len());
        for _ in 0..BASELINE_ATTEMPTS {
            if runs.is_empty() {
                return Ok(done);
            }
            // Positions, not references, go through the stream: a closure
            // over borrowed runs would not be `Send` for every lifetime.
            let runs_ref = &runs;
            let records: Vec<RunRecord> = futures::stream::iter(0..runs.len())
                .map(|at| async move {
                    let (index, context) = &runs_ref[at];
                    self.compute_run(context, &items[*index].result).await
                })
                .buffered(COMPLETIONS_IN_FLIGHT)
                .collect()
                .await;
            let now = self.now();
            let batch: Vec<CompleteRun> = runs
                .iter()
                .zip(records)
                .map(|((index, context), record)| CompleteRun {
                    worker: worker.clone(),
                    item: items[*index].clone(),
                    now,
                    monitor_id: context.monitor.id,
                    run_id: context.run.id,
                    baseline_run_id: context.baseline.as_ref().map(|b| b.run_id),
                    notice: run_notice(context, &record, now),
                    record,
                })
                .collect();
            let outcomes = self.inner.store.monitor_runs_complete(&batch).await?;
            let mut moved = Vec::new();
            for ((index, context), outcome) in runs.into_iter().zip(outcomes) {
                let job = items[index].job_id;
                match outcome {
                    CompleteRunOutcome::Applied(transition) => {
                        self.inner.metrics.monitor_runs_finished.inc();
                        done.push((index, ReportOutcome::Applied(transition)));
                    }
                    CompleteRunOutcome::Stale => done.push((index, ReportOutcome::Stale(job))),
                    CompleteRunOutcome::BaselineMoved => {
                        tracing::debug!(monitor_id = %context.monitor.id, "baseline moved; computing again");
                        moved.push(index);
                    }
                }
            }
            let jobs: Vec<JobId> = moved.iter().map(|&index| items[index].job_id).collect();
            let fresh = if jobs.is_empty() {
                Vec::new()
            } else {
                self.inner.store.monitor_run_contexts(&jobs).await?
            };
            runs = Vec::with_capacity(moved.len());
            for (index, context) in moved.into_iter().zip(fresh) {
                match context {
                    Some(context) => runs.push((index, context)),
                    None => done.push((index, ReportOutcome::Stale(items[index].job_id))),
                }
            }
        }
        for (index, context) in runs {
            tracing::warn!(
                monitor_id = %context.monitor.id,
                job_id = %items[index].job_id,
                "the monitor's baseline kept moving; the completion is left for the worker to report again"
            );
            done.push((index, ReportOutcome::Stale(items[index].job_id)));
        }
        Ok(done)
    }

    /// Runs the monitor's workflow on the job's result against its
    /// baseline, on a blocking thread.
    async fn compute_run(&self, context: &RunContext, result: &JobResult) -> RunRecord {
        let monitor = &context.monitor;
        let input = match WorkflowInput::parse(monitor.workflow, &monitor.input) {
            Ok(input) => input,
            Err(err) => return RunRecord::Error(format!("the monitor's input is invalid: {err}")),
        };
        let previous = baseline_snapshot(context);
        let screenshot = self.current_screenshot(result).await;
        let previous_screenshot = match &previous {
            Some(Snapshot::PageChange(page)) => match &page.screenshot_sha256 {
                Some(hex) => self.blob(hex).await,
                None => None,
            },
            _ => None,
        };
        let capture = capture_from_result(&input, result, &monitor.url, screenshot, self.now());
        let computed = tokio::task::spawn_blocking(move || {
            let previous = previous.as_ref().map(|snapshot| Previous {
                snapshot,
                screenshot_png: previous_screenshot.as_deref(),
            });
            accord_workflows::run(&input, &capture, previous)
        })
        .await;
        match computed {
            Ok(Ok(mut run)) => {
                let mut artifacts = Vec::new();
                if let (Some(png), Some(comparison)) = (
                    run.highlight_png.take(),
                    run.outcome.counted_visual_change(),
                ) {
                    if let Some(highlight) = self.store_highlight(context, png).await {
                        comparison.highlight = Some(Box::new(HighlightArtifact {
                            job_id: context.run.job_id,
                            name: highlight.name.clone(),
                            content_type: highlight.content_type.clone(),
                            size: highlight.size,
                            sha256: highlight.sha256,
                        }));
                        artifacts.push(highlight);
                    }
                }
                RunRecord::Outcome {
                    events: crate::notifications::events_of(&run.outcome.summary),
                    values: values_of(&run.outcome),
                    outcome: to_value(&run.outcome),
                    items: items_of(&run.snapshot),
                    snapshot: to_value(&run.snapshot),
                    artifacts,
                }
            }
            Ok(Err(err)) => RunRecord::Error(format!("failed to {err}")),
            Err(err) => RunRecord::Error(format!("the workflow did not finish: {err}")),
        }
    }

    /// Stores a visual diff's highlight image in the blob store and returns
    /// the artifact the completion records with the outcome (the bytes go
    /// first, so a row never names a missing blob; a crash before the
    /// completion commits leaves a blob no row holds, which the sweep
    /// removes). `None`, logged, when there is no blob store, when the
    /// workspace's quota has no room for it, or when storing fails: the
    /// run keeps its outcome without the image.
    async fn store_highlight(&self, context: &RunContext, png: Vec<u8>) -> Option<ArtifactRef> {
        let blobs = self.inner.blobs.as_ref()?;
        let workspace = context.monitor.workspace_id;
        let size = png.len() as u64;
        let quota = self.inner.config.artifacts.limits.quota_bytes;
        match self.inner.store.artifact_usage(workspace).await {
            Ok(usage) if usage.saturating_add(size) <= quota => {}
            Ok(usage) => {
                tracing::warn!(monitor_id = %context.monitor.id, usage, quota, size, "the workspace's artifact quota has no room for the visual diff; the run is recorded without it");
                return None;
            }
            Err(err) => {
                tracing::warn!(monitor_id = %context.monitor.id, error = %err, "cannot read the workspace's artifact usage; the run is recorded without its visual diff");
                return None;
            }
        }
        match blobs.put_bytes(Bytes::from(png)).await {
            Ok(sha256) => Some(ArtifactRef {
                name: ArtifactName::new(HIGHLIGHT_ARTIFACT).expect("a valid artifact name"),
                content_type: "image/png".to_owned(),
                size,
                sha256,
            }),
            Err(err) => {
                tracing::warn!(monitor_id = %context.monitor.id, error = %err, "cannot store the visual diff; the run is recorded without it");
                None
            }
        }
    }

    /// The screenshot the run's job kept for a visual comparison.
    pub(crate) async fn current_screenshot(&self, result: &JobResult) -> Option<Vec<u8>> {
        let artifact = result
            .artifacts
            .iter()
            .find(|a| a.name.as_str() == SCREENSHOT_ARTIFACT)?;
        let blobs = self.inner.blobs.as_ref()?;
        match blobs.read_all(&artifact.sha256).await {
            Ok(bytes) => Some(bytes.to_vec()),
            Err(err) => {
                tracing::warn!(error = %err, "could not read the run's screenshot");
                None
            }
        }
    }

    async fn blob(&self, hex: &str) -> Option<Vec<u8>> {
        let digest = Sha256Digest::try_from(hex.to_owned()).ok()?;
        let blobs = self.inner.blobs.as_ref()?;
        blobs.read_all(&digest).await.ok().map(|b| b.to_vec())
    }
}

/// The snapshot of the run's baseline, as the workflow reads it; none when
/// there is none, it is unreadable, or it is of another workflow (the
/// monitor was changed).
pub(crate) fn baseline_snapshot(context: &RunContext) -> Option<Snapshot> {
    let baseline = context.baseline.as_ref()?;
    let monitor = &context.monitor;
    match serde_json::from_value::<Snapshot>(baseline.snapshot.clone()) {
        Ok(snapshot) if snapshot.kind() == monitor.workflow => Some(snapshot),
        Ok(_) => None,
        Err(err) => {
            tracing::warn!(monitor_id = %monitor.id, error = %err, "unreadable snapshot; starting a new baseline");
            None
        }
    }
}

/// The first slot after `now`; a cron expression that never runs again
/// leaves the monitor due in a hundred years.
pub(crate) fn next_due(monitor: &Monitor, now: DateTime<Utc>) -> DateTime<Utc> {
    monitor
        .next_slot_after(now)
        .unwrap_or_else(|| now + chrono::Duration::days(36_500))
}

pub(crate) fn to_value(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The items an `extract_items` snapshot holds, for the item history.
fn items_of(snapshot: &Snapshot) -> Option<Vec<SeenItem>> {
    match snapshot {
        Snapshot::ExtractItems(items) => Some(
            items
                .items
                .iter()
                .map(|item| SeenItem {
                    key: item.key.clone(),
                    fields: item.fields.clone(),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The tracked numbers an outcome read, by name.
fn values_of(outcome: &RunOutcome) -> Vec<(String, f64)> {
    match &outcome.detail {
        accord_workflows::WorkflowOutcome::PageChange(page) => page
            .values
            .iter()
            .filter_map(|v| Some((v.name.clone(), v.value?)))
            .filter(|(_, v)| v.is_finite())
            .collect(),
        _ => Vec::new(),
    }
}
