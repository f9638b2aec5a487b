//! A monitor's history read back: its snapshots (bounded for a listing),
//! the difference between the snapshots of two of its runs (with the
//! highlight image of the later run's visual comparison), and a page of the
//! item history of an `extract_items` monitor.
//!
//! Comparing runs on blocking threads (`spawn_blocking`): a text diff is
//! quadratic at worst. The item history is a table the store keeps up to
//! date in each completion's transaction (see `accord_store::ItemHistoryStore`),
//! so reading a page is one indexed query.
//!
//! Does not write anything.

use accord_model::{
    DiffEnd, ItemRecord, MonitorId, MonitorRun, RunDiff, SnapshotView, ValidationError,
    VisualHighlight, WorkflowKind, WorkspaceId,
};
use std::collections::BTreeSet;

use accord_store::{ItemQuery, SnapshotOrder, StoredSnapshot};
use accord_workflows::{bounded_snapshot, diff_snapshots, RunOutcome, Snapshot};

use crate::{Queue, QueueError};

/// The two runs a diff compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffRuns {
    pub from: i64,
    pub to: i64,
}

fn invalid(field: &str, message: String) -> QueueError {
    QueueError::Invalid(ValidationError {
        field: field.to_owned(),
        message,
    })
}

fn parse_snapshot(stored: &serde_json::Value) -> Result<Snapshot, QueueError> {
    serde_json::from_value(stored.clone()).map_err(|err| {
        QueueError::Store(accord_store::StoreError::Corrupt {
            what: "run snapshot",
            reason: err.to_string(),
        })
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, QueueError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| QueueError::Blocking(err.to_string()))
}

impl Queue {
    /// A page of a monitor's snapshots, newest first, each bounded for a
    /// listing.
    pub async fn monitor_snapshots(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<SnapshotView>, QueueError> {
        self.monitor_get(workspace, id).await?;
        let stored = self
            .inner
            .store
            .monitor_snapshots(workspace, id, SnapshotOrder::NewestFirst { before }, limit)
            .await?;
        blocking(move || {
            stored
                .into_iter()
                .map(
                    |StoredSnapshot {
                         run_id,
                         at,
                         snapshot,
                     }| {
                        let snapshot = parse_snapshot(&snapshot)?;
                        let workflow = snapshot.kind();
                        let (snapshot, truncated) = bounded_snapshot(snapshot);
                        Ok(SnapshotView {
                            run_id,
                            at,
                            workflow,
                            snapshot: serde_json::to_value(&snapshot)
                                .unwrap_or(serde_json::Value::Null),
                            truncated,
                        })
                    },
                )
                .collect()
        })
        .await?
    }

    /// The difference between the snapshots of two runs of one monitor.
    /// A run of another monitor (or workspace), or one that kept no
    /// snapshot, is refused naming `from` or `to`.
    pub async fn monitor_diff(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        runs: DiffRuns,
    ) -> Result<RunDiff, QueueError> {
        let monitor = self.monitor_get(workspace, id).await?;
        let (from, from_at, _) = self.diff_end(workspace, id, "from", runs.from).await?;
        let (to, to_at, to_run) = self.diff_end(workspace, id, "to", runs.to).await?;
        if from.kind() != to.kind() {
            return Err(invalid(
                "to",
                format!(
                    "run {} kept a {} snapshot and run {} a {} one: the monitor's workflow \
                     changed between them",
                    runs.from,
                    from.kind(),
                    runs.to,
                    to.kind()
                ),
            ));
        }
        let workflow = to.kind();
        if workflow == WorkflowKind::SmokeCheck {
            return Err(invalid(
                "id",
                "a smoke_check monitor keeps only a verdict per run: read its runs instead"
                    .to_owned(),
            ));
        }
        let diff = blocking(move || diff_snapshots(&from, &to))
            .await?
            .map_err(|err| invalid("to", format!("failed to {err}")))?;
        Ok(RunDiff {
            monitor_id: monitor.id,
            workflow,
            from: DiffEnd {
                run_id: runs.from,
                at: from_at,
            },
            to: DiffEnd {
                run_id: runs.to,
                at: to_at,
            },
            diff: serde_json::to_value(&diff).unwrap_or(serde_json::Value::Null),
            highlight: self.run_highlight(workspace, &to_run).await?,
        })
    }

    /// The highlight image a run's visual comparison stored, if its row is
    /// still there (it goes when retention prunes the run's job).
    async fn run_highlight(
        &self,
        workspace: WorkspaceId,
        run: &MonitorRun,
    ) -> Result<Option<VisualHighlight>, QueueError> {
        let Some(outcome) = &run.outcome else {
            return Ok(None);
        };
        // An outcome this build cannot read has no highlight it can show.
        let Ok(mut outcome) = serde_json::from_value::<RunOutcome>(outcome.clone()) else {
            return Ok(None);
        };
        let Some(highlight) = outcome.highlight().cloned() else {
            return Ok(None);
        };
        let changed_ratio = outcome
            .counted_visual_change()
            .map_or(0.0, |c| c.changed_ratio);
        let stored = self
            .inner
            .store
            .artifact_get(workspace, highlight.job_id, &highlight.name)
            .await?;
        Ok(stored
            .filter(|row| row.sha256 == highlight.sha256)
            .map(|row| VisualHighlight {
                run_id: run.id,
                changed_ratio,
                job_id: highlight.job_id,
                url: format!(
                    "/api/v1/jobs/{}/artifacts/{}",
                    highlight.job_id, highlight.name
                ),
                artifact: row.reference(),
            }))
    }

    /// One side of a diff: the run's snapshot and when it finished.
    async fn diff_end(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        field: &str,
        run_id: i64,
    ) -> Result<(Snapshot, chrono::DateTime<chrono::Utc>, MonitorRun), QueueError> {
        let Some((run, snapshot)) = self
            .inner
            .store
            .monitor_run_get(workspace, id, run_id)
            .await?
        else {
            return Err(invalid(
                field,
                format!("run {run_id} is not a run of monitor {id}"),
            ));
        };
        match (snapshot, run.finished_at) {
            (Some(snapshot), Some(at)) => Ok((parse_snapshot(&snapshot)?, at, run)),
            _ => Err(invalid(
                field,
                format!(
                    "run {run_id} kept no snapshot (it is {}{})",
                    run.state.as_str(),
                    run.error
                        .map(|error| format!(": {error}"))
                        .unwrap_or_default()
                ),
            )),
        }
    }

    /// A page of the item history of an `extract_items` monitor, in the
    /// order first seen, and the cursor of the next page when there may be
    /// one. Read from the history the completions keep.
    pub async fn monitor_items(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        query: &ItemQuery,
    ) -> Result<ItemPageRead, QueueError> {
        let monitor = self.monitor_get(workspace, id).await?;
        if monitor.workflow != WorkflowKind::ExtractItems {
            return Err(invalid(
                "id",
                format!(
                    "monitor {id} runs {}: only extract_items monitors have an item history",
                    monitor.workflow
                ),
            ));
        }
        let stored = self.inner.store.monitor_items(workspace, id, query).await?;
        let next_cursor = (stored.len() == query.limit as usize)
            .then(|| stored.last().map(|item| item.position))
            .flatten();
        Ok(ItemPageRead {
            items: stored.into_iter().map(|item| item.record).collect(),
            next_cursor,
        })
    }

    /// Every field name the items of a monitor's history have (the columns
    /// of its CSV export).
    pub async fn monitor_item_fields(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<BTreeSet<String>, QueueError> {
        Ok(self.inner.store.monitor_item_fields(workspace, id).await?)
    }
}

/// A page of an item history.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPageRead {
    pub items: Vec<ItemRecord>,
    /// The position to list after for the next page.
    pub next_cursor: Option<i64>,
}
