//! Domain policies on the queue: created, read, changed and deleted per
//! workspace (a pattern once per workspace, at most [`MAX_POLICIES`]);
//! checked when a job, a batch, a monitor or a workflow run is submitted
//! ([`check_with`], with the networks they grant in the target check);
//! handed to the worker with each claimed job, so it decides every hop the
//! same way ([`Queue::attach_policies`]); and the refusals a worker reports
//! at run time written to the audit log ([`Queue::audit_run_refusals`]).
//!
//! Which policy applies to a host is the model's pure
//! [`effective_policy`]; [`Queue::effective_policy`] is that rule over the
//! workspace's stored policies, for callers (the shared rate limiter) that
//! hold a workspace and a host.

use std::collections::HashMap;

use accord_model::{
    effective_policy, sort_by_specificity, AuditOutcome, ClaimedJob, DomainPolicy, EffectivePolicy,
    Engine, JobError, JobErrorCode, JobId, LeaseRef, NewAuditEntry, NewJob, NewPolicy, PolicyId,
    PolicyPatch, PolicySet, Role, RunEngine, ValidationError, WorkerId, WorkspaceId, MAX_POLICIES,
};
use accord_store::{PolicyWrite, ReportOutcome};
use chrono::{Duration, SubsecRound};

use crate::{Queue, QueueError};

/// The engines a job may run on: both for `auto`, which may move to the
/// browser.
pub(crate) fn engines_of(engine: Engine) -> &'static [RunEngine] {
    match engine {
        Engine::Http => &[RunEngine::Http],
        Engine::Browser => &[RunEngine::Browser],
        Engine::Auto => &[RunEngine::Http, RunEngine::Browser],
    }
}

impl Queue {
    /// The workspace's policies as the worker and the checks use them.
    pub async fn policy_set(&self, workspace: WorkspaceId) -> Result<PolicySet, QueueError> {
        let policies = self
            .inner
            .store
            .policy_list(workspace, MAX_POLICIES as u32)
            .await?;
        Ok(PolicySet::from_policies(&policies))
    }

    /// The policy that applies to `host` in `workspace`: the most specific
    /// match, or the unrestricted default (see [`effective_policy`]).
    pub async fn effective_policy(
        &self,
        workspace: WorkspaceId,
        host: &str,
    ) -> Result<EffectivePolicy, QueueError> {
        Ok(effective_policy(&self.policy_set(workspace).await?, host))
    }

    /// Fills in each claimed job's policies (one query for the batch).
    pub(crate) async fn attach_policies(
        &self,
        claimed: &mut [ClaimedJob],
    ) -> Result<(), QueueError> {
        if claimed.is_empty() {
            return Ok(());
        }
        let ids: Vec<JobId> = claimed.iter().map(|job| job.job_id).collect();
        let mut by_job: HashMap<JobId, Vec<DomainPolicy>> = HashMap::new();
        for (job, policy) in self.inner.store.policies_of_jobs(&ids).await? {
            by_job.entry(job).or_default().push(policy);
        }
        for job in claimed {
            job.policies = by_job.get(&job.job_id).map(PolicySet::from_policies);
        }
        Ok(())
    }

    /// Writes an audit entry for each failure a worker reported because a
    /// domain policy refused the job at run time (a redirect to a denied
    /// host, say), in the job's workspace. Best effort: the failure itself
    /// is already recorded on the job, so a store error is only logged.
    pub(crate) async fn audit_run_refusals(
        &self,
        worker: &WorkerId,
        outcomes: &[ReportOutcome],
        errors: &HashMap<JobId, JobError>,
    ) {
        let refused: Vec<LeaseRef> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                ReportOutcome::Applied(t)
                    if errors
                        .get(&t.job_id)
                        .is_some_and(|e| e.code == Some(JobErrorCode::PolicyDenied)) =>
                {
                    Some(LeaseRef {
                        job_id: t.job_id,
                        attempt: t.attempt,
                    })
                }
                _ => None,
            })
            .collect();
        if refused.is_empty() {
            return;
        }
        // The jobs' workspaces, read with the attempts that just ended.
        let jobs = match self.inner.store.artifact_evidence(&refused).await {
            Ok(evidence) => evidence,
            Err(err) => {
                tracing::warn!(error = %err, jobs = refused.len(), "policy refusals at run time are not in the audit log");
                return;
            }
        };
        let now = self.now();
        let entries: Vec<NewAuditEntry> = jobs
            .iter()
            .filter_map(|evidence| {
                let error = errors.get(&evidence.job.id)?;
                Some(NewAuditEntry {
                    workspace_id: evidence.job.workspace_id,
                    at: now,
                    key_id: None,
                    role: Some(Role::Worker),
                    action: "policy_denied".to_owned(),
                    route: "worker: run".to_owned(),
                    target: Some(evidence.job.id.to_string()),
                    outcome: AuditOutcome::Forbidden,
                    status: 403,
                    client_addr: None,
                    detail: Some(format!("worker {worker}: {}", error.message)),
                })
            })
            .collect();
        if let Err(err) = self.inner.store.audit_insert(&entries).await {
            tracing::warn!(error = %err, entries = entries.len(), "policy refusals at run time are not in the audit log");
        }
    }

    pub async fn policy_create(
        &self,
        workspace: WorkspaceId,
        new: &NewPolicy,
    ) -> Result<DomainPolicy, QueueError> {
        let (pattern, rules) = new.validate().map_err(QueueError::InvalidPolicy)?;
        let held = self
            .inner
            .store
            .policy_list(workspace, MAX_POLICIES as u32)
            .await?;
        if held.len() >= MAX_POLICIES {
            return Err(QueueError::InvalidPolicy(ValidationError {
                field: "pattern".to_owned(),
                message: format!("a workspace holds at most {MAX_POLICIES} policies"),
            }));
        }
        // Milliseconds, what every backend keeps: the answer reads like a
        // later GET.
        let now = self.now().trunc_subsecs(3);
        let policy = DomainPolicy {
            id: PolicyId::new(),
            workspace_id: workspace,
            pattern,
            rules,
            created_at: now,
            updated_at: now,
        };
        match self.inner.store.policy_insert(&policy).await? {
            PolicyWrite::Written => {
                tracing::info!(policy_id = %policy.id, pattern = %policy.pattern, "domain policy created");
                Ok(policy)
            }
            PolicyWrite::Duplicate => Err(QueueError::PolicyExists(policy.pattern.to_string())),
            PolicyWrite::Missing => Err(QueueError::PolicyNotFound(policy.id)),
        }
    }

    pub async fn policy_get(
        &self,
        workspace: WorkspaceId,
        id: PolicyId,
    ) -> Result<DomainPolicy, QueueError> {
        self.inner
            .store
            .policy_get(workspace, id)
            .await?
            .ok_or(QueueError::PolicyNotFound(id))
    }

    /// The workspace's policies, most specific first (the order they are
    /// matched in).
    pub async fn policy_list(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<DomainPolicy>, QueueError> {
        let mut policies = self
            .inner
            .store
            .policy_list(workspace, MAX_POLICIES as u32)
            .await?;
        sort_by_specificity(&mut policies);
        Ok(policies)
    }

    pub async fn policy_update(
        &self,
        workspace: WorkspaceId,
        id: PolicyId,
        patch: &PolicyPatch,
    ) -> Result<DomainPolicy, QueueError> {
        let current = self.policy_get(workspace, id).await?;
        let mut next = patch.apply(&current).map_err(QueueError::InvalidPolicy)?;
        next.updated_at = self
            .now()
            .trunc_subsecs(3)
            .max(current.updated_at + Duration::milliseconds(1));
        match self
            .inner
            .store
            .policy_update(&next, current.updated_at)
            .await?
        {
            PolicyWrite::Written => {
                tracing::info!(policy_id = %id, pattern = %next.pattern, "domain policy changed");
                Ok(next)
            }
            PolicyWrite::Duplicate => Err(QueueError::PolicyExists(next.pattern.to_string())),
            PolicyWrite::Missing => Err(QueueError::PolicyChanged(id)),
        }
    }

    pub async fn policy_delete(
        &self,
        workspace: WorkspaceId,
        id: PolicyId,
    ) -> Result<(), QueueError> {
        if self.inner.store.policy_delete(workspace, id).await? {
            tracing::info!(policy_id = %id, "domain policy deleted");
            Ok(())
        } else {
            Err(QueueError::PolicyNotFound(id))
        }
    }
}

/// Refuses a job that a policy of its workspace denies: a host it names,
/// its engine there, or one of its steps (`403 policy_denied`). Callers
/// read the policies once ([`Queue::policy_set`]), a batch for all its jobs.
pub(crate) fn check_with(set: &PolicySet, job: &NewJob) -> Result<(), QueueError> {
    set.check_job(&job.steps, engines_of(job.engine))
        .map_err(QueueError::PolicyDenied)
}
