//! [`WorkflowRunStore`] for SQLite: a run inserted with its job, and a
//! completion that records the outcome in the job's transaction, on the
//! one writer connection.

use accord_model::{JobError, JobId, WorkspaceId};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::jobs::insert_row;
use super::lease::complete_one;
use super::rows::{from_ms, ms, opt_ms, parse_id, to_json};
use super::SqliteStore;
use crate::schema::{check_storable, parse_engine, parse_state, parse_target, parse_workflow};
use crate::{
    CompleteWorkflowRun, StartWorkflowRun, StoreError, Transition, WorkflowRecord, WorkflowRun,
    WorkflowRunStore,
};

const COLUMNS: &str = "w.job_id, w.workspace_id, w.workflow, w.url, w.engine, w.input, \
     w.outcome, w.snapshot, w.error, w.created_at, w.finished_at, j.state AS job_state, \
     j.last_error AS job_error";

fn opt_json(row: &SqliteRow, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| {
        serde_json::from_str(&text).map_err(|err| StoreError::corrupt("workflow run", err))
    })
    .transpose()
}

fn run_from_row(row: &SqliteRow) -> Result<WorkflowRun, StoreError> {
    let workspace: String = row.try_get("workspace_id")?;
    let job_state: Option<String> = row.try_get("job_state")?;
    let job_error: Option<String> = row.try_get("job_error")?;
    let input: String = row.try_get("input")?;
    Ok(WorkflowRun {
        job_id: parse_id(row.try_get("job_id")?)?,
        workspace_id: workspace
            .parse::<WorkspaceId>()
            .map_err(|err| StoreError::corrupt("workspace id", err))?,
        workflow: parse_workflow(row.try_get("workflow")?)?,
        url: parse_target(row.try_get("url")?)?,
        engine: parse_engine(row.try_get("engine")?)?,
        input: serde_json::from_str(&input)
            .map_err(|err| StoreError::corrupt("workflow input", err))?,
        outcome: opt_json(row, "outcome")?,
        snapshot: opt_json(row, "snapshot")?,
        error: row.try_get("error")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        finished_at: opt_ms(row.try_get("finished_at")?)?,
        job_state: job_state.as_deref().map(parse_state).transpose()?,
        job_error: job_error
            .map(|text| {
                serde_json::from_str::<JobError>(&text)
                    .map(|err| err.message)
                    .map_err(|err| StoreError::corrupt("job error", err))
            })
            .transpose()?,
    })
}

#[async_trait]
impl WorkflowRunStore for SqliteStore {
    async fn workflow_run_start(
        &self,
        start: &StartWorkflowRun,
    ) -> Result<accord_model::Job, StoreError> {
        check_storable(&start.job)?;
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO workflow_runs (job_id, workspace_id, workflow, url, engine, input, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(start.job.id.to_string())
        .bind(start.job.workspace_id.to_string())
        .bind(start.workflow.as_str())
        .bind(start.url.as_str())
        .bind(start.engine.as_str())
        .bind(to_json(&start.input))
        .bind(ms(start.now))
        .execute(&mut *tx)
        .await?;
        let job = insert_row(&mut tx, &start.job, start.now)
            .await?
            .ok_or_else(|| {
                StoreError::corrupt(
                    "workflow job",
                    "a workflow run's job carries no idempotency key",
                )
            })?;
        tx.commit().await?;
        Ok(job)
    }

    async fn workflow_runs_pending(
        &self,
        jobs: &[JobId],
    ) -> Result<Vec<Option<WorkflowRun>>, StoreError> {
        // In-process reads are cheap: one per job, on one connection.
        let mut conn = self.reader.acquire().await?;
        let mut runs = Vec::with_capacity(jobs.len());
        for job in jobs {
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM workflow_runs w LEFT JOIN jobs j ON j.id = w.job_id \
                 WHERE w.job_id = ? AND w.outcome IS NULL AND w.error IS NULL"
            ))
            .bind(job.to_string())
            .fetch_optional(&mut *conn)
            .await?;
            runs.push(row.as_ref().map(run_from_row).transpose()?);
        }
        Ok(runs)
    }

    async fn workflow_run_complete(
        &self,
        complete: &CompleteWorkflowRun,
    ) -> Result<Option<Transition>, StoreError> {
        let now = ms(complete.now);
        let mut tx = self.writer.begin().await?;
        let Some(transition) = complete_one(&mut tx, &complete.worker, &complete.item, now).await?
        else {
            return Ok(None);
        };
        let (outcome, snapshot, error) = match &complete.record {
            WorkflowRecord::Outcome { outcome, snapshot } => {
                (Some(to_json(outcome)), Some(to_json(snapshot)), None)
            }
            WorkflowRecord::Error(message) => (None, None, Some(message.as_str())),
        };
        sqlx::query(
            "UPDATE workflow_runs SET outcome = ?, snapshot = ?, error = ?, finished_at = ? \
             WHERE job_id = ? AND outcome IS NULL AND error IS NULL",
        )
        .bind(outcome)
        .bind(snapshot)
        .bind(error)
        .bind(now)
        .bind(complete.item.job_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(transition))
    }

    async fn workflow_run_get(
        &self,
        workspace: WorkspaceId,
        job_id: JobId,
    ) -> Result<Option<WorkflowRun>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs w LEFT JOIN jobs j ON j.id = w.job_id \
             WHERE w.workspace_id = ? AND w.job_id = ?"
        ))
        .bind(workspace.to_string())
        .bind(job_id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn workflow_run_prune(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM workflow_runs WHERE job_id IN ( \
               SELECT r.job_id FROM workflow_runs r \
               WHERE COALESCE(r.finished_at, r.created_at) < ? \
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.job_id \
                   AND j.state NOT IN ('succeeded', 'dead', 'cancelled')) \
               ORDER BY COALESCE(r.finished_at, r.created_at) LIMIT ?)",
        )
        .bind(ms(cutoff))
        .bind(limit)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
