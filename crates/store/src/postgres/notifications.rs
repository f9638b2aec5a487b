//! [`NotificationStore`] for PostgreSQL: targets, the outbox and the
//! attempt log. Claims pick due messages with `FOR UPDATE SKIP LOCKED`
//! and lease them in the same statement, so replicas claiming at once
//! take disjoint sets; the run's messages are written by [`enqueue_run`]
//! inside the completion's transaction.

use std::collections::BTreeSet;

use accord_model::{
    AttemptView, DeliveryState, DeliveryView, MessageId, MonitorId, Notice, PreviousSecret,
    Subscription, Target, TargetId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::rows::{column, count, json};
use super::PostgresStore;
use crate::schema::{
    matching_events, parse_address, parse_delivery_state, parse_events, parse_secret,
    parse_target_kind, pause_reason,
};
use crate::{
    AttemptNext, AttemptRecord, ClaimedMessage, DeliveryFilter, NewMessage, NotificationStore,
    RecordOutcome, RunNotice, StoreError, MAX_ATTEMPTS_SHOWN,
};

const TARGET_COLUMNS: &str = "t.id, t.workspace_id, t.name, t.kind, t.address, t.secret, \
     t.previous_secret, t.previous_secret_until, t.paused, t.paused_reason, \
     t.consecutive_failures, t.created_at, t.updated_at";

const MESSAGE_COLUMNS: &str = "n.id, n.target_id, n.monitor_id, n.run_id, n.events, n.notice, \
     n.state, n.attempts, n.round_start, n.next_attempt_at, n.created_at, n.finished_at";

fn target_from_row(row: &PgRow) -> Result<Target, StoreError> {
    let kind = parse_target_kind(&column::<String>(row, "kind", "target kind")?)?;
    let previous = parse_secret(column(row, "previous_secret", "webhook secret")?)?;
    let until: Option<DateTime<Utc>> = column(row, "previous_secret_until", "timestamp")?;
    Ok(Target {
        id: TargetId::from_uuid(column(row, "id", "target id")?),
        workspace_id: WorkspaceId::from_uuid(column(row, "workspace_id", "workspace id")?),
        name: column(row, "name", "target name")?,
        kind,
        address: parse_address(kind, &column::<String>(row, "address", "target address")?)?,
        secret: parse_secret(column(row, "secret", "webhook secret")?)?,
        previous_secret: previous
            .zip(until)
            .map(|(secret, until)| PreviousSecret { secret, until }),
        paused: column(row, "paused", "paused")?,
        paused_reason: column(row, "paused_reason", "pause reason")?,
        consecutive_failures: count(row, "consecutive_failures", "failure count")?,
        created_at: column(row, "created_at", "timestamp")?,
        updated_at: column(row, "updated_at", "timestamp")?,
    })
}

fn events_of(row: &PgRow) -> Result<BTreeSet<accord_model::NotifyEvent>, StoreError> {
    let names: Vec<String> = column(row, "events", "message events")?;
    parse_events(&names)
}

fn opt_monitor(row: &PgRow) -> Result<Option<MonitorId>, StoreError> {
    let id: Option<Uuid> = column(row, "monitor_id", "monitor id")?;
    Ok(id.map(MonitorId::from_uuid))
}

fn delivery_from_row(row: &PgRow) -> Result<DeliveryView, StoreError> {
    let id = MessageId::from_uuid(column(row, "id", "message id")?);
    let state = parse_delivery_state(&column::<String>(row, "state", "delivery state")?)?;
    let notice: Notice = json(row, "notice", "message notice")?;
    Ok(DeliveryView {
        id,
        webhook_id: id.webhook_id(),
        target_id: TargetId::from_uuid(column(row, "target_id", "target id")?),
        monitor_id: opt_monitor(row)?,
        run_id: column(row, "run_id", "run id")?,
        events: events_of(row)?,
        test: notice.test,
        state,
        created_at: column(row, "created_at", "timestamp")?,
        next_attempt_at: match state {
            DeliveryState::Pending => Some(column(row, "next_attempt_at", "timestamp")?),
            _ => None,
        },
        finished_at: column(row, "finished_at", "timestamp")?,
        attempts: Vec::new(),
    })
}

fn attempt_from_row(row: &PgRow) -> Result<AttemptView, StoreError> {
    let status: Option<i32> = column(row, "status", "status")?;
    let latency: i64 = column(row, "latency_ms", "latency")?;
    Ok(AttemptView {
        attempt: count(row, "attempt", "attempt")?,
        at: column(row, "at", "timestamp")?,
        status: status
            .map(|s| u16::try_from(s).map_err(|err| StoreError::corrupt("status", err)))
            .transpose()?,
        latency_ms: u64::try_from(latency).unwrap_or(0),
        delivered: column(row, "delivered", "delivered")?,
        error: column(row, "error", "attempt error")?,
        excerpt: column(row, "excerpt", "attempt excerpt")?,
    })
}

/// Fills in each delivery's latest attempts, oldest first.
async fn with_attempts(
    conn: &mut PgConnection,
    mut deliveries: Vec<DeliveryView>,
) -> Result<Vec<DeliveryView>, StoreError> {
    for delivery in &mut deliveries {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, attempt, at, status, latency_ms, delivered, error, excerpt \
             FROM notification_attempts WHERE message_id = $1 ORDER BY id DESC LIMIT $2) a \
             ORDER BY id",
        )
        .bind(delivery.id.as_uuid())
        .bind(i64::from(MAX_ATTEMPTS_SHOWN))
        .fetch_all(&mut *conn)
        .await?;
        delivery.attempts = rows
            .iter()
            .map(attempt_from_row)
            .collect::<Result<_, _>>()?;
    }
    Ok(deliveries)
}

/// Writes a completed run's messages, in the completion's transaction (the
/// monitor's row is locked by it): one per subscribed, unpaused target of
/// the monitor's workspace whose events match, at most one per run and
/// target.
pub(super) async fn enqueue_run(
    conn: &mut PgConnection,
    monitor: Uuid,
    run_id: i64,
    notice: &RunNotice,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT workspace_id, notify FROM monitors WHERE id = $1")
        .bind(monitor)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let workspace: Uuid = column(&row, "workspace_id", "workspace id")?;
    let subscriptions: Vec<Subscription> = json(&row, "notify", "monitor subscriptions")?;
    for subscription in &subscriptions {
        let events = matching_events(subscription, &notice.events);
        if events.is_empty() {
            continue;
        }
        sqlx::query(
            "INSERT INTO notification_messages (id, workspace_id, target_id, monitor_id, run_id, \
             events, notice, state, next_attempt_at, created_at) \
             SELECT $1, t.workspace_id, t.id, $2, $3, $4, $5, 'pending', $6, $6 \
             FROM notification_targets t WHERE t.id = $7 AND t.workspace_id = $8 AND NOT t.paused \
             ON CONFLICT (run_id, target_id) DO NOTHING",
        )
        .bind(MessageId::new().as_uuid())
        .bind(monitor)
        .bind(run_id)
        .bind(&events)
        .bind(Json(&notice.notice))
        .bind(now)
        .bind(subscription.target.as_uuid())
        .bind(workspace)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn target_insert(&self, target: &Target) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notification_targets (id, workspace_id, name, kind, address, secret, \
             previous_secret, previous_secret_until, paused, paused_reason, consecutive_failures, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(target.id.as_uuid())
        .bind(target.workspace_id.as_uuid())
        .bind(&target.name)
        .bind(target.kind.as_str())
        .bind(target.address.as_str())
        .bind(target.secret.as_ref().map(|s| s.expose().to_owned()))
        .bind(
            target
                .previous_secret
                .as_ref()
                .map(|p| p.secret.expose().to_owned()),
        )
        .bind(target.previous_secret.as_ref().map(|p| p.until))
        .bind(target.paused)
        .bind(&target.paused_reason)
        .bind(i32::try_from(target.consecutive_failures).unwrap_or(i32::MAX))
        .bind(target.created_at)
        .bind(target.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn target_get(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
    ) -> Result<Option<Target>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM notification_targets t \
             WHERE t.workspace_id = $1 AND t.id = $2"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(target_from_row).transpose()
    }

    async fn target_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<Target>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM notification_targets t WHERE t.workspace_id = $1 \
             ORDER BY t.id DESC LIMIT $2"
        ))
        .bind(workspace.as_uuid())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(target_from_row).collect()
    }

    async fn target_update(
        &self,
        target: &Target,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE notification_targets SET name = $1, address = $2, secret = $3, \
             previous_secret = $4, previous_secret_until = $5, paused = $6, paused_reason = $7, \
             consecutive_failures = $8, updated_at = $9 \
             WHERE workspace_id = $10 AND id = $11 AND updated_at = $12",
        )
        .bind(&target.name)
        .bind(target.address.as_str())
        .bind(target.secret.as_ref().map(|s| s.expose().to_owned()))
        .bind(
            target
                .previous_secret
                .as_ref()
                .map(|p| p.secret.expose().to_owned()),
        )
        .bind(target.previous_secret.as_ref().map(|p| p.until))
        .bind(target.paused)
        .bind(&target.paused_reason)
        .bind(i32::try_from(target.consecutive_failures).unwrap_or(i32::MAX))
        .bind(target.updated_at)
        .bind(target.workspace_id.as_uuid())
        .bind(target.id.as_uuid())
        .bind(expected_updated_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn target_delete(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM notification_targets WHERE workspace_id = $1 AND id = $2")
                .bind(workspace.as_uuid())
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn targets_existing(
        &self,
        workspace: WorkspaceId,
        ids: &[TargetId],
    ) -> Result<BTreeSet<TargetId>, StoreError> {
        let uuids: Vec<Uuid> = ids.iter().map(TargetId::as_uuid).collect();
        let found: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM notification_targets WHERE workspace_id = $1 AND id = ANY($2)",
        )
        .bind(workspace.as_uuid())
        .bind(uuids)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.into_iter().map(TargetId::from_uuid).collect())
    }

    async fn notification_enqueue(&self, message: &NewMessage) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO notification_messages (id, workspace_id, target_id, events, notice, \
             state, next_attempt_at, created_at) \
             SELECT $1, t.workspace_id, t.id, '{}', $2, 'pending', $3, $3 \
             FROM notification_targets t WHERE t.id = $4 AND t.workspace_id = $5",
        )
        .bind(message.id.as_uuid())
        .bind(Json(&message.notice))
        .bind(message.now)
        .bind(message.target_id.as_uuid())
        .bind(message.workspace_id.as_uuid())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::corrupt(
                "notification target",
                "the target of a new message does not exist",
            ));
        }
        Ok(())
    }

    async fn notification_claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "WITH due AS (SELECT m.id FROM notification_messages m \
               JOIN notification_targets t ON t.id = m.target_id \
               WHERE m.state = 'pending' AND m.next_attempt_at <= $1 AND NOT t.paused \
               ORDER BY m.next_attempt_at, m.id LIMIT $2 FOR UPDATE OF m SKIP LOCKED) \
             UPDATE notification_messages n SET attempts = n.attempts + 1, next_attempt_at = $3 \
             FROM due WHERE n.id = due.id \
             RETURNING n.id, n.target_id, n.monitor_id, n.run_id, n.events, n.notice, \
               n.attempts, n.round_start, n.created_at",
        )
        .bind(now)
        .bind(i64::from(limit))
        .bind(lease_until)
        .fetch_all(&mut *tx)
        .await?;
        let target_ids: Vec<Uuid> = rows
            .iter()
            .map(|row| column(row, "target_id", "target id"))
            .collect::<Result<_, _>>()?;
        let targets = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM notification_targets t WHERE t.id = ANY($1)"
        ))
        .bind(&target_ids)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(target_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for (row, target_id) in rows.iter().zip(target_ids) {
            let target = targets
                .iter()
                .find(|t| t.id.as_uuid() == target_id)
                .cloned()
                .ok_or_else(|| StoreError::corrupt("message target", "missing"))?;
            let attempt = count(row, "attempts", "attempts")?;
            claimed.push(ClaimedMessage {
                id: MessageId::from_uuid(column(row, "id", "message id")?),
                target,
                monitor_id: opt_monitor(row)?,
                run_id: column(row, "run_id", "run id")?,
                events: events_of(row)?,
                notice: json(row, "notice", "message notice")?,
                attempt,
                round_attempt: attempt.saturating_sub(count(row, "round_start", "attempts")?),
                created_at: column(row, "created_at", "timestamp")?,
            });
        }
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn notification_record(
        &self,
        record: &AttemptRecord,
    ) -> Result<RecordOutcome, StoreError> {
        let at = record.at;
        let (state, next_at, finished) = match record.next {
            AttemptNext::Delivered => ("delivered", at, Some(at)),
            AttemptNext::RetryAt(when) => ("pending", when, None),
            AttemptNext::Failed => ("failed", at, Some(at)),
        };
        let id = record.message_id.as_uuid();
        let attempt = i32::try_from(record.attempt).unwrap_or(i32::MAX);
        let mut tx = self.pool.begin().await?;
        let target: Option<Uuid> = sqlx::query_scalar(
            "UPDATE notification_messages SET state = $1, next_attempt_at = $2, finished_at = $3 \
             WHERE id = $4 AND attempts = $5 AND state = 'pending' RETURNING target_id",
        )
        .bind(state)
        .bind(next_at)
        .bind(finished)
        .bind(id)
        .bind(attempt)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(target) = target else {
            return Ok(RecordOutcome::Stale);
        };
        let delivered = matches!(record.next, AttemptNext::Delivered);
        sqlx::query(
            "INSERT INTO notification_attempts (message_id, attempt, at, status, latency_ms, \
             delivered, error, excerpt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(attempt)
        .bind(at)
        .bind(record.status.map(i32::from))
        .bind(i64::try_from(record.latency_ms).unwrap_or(i64::MAX))
        .bind(delivered)
        .bind(&record.error)
        .bind(&record.excerpt)
        .execute(&mut *tx)
        .await?;
        let target_paused = if delivered {
            // Only a target that had failures is written: every delivery
            // to a healthy target would otherwise lock its one row until
            // commit, and deliveries to it would commit one at a time.
            sqlx::query(
                "UPDATE notification_targets SET consecutive_failures = 0 \
                 WHERE id = $1 AND consecutive_failures <> 0",
            )
            .bind(target)
            .execute(&mut *tx)
            .await?;
            false
        } else {
            let failures: i32 = sqlx::query_scalar(
                "UPDATE notification_targets SET consecutive_failures = consecutive_failures + 1 \
                 WHERE id = $1 RETURNING consecutive_failures",
            )
            .bind(target)
            .fetch_one(&mut *tx)
            .await?;
            if i64::from(failures) >= i64::from(record.pause_after) {
                let paused = sqlx::query(
                    "UPDATE notification_targets SET paused = true, paused_reason = $1, \
                     updated_at = GREATEST(updated_at + interval '1 millisecond', $2) \
                     WHERE id = $3 AND NOT paused",
                )
                .bind(pause_reason(record.pause_after))
                .bind(at)
                .bind(target)
                .execute(&mut *tx)
                .await?;
                paused.rows_affected() == 1
            } else {
                false
            }
        };
        tx.commit().await?;
        Ok(RecordOutcome::Recorded { target_paused })
    }

    async fn notification_redeliver(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE notification_messages SET state = 'pending', round_start = attempts, \
             next_attempt_at = $1, finished_at = NULL WHERE workspace_id = $2 AND id = $3",
        )
        .bind(now)
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn deliveries(
        &self,
        workspace: WorkspaceId,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM notification_messages n WHERE n.workspace_id = $1 \
             AND ($2::uuid IS NULL OR n.monitor_id = $2) AND ($3::uuid IS NULL OR n.target_id = $3) \
             AND ($4::uuid IS NULL OR n.id < $4) ORDER BY n.id DESC LIMIT $5"
        ))
        .bind(workspace.as_uuid())
        .bind(filter.monitor.map(|m| m.as_uuid()))
        .bind(filter.target.map(|t| t.as_uuid()))
        .bind(filter.before.map(|b| b.as_uuid()))
        .bind(i64::from(filter.limit))
        .fetch_all(&mut *conn)
        .await?;
        let deliveries = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        with_attempts(&mut conn, deliveries).await
    }

    async fn delivery_get(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<Option<DeliveryView>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM notification_messages n \
             WHERE n.workspace_id = $1 AND n.id = $2"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let delivery = delivery_from_row(&row)?;
        Ok(with_attempts(&mut conn, vec![delivery]).await?.pop())
    }
}
