//! Accepting a job: validate, apply the target policy, insert with its
//! idempotency key, wake the claimers.

use accord_model::{
    auto_domain, auto_needs_browser, Engine, Job, JobId, NewJob, PolicySet, RunEngine,
    ValidationError, WorkspaceId,
};
use accord_store::{InsertJob, InsertOutcome};

use crate::metrics::QueueLabels;
use crate::policies::check_with;
use crate::{Queue, QueueError};

/// The job and whether this request created it (`false`: an idempotent replay).
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub job: accord_model::Job,
    pub created: bool,
}

impl Queue {
    /// The engine the first attempt runs on, and why (for `auto`): the
    /// browser when a step needs one or the domain is remembered to need
    /// one, else HTTP.
    pub(crate) async fn first_engine(
        &self,
        workspace: WorkspaceId,
        job: &NewJob,
    ) -> Result<(RunEngine, Option<String>), QueueError> {
        match job.engine {
            Engine::Http => Ok((RunEngine::Http, None)),
            Engine::Browser => Ok((RunEngine::Browser, None)),
            Engine::Auto => {
                if let Some((engine, reason)) = auto_needs_browser(&job.steps) {
                    return Ok((engine, Some(reason)));
                }
                if let Some(domain) = auto_domain(&job.steps) {
                    let memory = self
                        .inner
                        .store
                        .domain_engine_get(workspace, domain, self.now())
                        .await?;
                    if let Some(memory) = memory {
                        let reason = format!(
                            "{domain} was seen to need the {} engine ({}); remembered until {}",
                            memory.engine,
                            memory.reason,
                            memory.expires_at.format("%Y-%m-%dT%H:%M:%SZ")
                        );
                        return Ok((memory.engine, Some(reason)));
                    }
                }
                Ok((
                    RunEngine::Http,
                    Some("tried on HTTP first: no step needs a browser".to_owned()),
                ))
            }
        }
    }

    pub async fn enqueue(
        &self,
        workspace: WorkspaceId,
        job: NewJob,
        idempotency_key: Option<String>,
    ) -> Result<Enqueued, QueueError> {
        job.validate(&self.inner.config.limits)?;
        let policies = self.policy_set(workspace).await?;
        self.check_targets(&job, &policies)?;
        check_with(&policies, &job)?;
        let idempotency = idempotency_key.map(|key| {
            let hash = job.request_hash();
            (key, hash)
        });
        let (run_on, engine_reason) = self.first_engine(workspace, &job).await?;
        let insert = InsertJob {
            id: JobId::new(),
            workspace_id: workspace,
            job,
            run_on,
            engine_reason,
            idempotency,
        };
        match self.inner.store.job_insert(insert, self.now()).await? {
            InsertOutcome::Created(job) => {
                tracing::info!(job_id = %job.id, queue = %job.queue, priority = %job.priority, "job enqueued");
                self.record_enqueued(&job);
                self.announce(job.id, job.state);
                self.wake_claimers();
                Ok(Enqueued { job, created: true })
            }
            InsertOutcome::Existing(job) => Ok(Enqueued {
                job,
                created: false,
            }),
            InsertOutcome::KeyReused => Err(QueueError::IdempotencyKeyReused),
        }
    }

    /// Accepts many jobs at once, all or none: every job is validated first
    /// (an error names its index), then all are inserted in one transaction.
    pub async fn enqueue_many(
        &self,
        workspace: WorkspaceId,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Job>, QueueError> {
        let mut inserts = Vec::with_capacity(jobs.len());
        let policies = self.policy_set(workspace).await?;
        for (index, job) in jobs.into_iter().enumerate() {
            let at = |err: ValidationError| ValidationError {
                field: format!("jobs[{index}].{}", err.field),
                message: err.message,
            };
            job.validate(&self.inner.config.limits).map_err(at)?;
            self.check_targets(&job, &policies)
                .map_err(|err| match err {
                    QueueError::TargetNotAllowed(reason) => {
                        QueueError::TargetNotAllowed(format!("jobs[{index}].{reason}"))
                    }
                    other => other,
                })?;
            check_with(&policies, &job).map_err(|err| match err {
                QueueError::PolicyDenied(denial) => {
                    QueueError::PolicyDenied(denial.in_batch(index))
                }
                other => other,
            })?;
            let (run_on, engine_reason) = self.first_engine(workspace, &job).await?;
            inserts.push(InsertJob {
                id: JobId::new(),
                workspace_id: workspace,
                job,
                run_on,
                engine_reason,
                idempotency: None,
            });
        }
        let created = self
            .inner
            .store
            .job_insert_many(&inserts, self.now())
            .await?;
        for job in &created {
            self.record_enqueued(job);
        }
        tracing::info!(jobs = created.len(), "job batch enqueued");
        self.wake_claimers();
        Ok(created)
    }

    pub(crate) fn record_enqueued(&self, job: &Job) {
        let labels = QueueLabels {
            queue: job.queue.to_string(),
        };
        self.inner.metrics.enqueued.get_or_create(&labels).inc();
    }

    /// Refuses literal non-public addresses and loopback names up front,
    /// by the engines' own guard (no DNS here) with the networks the
    /// workspace's policies grant their hosts; other host names are checked
    /// by the engine against the addresses they resolve to.
    pub(crate) fn check_targets(
        &self,
        job: &NewJob,
        policies: &PolicySet,
    ) -> Result<(), QueueError> {
        let grants = policies
            .policies
            .iter()
            .any(|entry| !entry.rules.allow_cidrs.is_empty());
        let guard = if grants {
            self.inner
                .targets
                .with_host_allow(std::sync::Arc::new(policies.clone()))
        } else {
            self.inner.targets.clone()
        };
        for (index, step) in job.steps.iter().enumerate() {
            let Some(url) = step.target_url() else {
                continue;
            };
            if let Err(blocked) = guard.check_url(url.as_url()) {
                return Err(QueueError::TargetNotAllowed(format!(
                    "steps[{index}].url: {}; private targets are disabled",
                    blocked.detail()
                )));
            }
        }
        Ok(())
    }
}
