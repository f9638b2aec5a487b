//! Notification targets on the queue: creating them (the address checked
//! by the egress guard, as far as the URL tells without DNS; a webhook's
//! signing secret generated here and shown once), rotating a secret with a
//! grace period for the old one, test messages, the delivery log and
//! redelivery; the check that a monitor names only targets of its own
//! workspace; and the events a completed run reports ([`run_notice`]),
//! written with its completion.
//!
//! Does not send anything: the notify crate's delivery loop does.

use accord_model::{
    DeliveryView, MessageId, Monitor, NewTarget, Notice, NoticeMonitor, NoticeRun, NotifyEvent,
    PreviousSecret, Target, TargetAddress, TargetId, TargetPatch, ValidationError, WebhookSecret,
    WorkspaceId, SECRET_BYTES,
};
use accord_store::{DeliveryFilter, NewMessage, RunContext, RunNotice, RunRecord};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;

use crate::{Queue, QueueError};

/// Most targets a workspace lists (and may hold).
pub const MAX_TARGETS: u32 = 500;

/// How long a rotated-out secret still signs, by default.
pub const DEFAULT_SECRET_GRACE: Duration = Duration::hours(24);

fn new_secret() -> WebhookSecret {
    let mut key = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut key);
    WebhookSecret::from_key(&key)
}

/// The events of a run's summary.
pub fn events_of(summary: &accord_workflows::Summary) -> std::collections::BTreeSet<NotifyEvent> {
    let mut events = std::collections::BTreeSet::new();
    if summary.changed {
        events.insert(NotifyEvent::Changed);
    }
    if summary.new_items > 0 {
        events.insert(NotifyEvent::NewItems);
    }
    if summary.condition_newly_met {
        events.insert(NotifyEvent::ConditionMet);
    }
    if summary.newly_failed {
        events.insert(NotifyEvent::Failed);
    }
    if summary.recovered {
        events.insert(NotifyEvent::Recovered);
    }
    events
}

/// What a completed run tells its monitor's targets: nothing when the
/// monitor notifies nobody, the run has no outcome or nothing happened.
pub(crate) fn run_notice(
    context: &RunContext,
    record: &RunRecord,
    now: DateTime<Utc>,
) -> Option<RunNotice> {
    let RunRecord::Outcome {
        outcome, events, ..
    } = record
    else {
        return None;
    };
    outcome_notice(context, outcome, events, now)
}

/// What a run with `outcome` reporting `events` tells its monitor's
/// targets: nothing when the monitor notifies nobody or nothing happened.
pub(crate) fn outcome_notice(
    context: &RunContext,
    outcome: &serde_json::Value,
    events: &std::collections::BTreeSet<NotifyEvent>,
    now: DateTime<Utc>,
) -> Option<RunNotice> {
    let monitor = &context.monitor;
    if monitor.notify.is_empty() || events.is_empty() {
        return None;
    }
    Some(RunNotice {
        events: events.clone(),
        notice: Notice {
            version: 1,
            monitor: notice_monitor(monitor),
            run: Some(NoticeRun {
                id: context.run.id,
                slot: context.run.slot,
                trigger: context.run.trigger,
                finished_at: now,
            }),
            outcome: Some(outcome.clone()),
            test: false,
        },
    })
}

fn notice_monitor(monitor: &Monitor) -> NoticeMonitor {
    NoticeMonitor {
        id: monitor.id,
        name: monitor.name.clone(),
        workflow: monitor.workflow,
        url: monitor.url.as_str().to_owned(),
    }
}

impl Queue {
    /// Refuses an address the egress guard would refuse from the URL alone
    /// (a literal non-public address, a loopback name, another scheme).
    fn check_target_address(&self, address: &TargetAddress) -> Result<(), QueueError> {
        if let TargetAddress::Url(url) = address {
            if let Err(blocked) = self.inner.targets.check_url(url) {
                return Err(QueueError::TargetNotAllowed(format!(
                    "url: {}; private targets are disabled",
                    blocked.detail()
                )));
            }
        }
        Ok(())
    }

    /// Refuses a monitor naming a target that is not in its workspace.
    pub(crate) async fn check_monitor_targets(&self, monitor: &Monitor) -> Result<(), QueueError> {
        if monitor.notify.is_empty() {
            return Ok(());
        }
        let ids: Vec<TargetId> = monitor.notify.iter().map(|s| s.target).collect();
        let found = self
            .inner
            .store
            .targets_existing(monitor.workspace_id, &ids)
            .await?;
        if let Some((index, missing)) = ids.iter().enumerate().find(|(_, id)| !found.contains(id)) {
            return Err(QueueError::Invalid(ValidationError {
                field: format!("notify[{index}].target"),
                message: format!("this workspace has no notification target {missing}"),
            }));
        }
        Ok(())
    }

    /// Creates a target; a webhook's secret is in the answer, and only there.
    pub async fn target_create(
        &self,
        workspace: WorkspaceId,
        new: NewTarget,
    ) -> Result<(Target, Option<WebhookSecret>), QueueError> {
        let address = new.validate()?;
        if new.kind == accord_model::TargetKind::Email && !self.inner.config.email_targets {
            // Refused rather than accepted and never delivered.
            return Err(QueueError::Invalid(ValidationError {
                field: "kind".to_owned(),
                message: "email targets need an SMTP server, and this control plane has none \
                          configured (--smtp-host and --smtp-from); use webhook, slack or discord"
                    .to_owned(),
            }));
        }
        self.check_target_address(&address)?;
        let held = self.inner.store.target_list(workspace, MAX_TARGETS).await?;
        if held.len() >= MAX_TARGETS as usize {
            return Err(QueueError::Invalid(ValidationError {
                field: "name".to_owned(),
                message: format!("a workspace holds at most {MAX_TARGETS} targets"),
            }));
        }
        let now = self.now();
        let secret = matches!(new.kind, accord_model::TargetKind::Webhook).then(new_secret);
        let target = Target {
            id: TargetId::new(),
            workspace_id: workspace,
            name: new.name,
            kind: new.kind,
            address,
            secret: secret.clone(),
            previous_secret: None,
            paused: false,
            paused_reason: None,
            consecutive_failures: 0,
            created_at: now,
            updated_at: now,
        };
        self.inner.store.target_insert(&target).await?;
        tracing::info!(target_id = %target.id, kind = target.kind.as_str(), "notification target created");
        Ok((target, secret))
    }

    pub async fn target_get(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
    ) -> Result<Target, QueueError> {
        self.inner
            .store
            .target_get(workspace, id)
            .await?
            .ok_or(QueueError::TargetNotFound(id))
    }

    pub async fn target_list(&self, workspace: WorkspaceId) -> Result<Vec<Target>, QueueError> {
        Ok(self.inner.store.target_list(workspace, MAX_TARGETS).await?)
    }

    async fn target_replace(
        &self,
        current: &Target,
        mut next: Target,
    ) -> Result<Target, QueueError> {
        next.updated_at = self
            .now()
            .max(current.updated_at + Duration::milliseconds(1));
        if self
            .inner
            .store
            .target_update(&next, current.updated_at)
            .await?
        {
            Ok(next)
        } else {
            Err(QueueError::TargetChanged(current.id))
        }
    }

    pub async fn target_update(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
        patch: &TargetPatch,
    ) -> Result<Target, QueueError> {
        let current = self.target_get(workspace, id).await?;
        let next = patch.apply(&current)?;
        self.check_target_address(&next.address)?;
        self.target_replace(&current, next).await
    }

    pub async fn target_delete(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
    ) -> Result<(), QueueError> {
        if self.inner.store.target_delete(workspace, id).await? {
            tracing::info!(target_id = %id, "notification target deleted");
            Ok(())
        } else {
            Err(QueueError::TargetNotFound(id))
        }
    }

    /// A new signing secret for a webhook target; the old one still signs
    /// (a second signature) for `grace`.
    pub async fn target_rotate_secret(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
        grace: Duration,
    ) -> Result<(Target, WebhookSecret), QueueError> {
        let current = self.target_get(workspace, id).await?;
        let Some(old) = current.secret.clone() else {
            return Err(QueueError::NotAWebhook(id));
        };
        let secret = new_secret();
        let mut next = current.clone();
        next.secret = Some(secret.clone());
        next.previous_secret = Some(PreviousSecret {
            secret: old,
            until: self.now() + grace,
        });
        let next = self.target_replace(&current, next).await?;
        tracing::info!(target_id = %id, "webhook secret rotated");
        Ok((next, secret))
    }

    /// Puts a sample message for the target in the outbox.
    pub async fn target_test(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
    ) -> Result<MessageId, QueueError> {
        let target = self.target_get(workspace, id).await?;
        let message = NewMessage {
            id: MessageId::new(),
            workspace_id: workspace,
            target_id: target.id,
            notice: Notice {
                version: 1,
                monitor: NoticeMonitor {
                    // A sample: the nil id names no monitor.
                    id: accord_model::MonitorId::from_uuid(Default::default()),
                    name: "Accord test message".to_owned(),
                    workflow: accord_model::WorkflowKind::PageChange,
                    url: "https://example.com/".to_owned(),
                },
                run: None,
                outcome: None,
                test: true,
            },
            now: self.now(),
        };
        self.inner.store.notification_enqueue(&message).await?;
        Ok(message.id)
    }

    pub async fn deliveries(
        &self,
        workspace: WorkspaceId,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, QueueError> {
        if let Some(monitor) = filter.monitor {
            self.monitor_get(workspace, monitor).await?;
        }
        if let Some(target) = filter.target {
            self.target_get(workspace, target).await?;
        }
        Ok(self.inner.store.deliveries(workspace, filter).await?)
    }

    /// One message with its attempts.
    pub async fn delivery(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<DeliveryView, QueueError> {
        self.inner
            .store
            .delivery_get(workspace, id)
            .await?
            .ok_or(QueueError::DeliveryNotFound(id))
    }

    /// Queues a message again, due now, with a fresh round of attempts.
    pub async fn redeliver(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<DeliveryView, QueueError> {
        if !self
            .inner
            .store
            .notification_redeliver(workspace, id, self.now())
            .await?
        {
            return Err(QueueError::DeliveryNotFound(id));
        }
        self.inner
            .store
            .delivery_get(workspace, id)
            .await?
            .ok_or(QueueError::DeliveryNotFound(id))
    }
}
