//! [`LeaseStore`] for SQLite: claim with a lease, heartbeat, complete, fail,
//! release, and the reaper that takes back expired leases. Every transition
//! is one `UPDATE` fenced by `state = 'running' AND attempt = <token>` (a
//! claim and the reaper by the state they pick in), followed by its events,
//! in one transaction on the single writer connection.

use std::time::Duration;

use accord_model::{
    ClaimedJob, CompleteItem, EventKind, Failure, JobSpec, JobState, LeaseRef, Next, RetryPolicy,
    WorkerId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::notifications::enqueue_run;
use super::rows::{
    from_ms, insert_event, ms, parse_id, parse_steps, placeholders, to_json, NewEvent,
};
use super::SqliteStore;
use crate::schema::{
    lease_expired_error, parse_engine, parse_queue, parse_run_engine, parse_state, CLAIMABLE,
};
use crate::{
    ClaimParams, DeadRunVerdict, DeferLease, EscalateParams, FailParams, HeartbeatOutcome,
    LeaseStore, ReportOutcome, StoreError, Transition,
};

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

/// The state a claimed row was picked in, as an SQL expression over the
/// materialized `picked` (RETURNING sees only the new state). One
/// uncorrelated `IN` per claimable state, each built once into an index: a
/// correlated look-up would scan `picked` again for every claimed row.
fn picked_state() -> String {
    let arms: String = JobState::ALL
        .into_iter()
        .filter(|state| state.is_queued())
        .map(|state| {
            let state = state.as_str();
            format!(" WHEN id IN (SELECT id FROM picked WHERE state = '{state}') THEN '{state}'")
        })
        .collect();
    format!("CASE{arms} END")
}

/// Completes one leased job (fenced on state, attempt and worker) with its
/// event; `None` when the lease is not held. Shared with monitor
/// completions, which add their run's outcome to the same transaction.
pub(super) async fn complete_one(
    conn: &mut SqliteConnection,
    worker: &WorkerId,
    item: &CompleteItem,
    now: i64,
) -> Result<Option<Transition>, StoreError> {
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
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let transition = transition_from_row(&row, JobState::Running)?;
    record(
        conn,
        &row,
        &transition,
        EventKind::Succeeded,
        (now, Some(worker.as_str()), None),
    )
    .await?;
    Ok(Some(transition))
}

/// Finishes the monitor run of a job that failed for good, in the failure's
/// transaction: a smoke check's run failed (the site is down), with its
/// verdict recorded and notified when one came with the failure and the
/// baseline has not moved; any other run in error.
async fn finish_failed_run(
    conn: &mut SqliteConnection,
    job_id: &str,
    message: &str,
    verdict: Option<&DeadRunVerdict>,
    now: i64,
) -> Result<(), StoreError> {
    if let Some(verdict) = verdict {
        if record_dead_verdict(conn, job_id, message, verdict, now).await? {
            return Ok(());
        }
    }
    sqlx::query(
        "UPDATE monitor_runs SET state = CASE workflow WHEN 'smoke_check' THEN 'failed' ELSE 'error' END, \
         error = ?, finished_at = ? WHERE job_id = ? AND state = 'running'",
    )
    .bind(message)
    .bind(now)
    .bind(job_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a dead smoke check's verdict on its run, makes it the baseline
/// and writes its messages; false (nothing written) when the baseline
/// moved since the verdict was judged or the run is no longer running.
async fn record_dead_verdict(
    conn: &mut SqliteConnection,
    job_id: &str,
    message: &str,
    verdict: &DeadRunVerdict,
    now: i64,
) -> Result<bool, StoreError> {
    let monitor = verdict.monitor_id.to_string();
    // On the one writer nothing moves the baseline between this read and
    // the commit.
    let baseline: Option<Option<i64>> =
        sqlx::query_scalar("SELECT baseline_run_id FROM monitors WHERE id = ?")
            .bind(&monitor)
            .fetch_optional(&mut *conn)
            .await?;
    if baseline != Some(verdict.baseline_run_id) {
        return Ok(false);
    }
    let recorded = sqlx::query(
        "UPDATE monitor_runs SET state = 'failed', error = ?, outcome = ?, snapshot = ?, \
         events = ?, finished_at = ? \
         WHERE id = ? AND job_id = ? AND monitor_id = ? AND state = 'running'",
    )
    .bind(message)
    .bind(to_json(&verdict.outcome))
    .bind(to_json(&verdict.snapshot))
    .bind((!verdict.events.is_empty()).then(|| to_json(&verdict.events)))
    .bind(now)
    .bind(verdict.run_id)
    .bind(job_id)
    .bind(&monitor)
    .execute(&mut *conn)
    .await?;
    if recorded.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE monitors SET baseline_run_id = ? WHERE id = ?")
        .bind(verdict.run_id)
        .bind(&monitor)
        .execute(&mut *conn)
        .await?;
    if let Some(notice) = &verdict.notice {
        enqueue_run(conn, &monitor, verdict.run_id, notice, now).await?;
    }
    Ok(true)
}

/// Finishes, in error, the monitor run of a job that ended without a
/// verdict on the page: its worker died for good (lease expired on the
/// last attempt) or it was cancelled.
pub(super) async fn finish_run_in_error(
    conn: &mut SqliteConnection,
    job_id: &str,
    message: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE monitor_runs SET state = 'error', error = ?, finished_at = ? \
         WHERE job_id = ? AND state = 'running'",
    )
    .bind(message)
    .bind(now)
    .bind(job_id)
    .execute(conn)
    .await?;
    Ok(())
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn job_claim_available(
        &self,
        params: &ClaimParams,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let now = ms(params.now);
        let lease_until = now.saturating_add(ttl_ms(params.lease_ttl));
        let mut filters = if params.queues.is_empty() {
            String::new()
        } else {
            format!(" AND queue IN ({})", placeholders(params.queues.len()))
        };
        if params.workspace.is_some() {
            filters.push_str(" AND workspace_id = ?");
        }
        let only_engine = params.only_engine();
        if only_engine.is_some() {
            filters.push_str(" AND run_on = ?");
        }
        // One statement picks and leases. The pick is materialized before
        // the update runs, so it also tells each row's state before the claim.
        let sql = format!(
            "WITH picked AS MATERIALIZED ( \
               SELECT id, state FROM jobs WHERE state IN {CLAIMABLE} AND run_at <= ?{filters} \
               ORDER BY priority, run_at, id LIMIT ? \
             ) \
             UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = ?, started_at = ?, \
               updated_at = ?, lease_expires_at = ?, finished_at = NULL \
             WHERE id IN (SELECT id FROM picked) AND state IN {CLAIMABLE} \
             RETURNING {TRANSITION_COLUMNS}, priority, steps, timeout_seconds, lease_expires_at, run_at, \
               run_on, engine_reason, {from_state} AS from_state",
            from_state = picked_state(),
        );
        let mut claim = sqlx::query(&sql).bind(now);
        for queue in &params.queues {
            claim = claim.bind(queue.as_str());
        }
        if let Some(workspace) = params.workspace {
            claim = claim.bind(workspace.to_string());
        }
        if let Some(engine) = only_engine {
            claim = claim.bind(engine.as_str());
        }
        let mut tx = self.writer.begin().await?;
        let mut rows = claim
            .bind(params.limit)
            .bind(params.worker_id.as_str())
            .bind(now)
            .bind(now)
            .bind(lease_until)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // RETURNING comes in no particular order; claims answer most urgent first.
        let mut keyed = Vec::with_capacity(rows.len());
        for row in rows.drain(..) {
            let key: (i64, i64, String) = (
                row.try_get("priority")?,
                row.try_get("run_at")?,
                row.try_get("id")?,
            );
            keyed.push((key, row));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));

        let mut claimed = Vec::with_capacity(keyed.len());
        let mut events: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt, worker_id) ",
        );
        let mut event_rows = Vec::with_capacity(keyed.len());
        for (_, row) in &keyed {
            let from = parse_state(row.try_get("from_state")?)?;
            let transition = transition_from_row(row, from)?;
            let workspace: String = row.try_get("workspace_id")?;
            event_rows.push((
                workspace,
                transition.job_id.to_string(),
                from,
                transition.attempt,
            ));
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
                run_on: parse_run_engine(row.try_get("run_on")?)?,
                engine_reason: row.try_get("engine_reason")?,
                policies: None,
            });
        }
        events.push_values(&event_rows, |mut b, (workspace, job_id, from, attempt)| {
            b.push_bind(workspace)
                .push_bind(job_id)
                .push_bind(now)
                .push_bind(EventKind::Claimed.as_str())
                .push_bind(from.as_str())
                .push_bind(JobState::Running.as_str())
                .push_bind(i64::from(*attempt))
                .push_bind(params.worker_id.as_str());
        });
        events.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn job_heartbeat_leased(
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

    async fn job_complete_if_leased(
        &self,
        worker: &WorkerId,
        items: &[CompleteItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let now = ms(now);
        let mut outcomes = Vec::with_capacity(items.len());
        let mut tx = self.writer.begin().await?;
        for item in items {
            outcomes.push(match complete_one(&mut tx, worker, item, now).await? {
                Some(transition) => ReportOutcome::Applied(transition),
                None => ReportOutcome::Stale(item.job_id),
            });
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn job_fail_if_leased(
        &self,
        params: &FailParams,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let now = ms(params.now);
        let worker = params.worker_id.as_str();
        let mut outcomes = Vec::with_capacity(params.items.len());
        let mut tx = self.writer.begin().await?;
        for (index, item) in params.items.iter().enumerate() {
            let id = item.job_id.to_string();
            // What the retry decision needs (policy and attempt budget) is
            // fixed while the job is leased, so this read cannot go stale;
            // the UPDATE below is still fenced on state, attempt and worker.
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
            let failure = Failure {
                attempt: item.attempt,
                uncounted: lease.try_get::<i64, _>("attempt_offset")? as u32,
                max_attempts: lease.try_get::<i64, _>("max_attempts")? as u32,
                kind: item.error.kind,
            };
            let unit = params.jitter.get(index).copied().unwrap_or(0.5);
            let (to, run_at, finished_at) = match retry.after_failure(failure, params.now, unit) {
                Next::Retry { at } => (JobState::Retrying, ms(at), None),
                Next::Dead => (JobState::Dead, now, Some(now)),
            };
            let row = sqlx::query(&format!(
                "UPDATE jobs SET state = ?, last_error = ?, run_at = ?, finished_at = ?, updated_at = ?, \
                 lease_expires_at = NULL \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND worker_id = ? \
                 RETURNING {TRANSITION_COLUMNS}"
            ))
            .bind(to.as_str())
            .bind(to_json(&item.error))
            .bind(run_at)
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
            if transition.to == JobState::Dead {
                let verdict = params.verdicts.iter().find(|v| v.job_id == item.job_id);
                finish_failed_run(&mut tx, &id, message, verdict, now).await?;
            }
            outcomes.push(ReportOutcome::Applied(transition));
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn job_release_if_leased(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let items = leases
            .iter()
            .map(|lease| (*lease, now, "released unrun by the worker"));
        self.put_back(worker, items, now).await
    }

    async fn job_defer_if_leased(
        &self,
        worker: &WorkerId,
        items: &[DeferLease],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let items = items
            .iter()
            .map(|item| (item.lease, item.run_at, item.message.as_str()));
        self.put_back(worker, items, now).await
    }

    async fn job_escalate_if_leased(
        &self,
        params: &EscalateParams,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let now = ms(params.now);
        let remember_until = now.saturating_add(ttl_ms(params.remember_for));
        let worker = params.worker_id.as_str();
        let mut outcomes = Vec::with_capacity(params.items.len());
        let mut tx = self.writer.begin().await?;
        for item in &params.items {
            let row = sqlx::query(&format!(
                "UPDATE jobs SET state = 'available', attempt_offset = attempt_offset + 1, run_at = ?, \
                 updated_at = ?, lease_expires_at = NULL, run_on = 'browser', engine_reason = ? \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND worker_id = ? \
                   AND engine = 'auto' AND run_on = 'http' \
                 RETURNING {TRANSITION_COLUMNS}, steps"
            ))
            .bind(now)
            .bind(now)
            .bind(&item.reason)
            .bind(item.job_id.to_string())
            .bind(item.attempt)
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                outcomes.push(ReportOutcome::Stale(item.job_id));
                continue;
            };
            let transition = transition_from_row(&row, JobState::Running)?;
            let message = format!("moved to the browser: {}", item.reason);
            record(
                &mut tx,
                &row,
                &transition,
                EventKind::Released,
                (now, Some(worker), Some(&message)),
            )
            .await?;
            if let Some(domain) = accord_model::auto_domain(&parse_steps(row.try_get("steps")?)?) {
                let workspace: String = row.try_get("workspace_id")?;
                sqlx::query(
                    "INSERT INTO domain_engines (workspace_id, domain, engine, reason, decided_at, expires_at) \
                     VALUES (?, ?, 'browser', ?, ?, ?) \
                     ON CONFLICT (workspace_id, domain) DO UPDATE SET engine = excluded.engine, \
                       reason = excluded.reason, decided_at = excluded.decided_at, \
                       expires_at = excluded.expires_at",
                )
                .bind(workspace)
                .bind(domain)
                .bind(&item.reason)
                .bind(now)
                .bind(remember_until)
                .execute(&mut *tx)
                .await?;
            }
            outcomes.push(ReportOutcome::Applied(transition));
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn job_reap_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transition>, StoreError> {
        let now = ms(now);
        let error = to_json(&lease_expired_error());
        let mut tx = self.writer.begin().await?;
        // One statement picks and takes back the expired leases; the pick,
        // materialized first, keeps each one's expiry for the order. (That
        // look-up scans the pick once per row; a pass reaps few leases, at
        // most `limit`, and only when workers died.)
        let mut rows = sqlx::query(&format!(
            "WITH expired AS MATERIALIZED ( \
               SELECT id, lease_expires_at FROM jobs WHERE state = 'running' AND lease_expires_at < ? \
               ORDER BY lease_expires_at LIMIT ? \
             ) \
             UPDATE jobs SET \
               state = CASE WHEN attempt - attempt_offset >= max_attempts THEN 'dead' ELSE 'available' END, \
               finished_at = CASE WHEN attempt - attempt_offset >= max_attempts THEN ? ELSE NULL END, \
               run_at = ?, updated_at = ?, lease_expires_at = NULL, last_error = ? \
             WHERE id IN (SELECT id FROM expired) AND state = 'running' AND lease_expires_at < ? \
             RETURNING {TRANSITION_COLUMNS}, worker_id, \
               (SELECT expired.lease_expires_at FROM expired WHERE expired.id = jobs.id) AS expired_at"
        ))
        .bind(now)
        .bind(limit)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(&error)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut keyed = Vec::with_capacity(rows.len());
        for row in rows.drain(..) {
            let key: (i64, String) = (row.try_get("expired_at")?, row.try_get("id")?);
            keyed.push((key, row));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut reaped = Vec::with_capacity(keyed.len());
        for (_, row) in &keyed {
            let transition = transition_from_row(row, JobState::Running)?;
            let worker: Option<String> = row.try_get("worker_id")?;
            record(
                &mut tx,
                row,
                &transition,
                EventKind::LeaseExpired,
                (now, worker.as_deref(), None),
            )
            .await?;
            if transition.to == JobState::Dead {
                let id: String = row.try_get("id")?;
                finish_run_in_error(&mut tx, &id, crate::schema::RUN_LEASE_EXPIRED, now).await?;
            }
            reaped.push(transition);
        }
        tx.commit().await?;
        Ok(reaped)
    }
}

impl SqliteStore {
    /// Makes leased jobs available again at their own time without counting
    /// the attempt: release and defer.
    async fn put_back(
        &self,
        worker: &WorkerId,
        items: impl Iterator<Item = (LeaseRef, DateTime<Utc>, &str)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let now = ms(now);
        let mut outcomes = Vec::new();
        let mut tx = self.writer.begin().await?;
        for (lease, run_at, message) in items {
            let row = sqlx::query(&format!(
                "UPDATE jobs SET state = 'available', attempt_offset = attempt_offset + 1, run_at = ?, \
                 updated_at = ?, lease_expires_at = NULL \
                 WHERE id = ? AND state = 'running' AND attempt = ? AND worker_id = ? \
                 RETURNING {TRANSITION_COLUMNS}"
            ))
            .bind(ms(run_at).max(now))
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
            record(
                &mut tx,
                &row,
                &transition,
                EventKind::Released,
                (now, Some(worker.as_str()), Some(message)),
            )
            .await?;
            outcomes.push(ReportOutcome::Applied(transition));
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}
