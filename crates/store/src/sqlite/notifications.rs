//! [`NotificationStore`] for SQLite: targets, the outbox and the attempt
//! log. Claims are one `UPDATE ... RETURNING` on the one writer
//! connection, so two claimers never take the same message; the run's
//! messages are written by [`enqueue_run`] inside the completion's
//! transaction.

use std::collections::BTreeSet;

use accord_model::{
    AttemptView, DeliveryView, MessageId, MonitorId, Notice, PreviousSecret, Subscription, Target,
    TargetId, WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::rows::{from_ms, ms, opt_ms, to_json};
use super::SqliteStore;
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

fn uuid_of<T: std::str::FromStr>(text: &str, what: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|err| StoreError::corrupt(what, err))
}

fn count(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let n: i64 = row.try_get(column)?;
    u32::try_from(n).map_err(|err| StoreError::corrupt("count", err))
}

fn target_from_row(row: &SqliteRow) -> Result<Target, StoreError> {
    let kind = parse_target_kind(row.try_get("kind")?)?;
    let previous = parse_secret(row.try_get("previous_secret")?)?;
    let until = opt_ms(row.try_get("previous_secret_until")?)?;
    Ok(Target {
        id: uuid_of(row.try_get("id")?, "target id")?,
        workspace_id: uuid_of(row.try_get("workspace_id")?, "workspace id")?,
        name: row.try_get("name")?,
        kind,
        address: parse_address(kind, row.try_get("address")?)?,
        secret: parse_secret(row.try_get("secret")?)?,
        previous_secret: previous
            .zip(until)
            .map(|(secret, until)| PreviousSecret { secret, until }),
        paused: row.try_get::<i64, _>("paused")? != 0,
        paused_reason: row.try_get("paused_reason")?,
        consecutive_failures: count(row, "consecutive_failures")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
    })
}

fn events_of(row: &SqliteRow) -> Result<BTreeSet<accord_model::NotifyEvent>, StoreError> {
    let text: String = row.try_get("events")?;
    let names: Vec<String> =
        serde_json::from_str(&text).map_err(|err| StoreError::corrupt("message events", err))?;
    parse_events(&names)
}

fn notice_of(row: &SqliteRow) -> Result<Notice, StoreError> {
    let text: String = row.try_get("notice")?;
    serde_json::from_str(&text).map_err(|err| StoreError::corrupt("message notice", err))
}

fn opt_monitor(row: &SqliteRow) -> Result<Option<MonitorId>, StoreError> {
    let text: Option<String> = row.try_get("monitor_id")?;
    text.map(|text| uuid_of(&text, "monitor id")).transpose()
}

fn delivery_from_row(row: &SqliteRow) -> Result<DeliveryView, StoreError> {
    let id: MessageId = uuid_of(row.try_get("id")?, "message id")?;
    let state = parse_delivery_state(row.try_get("state")?)?;
    let notice = notice_of(row)?;
    Ok(DeliveryView {
        id,
        webhook_id: id.webhook_id(),
        target_id: uuid_of(row.try_get("target_id")?, "target id")?,
        monitor_id: opt_monitor(row)?,
        run_id: row.try_get("run_id")?,
        events: events_of(row)?,
        test: notice.test,
        state,
        created_at: from_ms(row.try_get("created_at")?)?,
        next_attempt_at: match state {
            accord_model::DeliveryState::Pending => Some(from_ms(row.try_get("next_attempt_at")?)?),
            _ => None,
        },
        finished_at: opt_ms(row.try_get("finished_at")?)?,
        attempts: Vec::new(),
    })
}

fn attempt_from_row(row: &SqliteRow) -> Result<AttemptView, StoreError> {
    let status: Option<i64> = row.try_get("status")?;
    Ok(AttemptView {
        attempt: count(row, "attempt")?,
        at: from_ms(row.try_get("at")?)?,
        status: status
            .map(|s| u16::try_from(s).map_err(|err| StoreError::corrupt("status", err)))
            .transpose()?,
        latency_ms: u64::try_from(row.try_get::<i64, _>("latency_ms")?).unwrap_or(0),
        delivered: row.try_get::<i64, _>("delivered")? != 0,
        error: row.try_get("error")?,
        excerpt: row.try_get("excerpt")?,
    })
}

/// Fills in each delivery's latest attempts, oldest first.
async fn with_attempts(
    conn: &mut SqliteConnection,
    mut deliveries: Vec<DeliveryView>,
) -> Result<Vec<DeliveryView>, StoreError> {
    for delivery in &mut deliveries {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, attempt, at, status, latency_ms, delivered, error, excerpt \
             FROM notification_attempts WHERE message_id = ? ORDER BY id DESC LIMIT ?) \
             ORDER BY id",
        )
        .bind(delivery.id.to_string())
        .bind(MAX_ATTEMPTS_SHOWN)
        .fetch_all(&mut *conn)
        .await?;
        delivery.attempts = rows
            .iter()
            .map(attempt_from_row)
            .collect::<Result<_, _>>()?;
    }
    Ok(deliveries)
}

/// Writes a completed run's messages, in the completion's transaction: one
/// per subscribed, unpaused target of the monitor's workspace whose events
/// match, at most one per run and target.
pub(super) async fn enqueue_run(
    conn: &mut SqliteConnection,
    monitor: &str,
    run_id: i64,
    notice: &RunNotice,
    now: i64,
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT workspace_id, notify FROM monitors WHERE id = ?")
        .bind(monitor)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let workspace: String = row.try_get("workspace_id")?;
    let notify: String = row.try_get("notify")?;
    let subscriptions: Vec<Subscription> = serde_json::from_str(&notify)
        .map_err(|err| StoreError::corrupt("monitor subscriptions", err))?;
    let body = to_json(&notice.notice);
    for subscription in &subscriptions {
        let events = matching_events(subscription, &notice.events);
        if events.is_empty() {
            continue;
        }
        sqlx::query(
            "INSERT INTO notification_messages (id, workspace_id, target_id, monitor_id, run_id, \
             events, notice, state, next_attempt_at, created_at) \
             SELECT ?, t.workspace_id, t.id, ?, ?, ?, ?, 'pending', ?, ? \
             FROM notification_targets t WHERE t.id = ? AND t.workspace_id = ? AND t.paused = 0 \
             ON CONFLICT (run_id, target_id) DO NOTHING",
        )
        .bind(MessageId::new().to_string())
        .bind(monitor)
        .bind(run_id)
        .bind(to_json(&events))
        .bind(&body)
        .bind(now)
        .bind(now)
        .bind(subscription.target.to_string())
        .bind(&workspace)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn target_insert(&self, target: &Target) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notification_targets (id, workspace_id, name, kind, address, secret, \
             previous_secret, previous_secret_until, paused, paused_reason, consecutive_failures, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(target.id.to_string())
        .bind(target.workspace_id.to_string())
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
        .bind(target.previous_secret.as_ref().map(|p| ms(p.until)))
        .bind(i64::from(target.paused))
        .bind(&target.paused_reason)
        .bind(i64::from(target.consecutive_failures))
        .bind(ms(target.created_at))
        .bind(ms(target.updated_at))
        .execute(&self.writer)
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
             WHERE t.workspace_id = ? AND t.id = ?"
        ))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(target_from_row).transpose()
    }

    async fn target_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<Target>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM notification_targets t WHERE t.workspace_id = ? \
             ORDER BY t.id DESC LIMIT ?"
        ))
        .bind(workspace.to_string())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(target_from_row).collect()
    }

    async fn target_update(
        &self,
        target: &Target,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE notification_targets SET name = ?, address = ?, secret = ?, \
             previous_secret = ?, previous_secret_until = ?, paused = ?, paused_reason = ?, \
             consecutive_failures = ?, updated_at = ? \
             WHERE workspace_id = ? AND id = ? AND updated_at = ?",
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
        .bind(target.previous_secret.as_ref().map(|p| ms(p.until)))
        .bind(i64::from(target.paused))
        .bind(&target.paused_reason)
        .bind(i64::from(target.consecutive_failures))
        .bind(ms(target.updated_at))
        .bind(target.workspace_id.to_string())
        .bind(target.id.to_string())
        .bind(ms(expected_updated_at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn target_delete(
        &self,
        workspace: WorkspaceId,
        id: TargetId,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM notification_targets WHERE workspace_id = ? AND id = ?")
                .bind(workspace.to_string())
                .bind(id.to_string())
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn targets_existing(
        &self,
        workspace: WorkspaceId,
        ids: &[TargetId],
    ) -> Result<BTreeSet<TargetId>, StoreError> {
        let mut found = BTreeSet::new();
        for id in ids {
            let hit: Option<String> = sqlx::query_scalar(
                "SELECT id FROM notification_targets WHERE workspace_id = ? AND id = ?",
            )
            .bind(workspace.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
            if hit.is_some() {
                found.insert(*id);
            }
        }
        Ok(found)
    }

    async fn notification_enqueue(&self, message: &NewMessage) -> Result<(), StoreError> {
        let now = ms(message.now);
        let done = sqlx::query(
            "INSERT INTO notification_messages (id, workspace_id, target_id, events, notice, \
             state, next_attempt_at, created_at) \
             SELECT ?, t.workspace_id, t.id, '[]', ?, 'pending', ?, ? \
             FROM notification_targets t WHERE t.id = ? AND t.workspace_id = ?",
        )
        .bind(message.id.to_string())
        .bind(to_json(&message.notice))
        .bind(now)
        .bind(now)
        .bind(message.target_id.to_string())
        .bind(message.workspace_id.to_string())
        .execute(&self.writer)
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
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(
            "UPDATE notification_messages SET attempts = attempts + 1, next_attempt_at = ? \
             WHERE id IN (SELECT m.id FROM notification_messages m \
               JOIN notification_targets t ON t.id = m.target_id \
               WHERE m.state = 'pending' AND m.next_attempt_at <= ? AND t.paused = 0 \
               ORDER BY m.next_attempt_at, m.id LIMIT ?) \
             RETURNING id, target_id, monitor_id, run_id, events, notice, attempts, \
               round_start, created_at",
        )
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let target_id: String = row.try_get("target_id")?;
            let target = sqlx::query(&format!(
                "SELECT {TARGET_COLUMNS} FROM notification_targets t WHERE t.id = ?"
            ))
            .bind(&target_id)
            .fetch_one(&mut *tx)
            .await?;
            let attempt = count(row, "attempts")?;
            claimed.push(ClaimedMessage {
                id: uuid_of(row.try_get("id")?, "message id")?,
                target: target_from_row(&target)?,
                monitor_id: opt_monitor(row)?,
                run_id: row.try_get("run_id")?,
                events: events_of(row)?,
                notice: notice_of(row)?,
                attempt,
                round_attempt: attempt.saturating_sub(count(row, "round_start")?),
                created_at: from_ms(row.try_get("created_at")?)?,
            });
        }
        tx.commit().await?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn notification_record(
        &self,
        record: &AttemptRecord,
    ) -> Result<RecordOutcome, StoreError> {
        let at = ms(record.at);
        let (state, next_at, finished) = match record.next {
            AttemptNext::Delivered => ("delivered", at, Some(at)),
            AttemptNext::RetryAt(when) => ("pending", ms(when), None),
            AttemptNext::Failed => ("failed", at, Some(at)),
        };
        let id = record.message_id.to_string();
        let mut tx = self.writer.begin().await?;
        let target: Option<String> = sqlx::query_scalar(
            "UPDATE notification_messages SET state = ?, next_attempt_at = ?, finished_at = ? \
             WHERE id = ? AND attempts = ? AND state = 'pending' RETURNING target_id",
        )
        .bind(state)
        .bind(next_at)
        .bind(finished)
        .bind(&id)
        .bind(i64::from(record.attempt))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(target) = target else {
            return Ok(RecordOutcome::Stale);
        };
        let delivered = matches!(record.next, AttemptNext::Delivered);
        sqlx::query(
            "INSERT INTO notification_attempts (message_id, attempt, at, status, latency_ms, \
             delivered, error, excerpt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(i64::from(record.attempt))
        .bind(at)
        .bind(record.status.map(i64::from))
        .bind(i64::try_from(record.latency_ms).unwrap_or(i64::MAX))
        .bind(i64::from(delivered))
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
                 WHERE id = ? AND consecutive_failures <> 0",
            )
            .bind(&target)
            .execute(&mut *tx)
            .await?;
            false
        } else {
            let failures: i64 = sqlx::query_scalar(
                "UPDATE notification_targets SET consecutive_failures = consecutive_failures + 1 \
                 WHERE id = ? RETURNING consecutive_failures",
            )
            .bind(&target)
            .fetch_one(&mut *tx)
            .await?;
            if failures >= i64::from(record.pause_after) {
                let paused = sqlx::query(
                    "UPDATE notification_targets SET paused = 1, paused_reason = ?, \
                     updated_at = max(updated_at + 1, ?) WHERE id = ? AND paused = 0",
                )
                .bind(pause_reason(record.pause_after))
                .bind(at)
                .bind(&target)
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
             next_attempt_at = ?, finished_at = NULL WHERE workspace_id = ? AND id = ?",
        )
        .bind(ms(now))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn deliveries(
        &self,
        workspace: WorkspaceId,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM notification_messages n WHERE n.workspace_id = ? \
             AND (? IS NULL OR n.monitor_id = ?) AND (? IS NULL OR n.target_id = ?) \
             AND (? IS NULL OR n.id < ?) ORDER BY n.id DESC LIMIT ?"
        ))
        .bind(workspace.to_string())
        .bind(filter.monitor.map(|m| m.to_string()))
        .bind(filter.monitor.map(|m| m.to_string()))
        .bind(filter.target.map(|t| t.to_string()))
        .bind(filter.target.map(|t| t.to_string()))
        .bind(filter.before.map(|b| b.to_string()))
        .bind(filter.before.map(|b| b.to_string()))
        .bind(filter.limit)
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
        let mut conn = self.reader.acquire().await?;
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM notification_messages n \
             WHERE n.workspace_id = ? AND n.id = ?"
        ))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let delivery = delivery_from_row(&row)?;
        Ok(with_attempts(&mut conn, vec![delivery]).await?.pop())
    }
}
