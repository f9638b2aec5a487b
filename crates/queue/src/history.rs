//! A monitor's history read back: its snapshots (bounded for a listing),
//! the difference between the snapshots of two of its runs, and the item
//! history of an `extract_items` monitor, folded from its snapshots.
//!
//! Comparing and folding run on blocking threads (`spawn_blocking`): a
//! text diff is quadratic at worst and a history may hold many snapshots.
//! The item history is derived from the snapshots (the runs' record) on
//! each read, a page of snapshots at a time, rather than kept in a table of
//! its own that would have to agree with them.
//!
//! Does not write anything.

use accord_model::{
    DiffEnd, ItemRecord, MonitorId, RunDiff, SnapshotView, ValidationError, WorkflowKind,
    WorkspaceId,
};
use accord_store::{SnapshotOrder, StoredSnapshot};
use accord_workflows::{bounded_snapshot, diff_snapshots, ItemHistory, Snapshot};

use crate::{Queue, QueueError};

/// Snapshots read per page while folding an item history.
const FOLD_PAGE: u32 = 50;

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
        let (from, from_at) = self.diff_end(workspace, id, "from", runs.from).await?;
        let (to, to_at) = self.diff_end(workspace, id, "to", runs.to).await?;
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
        })
    }

    /// One side of a diff: the run's snapshot and when it finished.
    async fn diff_end(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        field: &str,
        run_id: i64,
    ) -> Result<(Snapshot, chrono::DateTime<chrono::Utc>), QueueError> {
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
            (Some(snapshot), Some(at)) => Ok((parse_snapshot(&snapshot)?, at)),
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

    /// Every item an `extract_items` monitor has seen, in the order first
    /// seen, folded from all its snapshots.
    pub async fn monitor_items(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<Vec<ItemRecord>, QueueError> {
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
        let mut history = ItemHistory::new();
        let mut after = None;
        loop {
            let page = self
                .inner
                .store
                .monitor_snapshots(
                    workspace,
                    id,
                    SnapshotOrder::OldestFirst { after },
                    FOLD_PAGE,
                )
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.run_id);
            let full = page.len() == FOLD_PAGE as usize;
            history = blocking(move || {
                for stored in &page {
                    // Snapshots of another workflow (the monitor was
                    // changed) hold no items.
                    if let Ok(Snapshot::ExtractItems(items)) = parse_snapshot(&stored.snapshot) {
                        history.add(stored.run_id, stored.at, &items);
                    }
                }
                history
            })
            .await?;
            if !full {
                break;
            }
        }
        blocking(move || history.into_records()).await
    }
}
