//! Workflow runs outside any monitor: the workflow's input checked (errors
//! name the field: `input.selectors[0]`) and expanded into a job, inserted
//! with its run in one transaction; at completion the workflow runs on a
//! blocking thread without a baseline and its outcome is written in the
//! job's completion transaction; a run read back says where it stands.
//!
//! Does not speak HTTP and keeps no history beyond the run itself.

use accord_model::{
    CompleteItem, JobId, JobState, NewJob, NewWorkflowRun, Priority, RunState, ValidationError,
    WorkerId, WorkflowKind, WorkflowRunView, WorkspaceId,
};
use accord_store::{
    CompleteWorkflowRun, InsertJob, ReportOutcome, StartWorkflowRun, WorkflowRecord, WorkflowRun,
};
use accord_workflows::{capture_from_result, expand, JobTarget, WorkflowInput};

use crate::{Queue, QueueError};

/// The label every workflow run's job carries, with its workflow's name.
pub const WORKFLOW_LABEL: &str = "workflow";

/// Names a workflow input error as a member of the request (`input.…`).
fn in_input(err: ValidationError) -> ValidationError {
    ValidationError {
        field: if err.field == "input" {
            "input".to_owned()
        } else {
            format!("input.{}", err.field)
        },
        message: err.message,
    }
}

impl Queue {
    /// Starts `workflow` on `new`: checked, expanded into a job and
    /// inserted with its run.
    pub async fn workflow_run_start(
        &self,
        workspace: WorkspaceId,
        workflow: WorkflowKind,
        new: NewWorkflowRun,
    ) -> Result<WorkflowRunView, QueueError> {
        let input = WorkflowInput::parse(workflow, &new.input).map_err(in_input)?;
        let config = &self.inner.config.monitors;
        let spec = expand(
            &input,
            &JobTarget {
                url: &new.url,
                engine: new.engine,
                timeout_seconds: config.timeout_seconds,
            },
        )
        .map_err(in_input)?;
        let job = NewJob {
            queue: Default::default(),
            priority: Priority::Normal,
            run_at: None,
            max_attempts: config.max_attempts,
            timeout_seconds: spec.timeout_seconds,
            engine: spec.engine,
            steps: spec.steps,
            labels: [(WORKFLOW_LABEL.to_owned(), workflow.as_str().to_owned())]
                .into_iter()
                .collect(),
            retry: Default::default(),
        };
        job.validate(&self.inner.config.limits)?;
        let policies = self.policy_set(workspace).await?;
        self.check_targets(&job, &policies)?;
        crate::policies::check_with(&policies, &job)?;
        let (run_on, engine_reason) = self.first_engine(workspace, &job).await?;
        let now = self.now();
        let start = StartWorkflowRun {
            workflow,
            url: new.url,
            engine: new.engine,
            input: input.to_json(),
            job: InsertJob {
                id: JobId::new(),
                workspace_id: workspace,
                job,
                run_on,
                engine_reason,
                idempotency: None,
            },
            now,
        };
        let job = self.inner.store.workflow_run_start(&start).await?;
        tracing::info!(job_id = %job.id, workflow = %workflow, "workflow run started");
        self.record_enqueued(&job);
        self.announce(job.id, job.state);
        self.wake_claimers();
        Ok(workflow_run_view(WorkflowRun {
            job_id: job.id,
            workspace_id: workspace,
            workflow,
            url: start.url,
            engine: start.engine,
            input: start.input,
            outcome: None,
            snapshot: None,
            error: None,
            created_at: now,
            finished_at: None,
            job_state: Some(job.state),
            job_error: None,
        }))
    }

    /// One workflow run of the workspace, with where it stands.
    pub async fn workflow_run_get(
        &self,
        workspace: WorkspaceId,
        id: JobId,
    ) -> Result<WorkflowRunView, QueueError> {
        self.inner
            .store
            .workflow_run_get(workspace, id)
            .await?
            .map(workflow_run_view)
            .ok_or(QueueError::WorkflowRunNotFound(id))
    }

    /// Completes a workflow run's job with its outcome, computed without a
    /// baseline on a blocking thread.
    pub(crate) async fn complete_workflow_run(
        &self,
        worker: &WorkerId,
        item: &CompleteItem,
        run: WorkflowRun,
    ) -> Result<ReportOutcome, QueueError> {
        let record = match WorkflowInput::parse(run.workflow, &run.input) {
            Err(err) => WorkflowRecord::Error(format!("the run's input is invalid: {err}")),
            Ok(input) => {
                let screenshot = self.current_screenshot(&item.result).await;
                let capture =
                    capture_from_result(&input, &item.result, &run.url, screenshot, self.now());
                let computed = tokio::task::spawn_blocking(move || {
                    accord_workflows::run(&input, &capture, None)
                })
                .await;
                match computed {
                    Ok(Ok(result)) => WorkflowRecord::Outcome {
                        outcome: serde_json::to_value(&result.outcome)
                            .unwrap_or(serde_json::Value::Null),
                        snapshot: serde_json::to_value(&result.snapshot)
                            .unwrap_or(serde_json::Value::Null),
                    },
                    Ok(Err(err)) => WorkflowRecord::Error(format!("failed to {err}")),
                    Err(err) => {
                        WorkflowRecord::Error(format!("the workflow did not finish: {err}"))
                    }
                }
            }
        };
        let complete = CompleteWorkflowRun {
            worker: worker.clone(),
            item: item.clone(),
            now: self.now(),
            record,
        };
        Ok(
            match self.inner.store.workflow_run_complete(&complete).await? {
                Some(transition) => ReportOutcome::Applied(transition),
                None => ReportOutcome::Stale(item.job_id),
            },
        )
    }
}

/// A stored run as the API shows it: its state from its outcome, or from
/// its job's when the job ended without one.
fn workflow_run_view(run: WorkflowRun) -> WorkflowRunView {
    let failed = RunState::of_failed_job(run.workflow);
    let (state, error) = match (&run.outcome, run.error, run.job_state) {
        (Some(_), _, _) => (RunState::Succeeded, None),
        (None, Some(error), _) => (RunState::Error, Some(error)),
        (None, None, Some(JobState::Dead)) => (
            failed,
            Some(run.job_error.unwrap_or_else(|| "the job failed".to_owned())),
        ),
        (None, None, Some(JobState::Cancelled)) => {
            (failed, Some("the run's job was cancelled".to_owned()))
        }
        (None, None, Some(JobState::Succeeded)) => (
            RunState::Error,
            Some("the job finished without recording an outcome".to_owned()),
        ),
        (None, None, Some(_)) => (RunState::Running, None),
        (None, None, None) => (
            RunState::Error,
            Some("the run's job was pruned before it finished".to_owned()),
        ),
    };
    WorkflowRunView {
        id: run.job_id,
        workflow: run.workflow,
        url: run.url,
        engine: run.engine,
        input: run.input,
        state,
        job_state: run.job_state,
        outcome: run.outcome,
        snapshot: run.snapshot,
        error,
        created_at: run.created_at,
        finished_at: run.finished_at,
        url_self: WorkflowRunView::path(run.job_id),
    }
}
