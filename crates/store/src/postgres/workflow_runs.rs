//! [`WorkflowRunStore`] for PostgreSQL: a run inserted with its job, and a
//! completion that records the outcome in the job's transaction, fenced on
//! the lease by the same statement `job_complete_if_leased` uses.

use accord_model::{JobError, JobId, WorkspaceId};
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::jobs::insert_row;
use super::lease::complete_one;
use super::rows::{column, job_from_row, job_id, json, opt_json};
use super::PostgresStore;
use crate::schema::{check_storable, parse_engine, parse_state, parse_target, parse_workflow};
use crate::{
    CompleteWorkflowRun, StartWorkflowRun, StoreError, Transition, WorkflowRecord, WorkflowRun,
    WorkflowRunStore,
};

const COLUMNS: &str = "w.job_id, w.workspace_id, w.workflow, w.url, w.engine, w.input, \
     w.outcome, w.snapshot, w.error, w.created_at, w.finished_at, j.state AS job_state, \
     j.last_error AS job_error";

fn run_from_row(row: &PgRow) -> Result<WorkflowRun, StoreError> {
    let job_state: Option<String> = column(row, "job_state", "job state")?;
    Ok(WorkflowRun {
        job_id: job_id(row, "job_id")?,
        workspace_id: WorkspaceId::from_uuid(column(row, "workspace_id", "workspace id")?),
        workflow: parse_workflow(&column::<String>(row, "workflow", "workflow")?)?,
        url: parse_target(&column::<String>(row, "url", "workflow url")?)?,
        engine: parse_engine(&column::<String>(row, "engine", "engine")?)?,
        input: json(row, "input", "workflow input")?,
        outcome: opt_json(row, "outcome", "workflow outcome")?,
        snapshot: opt_json(row, "snapshot", "workflow snapshot")?,
        error: column(row, "error", "workflow error")?,
        created_at: column(row, "created_at", "timestamp")?,
        finished_at: column(row, "finished_at", "timestamp")?,
        job_state: job_state.as_deref().map(parse_state).transpose()?,
        job_error: opt_json::<JobError>(row, "job_error", "job error")?.map(|err| err.message),
    })
}

#[async_trait]
impl WorkflowRunStore for PostgresStore {
    async fn workflow_run_start(
        &self,
        start: &StartWorkflowRun,
    ) -> Result<accord_model::Job, StoreError> {
        check_storable(&start.job)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO workflow_runs (job_id, workspace_id, workflow, url, engine, input, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(start.job.id.as_uuid())
        .bind(start.job.workspace_id.as_uuid())
        .bind(start.workflow.as_str())
        .bind(start.url.as_str())
        .bind(start.engine.as_str())
        .bind(Json(&start.input))
        .bind(start.now)
        .execute(&mut *tx)
        .await?;
        let job = insert_row(&mut *tx, &start.job, start.now)
            .await?
            .ok_or_else(|| {
                StoreError::corrupt(
                    "workflow job",
                    "a workflow run's job carries no idempotency key",
                )
            })?;
        let job = job_from_row(&job)?;
        tx.commit().await?;
        self.announce();
        Ok(job)
    }

    async fn workflow_runs_pending(
        &self,
        jobs: &[JobId],
    ) -> Result<Vec<Option<WorkflowRun>>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<uuid::Uuid> = jobs.iter().map(|job| job.as_uuid()).collect();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs w LEFT JOIN jobs j ON j.id = w.job_id \
             WHERE w.job_id = ANY($1) AND w.outcome IS NULL AND w.error IS NULL"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut runs: std::collections::HashMap<JobId, WorkflowRun> = rows
            .iter()
            .map(|row| run_from_row(row).map(|run| (run.job_id, run)))
            .collect::<Result<_, _>>()?;
        Ok(jobs.iter().map(|job| runs.remove(job)).collect())
    }

    async fn workflow_run_complete(
        &self,
        complete: &CompleteWorkflowRun,
    ) -> Result<Option<Transition>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(transition) =
            complete_one(&mut tx, &complete.worker, &complete.item, complete.now).await?
        else {
            return Ok(None);
        };
        let (outcome, snapshot, error) = match &complete.record {
            WorkflowRecord::Outcome { outcome, snapshot } => {
                (Some(Json(outcome)), Some(Json(snapshot)), None)
            }
            WorkflowRecord::Error(message) => (None, None, Some(message.as_str())),
        };
        sqlx::query(
            "UPDATE workflow_runs SET outcome = $1, snapshot = $2, error = $3, finished_at = $4 \
             WHERE job_id = $5 AND outcome IS NULL AND error IS NULL",
        )
        .bind(outcome)
        .bind(snapshot)
        .bind(error)
        .bind(complete.now)
        .bind(complete.item.job_id.as_uuid())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(transition))
    }

    async fn workflow_run_get(
        &self,
        workspace: WorkspaceId,
        job: JobId,
    ) -> Result<Option<WorkflowRun>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflow_runs w LEFT JOIN jobs j ON j.id = w.job_id \
             WHERE w.workspace_id = $1 AND w.job_id = $2"
        ))
        .bind(workspace.as_uuid())
        .bind(job.as_uuid())
        .fetch_optional(&self.pool)
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
               WHERE COALESCE(r.finished_at, r.created_at) < $1 \
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.job_id \
                   AND j.state NOT IN ('succeeded', 'dead', 'cancelled')) \
               ORDER BY COALESCE(r.finished_at, r.created_at) LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
