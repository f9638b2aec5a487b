//! The worker's side of a job: claim with a lease, heartbeat, complete, fail,
//! release, and the reaper that takes back expired leases. Every transition
//! is fenced by `state = 'running' AND attempt = <token>`.

use std::time::Duration;

use accord_model::{
    ClaimedJob, CompleteItem, ErrorKind, EventKind, JobError, JobSpec, JobState, LeaseRef,
    RetryPolicy, WorkerId,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::rows::{
    from_ms, insert_event, ms, parse_engine, parse_id, parse_queue, parse_state, parse_steps,
    placeholders, to_json, NewEvent, CLAIMABLE,
};
use super::SqliteStore;
use crate::{ClaimParams, FailParams, HeartbeatOutcome, ReportOutcome, StoreError, Transition};

/// Columns a transition returns, read by [`transition_from_row`].
const TRANSITION_COLUMNS: &str =
    "id, workspace_id, queue, engine, state, attempt, started_at, finished_at";

fn transition_from_row(row: &SqliteRow, from: JobState) -> Result<Transition, StoreError> {
    Ok(Transition {
        job_id: parse_id(row.try_get("id")?)?,
        queue: parse_queue(row.try_get("queue")?)?,
        engine: parse_engine(row.try_get("engine")?)?,
        from,
        to: parse_state(row.try_get("state")?)?,
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        started_at: row
            .try_get::<Option<i64>, _>("started_at")?
            .map(from_ms)
            .transpose()?,
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")?
            .map(from_ms)
            .transpose()?,
    })
}

/// Records the event of a transition made by a worker call.
async fn record(
    conn: &mut SqliteConnection,
    row: &SqliteRow,
    transition: &Transition,
    kind: EventKind,
    context: (i64, Option<&str>, Option<&str>),
) -> Result<(), StoreError> {
    let (at, worker_id, message) = context;
    let workspace: String = row.try_get("workspace_id")?;
    insert_event(
        conn,
        NewEvent {
            workspace_id: &workspace,
            job_id: &transition.job_id.to_string(),
            at,
            kind,
            from: Some(transition.from),
            to: transition.to,
            attempt: i64::from(transition.attempt),
            worker_id,
            message,
        },
    )
    .await
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

impl SqliteStore {
    pub(super) async fn claim(&self, params: &ClaimParams) -> Result<Vec<ClaimedJob>, StoreError> {
        let now = ms(params.now);
        let lease_until = now.saturating_add(ttl_ms(params.lease_ttl));
        let mut queue_filter = if params.queues.is_empty() {
            String::new()
        } else {
            format!(" AND queue IN ({})", placeholders(params.queues.len()))
        };
        if params.workspace.is_some() {
            queue_filter.push_str(" AND workspace_id = ?");
        }
        let mut tx = self.writer.begin().await?;
        let sql = format!(
            "SELECT id, state FROM jobs WHERE state IN {CLAIMABLE} AND run_at <= ?{queue_filter} \
             ORDER BY priority, run_at, id LIMIT ?"
        );
        let mut select = sqlx::query(&sql).bind(now);
        for queue in &params.queues {
            select = select.bind(queue.as_str());
        }
        if let Some(workspace) = params.workspace {
            select = select.bind(workspace.to_string());
        }
        let candidates = select.bind(params.limit).fetch_all(&mut *tx).await?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let id: String = candidate.try_get("id")?;
            let from = parse_state(candidate.try_get("state")?)?;
            let row = sqlx::query(&format!(
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = ?, started_at = ?, \
                 updated_at = ?, lease_expires_at = ?, finished_at = NULL \
                 WHERE id = ? AND state = ? \
             RETURNING {TRANSITION_COLUMNS}, steps, timeout_seconds, lease_expires_at, run_at"
            ))
            .bind(params.worker_id.as_str())
            .bind(now)
            .bind(now)
            .bind(lease_until)
            .bind(&id)
            .bind(from.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let transition = transition_from_row(&row, from)?;
            record(
                &mut tx,
                &row,
                &transition,
                EventKind::Claimed,
                (now, Some(params.worker_id.as_str()), None),
            )
            .await?;
            claimed.push(ClaimedJob {
                job_id: transition.job_id,
                attempt: transition.attempt,
                lease_expires_at: from_ms(row.try_get("lease_expires_at")?)?,
                due_at: from_ms(row.try_get("run_at")?)?,
                queue: transition.queue,
                spec: JobSpec {
                    engine: transition.engine,
                    steps: parse_steps(row.try_get("steps")?)?,
                    timeout_seconds: row.try_get::<i64, _>("timeout_seconds")? as u32,
                },
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    pub(super) async fn heartbeat(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
        lease_ttl: Duration,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let (now, ttl) = (ms(now), ttl_ms(lease_ttl));
        let mut outcome = HeartbeatOutcome::default();
        let mut tx = self.writer.begin().await?;
        for lease in leases {
            let id = lease.job_id.to_string();
            // A lease never outlives the job's timeout by more than one lease
            // length, so a hung attempt is reaped even if its heartbeats go on.
            let extended = sqlx::query(
                "UPDATE jobs SET lease_expires_at = MIN(? + ?, started_at + timeout_seconds * 1000 + ?) \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND worker_id = ? \
                 AND started_at + timeout_seconds * 1000 + ? > ? RETURNING id",
            )
            .bind(now)
            .bind(ttl)
            .bind(ttl)
            .bind(&id)
            .bind(lease.attempt)
            .bind(worker.as_str())
            .bind(ttl)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if extended.is_some() {
                outcome.extended.push(lease.job_id);
                continue;
            }
            let current = sqlx::query("SELECT state, attempt FROM jobs WHERE id = ?")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
            let cancelled = match current {
                Some(row) => {
                    row.try_get::<String, _>("state")? == JobState::Cancelled.as_str()
                        && row.try_get::<i64, _>("attempt")? == i64::from(lease.attempt)
                }
                None => false,
            };
            if cancelled {
                outcome.cancelled.push(lease.job_id);
            } else {
                outcome.lost.push(lease.job_id);
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    pub(super) async fn complete(
        &self,
        worker: &WorkerId,
        items: &[CompleteItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let now = ms(now);
        let mut outcomes = Vec::with_capacity(items.len());
        let mut tx = self.writer.begin().await?;
        for item in items {
            let row = sqlx::query(&format!(
                "UPDATE jobs SET state = 'succeeded', result = ?, finished_at = ?, updated_at = ?, \
                 lease_expires_at = NULL \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND worker_id = ? \
                 RETURNING {TRANSITION_COLUMNS}"
            ))
            .bind(to_json(&item.result))
            .bind(now)
            .bind(now)
            .bind(item.job_id.to_string())
            .bind(item.attempt)
            .bind(worker.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                outcomes.push(ReportOutcome::Stale(item.job_id));
                continue;
            };
            let transition = transition_from_row(&row, JobState::Running)?;
            record(
                &mut tx,
                &row,
                &transition,
                EventKind::Succeeded,
                (now, Some(worker.as_str()), None),
            )
            .await?;
            outcomes.push(ReportOutcome::Applied(transition));
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub(super) async fn fail(&self, params: &FailParams) -> Result<Vec<ReportOutcome>, StoreError> {
        let now = ms(params.now);
        let worker = params.worker_id.as_str();
        let mut outcomes = Vec::with_capacity(params.items.len());
        let mut tx = self.writer.begin().await?;
        for (index, item) in params.items.iter().enumerate() {
            let id = item.job_id.to_string();
            // The retry policy and attempt budget never change while a job
            // runs, so reading them first is safe: the UPDATE below is still
            // fenced on state and attempt.
            let lease = sqlx::query(
                "SELECT retry, max_attempts, attempt_offset FROM jobs \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND worker_id = ?",
            )
            .bind(&id)
            .bind(item.attempt)
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(lease) = lease else {
                outcomes.push(ReportOutcome::Stale(item.job_id));
                continue;
            };
            let retry: RetryPolicy = serde_json::from_str(lease.try_get("retry")?)
                .map_err(|err| StoreError::corrupt("retry policy", err))?;
            let used = i64::from(item.attempt) - lease.try_get::<i64, _>("attempt_offset")?;
            let exhausted = used >= lease.try_get::<i64, _>("max_attempts")?;
            let to = if item.error.kind.is_retryable() && !exhausted {
                JobState::Retrying
            } else {
                JobState::Dead
            };
            let unit = params.jitter.get(index).copied().unwrap_or(0.5);
            let delay = retry.delay(item.attempt, unit);
            let run_at = now.saturating_add(ttl_ms(delay));
            let finished_at = (to == JobState::Dead).then_some(now);
            let row = sqlx::query(&format!(
                "UPDATE jobs SET state = ?, last_error = ?, run_at = ?, finished_at = ?, updated_at = ?, \
                 lease_expires_at = NULL \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND worker_id = ? \
                 RETURNING {TRANSITION_COLUMNS}"
            ))
            .bind(to.as_str())
            .bind(to_json(&item.error))
            .bind(if to == JobState::Retrying { run_at } else { now })
            .bind(finished_at)
            .bind(now)
            .bind(&id)
            .bind(item.attempt)
            .bind(worker)
            .fetch_one(&mut *tx)
            .await?;
            let transition = transition_from_row(&row, JobState::Running)?;
            let message = item.error.message.as_str();
            record(
                &mut tx,
                &row,
                &transition,
                EventKind::Failed,
                (now, Some(worker), Some(message)),
            )
            .await?;
            outcomes.push(ReportOutcome::Applied(transition));
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub(super) async fn release(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let now = ms(now);
        let mut outcomes = Vec::with_capacity(leases.len());
        let mut tx = self.writer.begin().await?;
        for lease in leases {
            let row = sqlx::query(&format!(
                "UPDATE jobs SET state = 'available', attempt_offset = attempt_offset + 1, run_at = ?, \
                 updated_at = ?, lease_expires_at = NULL \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND worker_id = ? \
                 RETURNING {TRANSITION_COLUMNS}"
            ))
            .bind(now)
            .bind(now)
            .bind(lease.job_id.to_string())
            .bind(lease.attempt)
            .bind(worker.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                outcomes.push(ReportOutcome::Stale(lease.job_id));
                continue;
            };
            let transition = transition_from_row(&row, JobState::Running)?;
            let message = Some("released unrun by the worker");
            record(
                &mut tx,
                &row,
                &transition,
                EventKind::Released,
                (now, Some(worker.as_str()), message),
            )
            .await?;
            outcomes.push(ReportOutcome::Applied(transition));
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    pub(super) async fn reap(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transition>, StoreError> {
        let now = ms(now);
        let error = to_json(&JobError::new(
            ErrorKind::LeaseExpired,
            "the worker stopped renewing its lease (it died, hung or lost its connection)",
        ));
        let mut tx = self.writer.begin().await?;
        let expired = sqlx::query(
            "SELECT id, attempt, worker_id FROM jobs WHERE state = 'running' AND lease_expires_at < ? \
             ORDER BY lease_expires_at LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut reaped = Vec::with_capacity(expired.len());
        for lease in expired {
            let id: String = lease.try_get("id")?;
            let worker: Option<String> = lease.try_get("worker_id")?;
            let row = sqlx::query(&format!(
                "UPDATE jobs SET \
                   state = CASE WHEN attempt - attempt_offset >= max_attempts THEN 'dead' ELSE 'available' END, \
                   finished_at = CASE WHEN attempt - attempt_offset >= max_attempts THEN ? ELSE NULL END, \
                   run_at = ?, updated_at = ?, lease_expires_at = NULL, last_error = ? \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND lease_expires_at < ? \
                 RETURNING {TRANSITION_COLUMNS}"
            ))
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(&error)
            .bind(&id)
            .bind(lease.try_get::<i64, _>("attempt")?)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let transition = transition_from_row(&row, JobState::Running)?;
            record(
                &mut tx,
                &row,
                &transition,
                EventKind::LeaseExpired,
                (now, worker.as_deref(), None),
            )
            .await?;
            reaped.push(transition);
        }
        tx.commit().await?;
        Ok(reaped)
    }
}
