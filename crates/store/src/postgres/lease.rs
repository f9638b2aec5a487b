//! [`LeaseStore`] for PostgreSQL: claim with a lease, heartbeat, complete,
//! fail, release, and the reaper that takes back expired leases. Every transition
//! is fenced by `state = 'running' AND attempt = <token> AND worker_id = <worker>`
//! per item, and each is one statement that also writes the job events.

use std::collections::HashMap;
use std::time::Duration;

use accord_model::{
    ClaimedJob, CompleteItem, EventKind, Failure, JobId, JobSpec, JobState, LeaseRef, Next,
    RetryPolicy, WorkerId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::notifications::enqueue_run;
use super::rows::{column, count, counted, job_id, json, rows_of, state, steps};
use super::PostgresStore;
use crate::schema::{lease_expired_error, parse_engine, parse_queue, parse_run_engine, CLAIMABLE};
use crate::{
    ClaimParams, DeadRunVerdict, DeferLease, EscalateParams, FailParams, HeartbeatOutcome,
    LeaseStore, ReportOutcome, StoreError, Transition,
};

/// Columns a transition returns, read by [`transition_from_row`].
const TRANSITION_COLUMNS: &str =
    "j.id, j.workspace_id, j.queue, j.engine, j.state, j.attempt, j.started_at, j.finished_at";

fn transition_from_row(row: &PgRow, from: JobState) -> Result<Transition, StoreError> {
    Ok(Transition {
        job_id: job_id(row, "id")?,
        queue: parse_queue(row.try_get("queue")?)?,
        engine: parse_engine(row.try_get("engine")?)?,
        from,
        to: state(row, "state")?,
        attempt: count(row, "attempt", "attempt")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// `now` plus a duration; far-future overflows saturate like SQLite's do.
fn after(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn interval(duration: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(duration.as_micros()).unwrap_or(i64::MAX),
    }
}

/// Completes one leased job inside `tx`, fenced on its lease like
/// `job_complete_if_leased`: its transition, or `None` when the worker no
/// longer holds the lease (nothing changed). For completions that write
/// more in the same transaction (a monitor run, a workflow run).
pub(super) async fn complete_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    worker: &WorkerId,
    item: &CompleteItem,
    now: DateTime<Utc>,
) -> Result<Option<Transition>, StoreError> {
    match complete_in(tx, worker, &[item], now).await?.pop() {
        Some(ReportOutcome::Applied(transition)) => Ok(Some(transition)),
        _ => Ok(None),
    }
}

/// Completes leased jobs inside `tx` as one statement, fenced on their
/// leases like `job_complete_if_leased`: each item's outcome, in order.
pub(super) async fn complete_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    worker: &WorkerId,
    items: &[&CompleteItem],
    now: DateTime<Utc>,
) -> Result<Vec<ReportOutcome>, StoreError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let (ords, ids, attempts) = item_arrays(items.iter().map(|item| LeaseRef {
        job_id: item.job_id,
        attempt: item.attempt,
    }));
    let results: Vec<_> = items.iter().map(|item| Json(&item.result)).collect();
    let rows = sqlx::query(&complete_sql())
        .bind(now)
        .bind(worker.as_str())
        .bind(ords)
        .bind(ids)
        .bind(attempts)
        .bind(results)
        .fetch_all(&mut **tx)
        .await?;
    report_outcomes(&rows, items.iter().map(|item| item.job_id))
}

/// The [`Report`] statement that completes jobs with their results.
fn complete_sql() -> String {
    Report {
        extra: &[("result", "jsonb[]")],
        set: "state = 'succeeded', result = items.result, finished_at = $1",
        kind: EventKind::Succeeded,
        message: "NULL::text",
    }
    .sql()
}

/// A worker's report about jobs it leased (complete, fail, release) as one
/// statement. Parameters: `$1` now, `$2` the worker, `$3` each item's index
/// in the call, `$4` job ids, `$5` attempts, then one array per `extra`
/// column. The statement returns [`TRANSITION_COLUMNS`] and `ord` for every
/// item it applied.
#[derive(Debug)]
pub(super) struct Report<'a> {
    /// Further per-item columns: name and array type.
    pub(super) extra: &'a [(&'a str, &'a str)],
    /// Assignments besides `updated_at` and `lease_expires_at`; `items.<column>` is in scope.
    pub(super) set: &'a str,
    pub(super) kind: EventKind,
    /// The event's message, an SQL expression over `items`.
    pub(super) message: &'a str,
}

impl Report<'_> {
    pub(super) fn sql(&self) -> String {
        let Self {
            extra,
            set,
            kind,
            message,
        } = self;
        let kind = kind.as_str();
        let names: String = extra.iter().map(|(name, _)| format!(", {name}")).collect();
        let arrays: String = extra
            .iter()
            .enumerate()
            .map(|(n, (_, array))| format!(", ${}::{array}", n + 6))
            .collect();
        // Items naming the same lease twice apply once, as the first of
        // them: the later ones find the job no longer running, as they would
        // one at a time. Rows are locked in id order so that two reports
        // about overlapping jobs never deadlock.
        format!(
            "WITH items AS ( \
               SELECT DISTINCT ON (job_id, attempt) * \
               FROM UNNEST($3::int4[], $4::uuid[], $5::int8[]{arrays}) AS i(ord, job_id, attempt{names}) \
               ORDER BY job_id, attempt, ord \
             ), leased AS ( \
               SELECT items.* FROM jobs j JOIN items ON j.id = items.job_id \
               WHERE j.state = 'running' AND j.attempt = items.attempt AND j.worker_id = $2 \
               ORDER BY j.id FOR UPDATE OF j \
             ), updated AS ( \
               UPDATE jobs j SET {set}, updated_at = $1, lease_expires_at = NULL \
               FROM leased AS items \
               WHERE j.id = items.job_id AND j.state = 'running' AND j.attempt = items.attempt \
                 AND j.worker_id = $2 \
               RETURNING {TRANSITION_COLUMNS}, j.priority, items.ord, {message} AS message \
             ), events AS ( \
               INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt, worker_id, message) \
               SELECT workspace_id, id, $1, '{kind}', 'running', state, attempt, $2, message \
               FROM updated ORDER BY ord \
             ), {counted} \
             SELECT * FROM updated",
            counted = counted("updated", "'running'", "c.state"),
        )
    }
}

/// Per-item outcomes, in the order of the call's items, from the rows a
/// [`Report`] statement returned.
pub(super) fn report_outcomes(
    rows: &[PgRow],
    items: impl Iterator<Item = JobId>,
) -> Result<Vec<ReportOutcome>, StoreError> {
    let mut applied = HashMap::with_capacity(rows.len());
    for row in rows {
        let ord: i32 = row.try_get("ord")?;
        applied.insert(ord, transition_from_row(row, JobState::Running)?);
    }
    Ok(items
        .enumerate()
        .map(|(index, job_id)| {
            let ord = i32::try_from(index).unwrap_or(i32::MAX);
            match applied.remove(&ord) {
                Some(transition) => ReportOutcome::Applied(transition),
                None => ReportOutcome::Stale(job_id),
            }
        })
        .collect())
}

/// The `$3`, `$4` and `$5` arrays of a [`Report`]: index, job id, attempt.
pub(super) fn item_arrays(
    items: impl Iterator<Item = LeaseRef>,
) -> (Vec<i32>, Vec<Uuid>, Vec<i64>) {
    let mut arrays = (Vec::new(), Vec::new(), Vec::new());
    for (index, lease) in items.enumerate() {
        arrays.0.push(i32::try_from(index).unwrap_or(i32::MAX));
        arrays.1.push(lease.job_id.as_uuid());
        arrays.2.push(i64::from(lease.attempt));
    }
    arrays
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn job_claim_available(
        &self,
        params: &ClaimParams,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let mut filters = String::new();
        let mut next_param = 5;
        if !params.queues.is_empty() {
            filters.push_str(&format!(" AND queue = ANY(${next_param})"));
            next_param += 1;
        }
        if params.workspace.is_some() {
            filters.push_str(&format!(" AND workspace_id = ${next_param}"));
            next_param += 1;
        }
        let only_engine = params.only_engine();
        if only_engine.is_some() {
            filters.push_str(&format!(" AND run_on = ${next_param}"));
        }
        // SKIP LOCKED: concurrent claims each take different rows and never
        // wait for one another. The UPDATE is still fenced on the state the
        // row was picked in.
        //
        // The plan must not depend on statistics, which are always stale in
        // a queue: `LIMIT (SELECT $4)` hides the limit, so the planner plans
        // to stop early and walks `jobs_claimable` in claim order. Shown a
        // limit larger than the number of claimable jobs it expects (after
        // any burst of inserts), it would rather fetch every due job and
        // sort them, for every claim: a backlog of n jobs would cost n² to
        // drain. The picked rows are then updated through the primary key
        // (see `rows_of`).
        let sql = format!(
            "WITH picked AS ( \
               SELECT id, state FROM jobs \
               WHERE state IN {CLAIMABLE} AND run_at <= $1{filters} \
               ORDER BY priority, run_at, id LIMIT (SELECT $4::int8) \
               FOR UPDATE SKIP LOCKED \
             ), claimed AS ( \
               UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, worker_id = $2, \
                 started_at = $1, updated_at = $1, lease_expires_at = $3, finished_at = NULL \
               FROM {picked} WHERE j.id = p.id AND j.state = p.state \
               RETURNING {TRANSITION_COLUMNS}, j.priority, j.run_at, j.steps, j.timeout_seconds, \
                 j.lease_expires_at, j.run_on, j.engine_reason, p.state AS from_state \
             ), events AS ( \
               INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt, worker_id) \
               SELECT workspace_id, id, $1, 'claimed', from_state, state, attempt, $2 \
               FROM claimed ORDER BY priority, run_at, id \
             ), {counted} \
             SELECT * FROM claimed ORDER BY priority, run_at, id",
            picked = rows_of("picked", &["id", "state"], "p"),
            counted = counted("claimed", "c.from_state", "c.state"),
        );
        let mut query = sqlx::query(&sql)
            .bind(params.now)
            .bind(params.worker_id.as_str())
            .bind(after(params.now, params.lease_ttl))
            .bind(i64::from(params.limit));
        if !params.queues.is_empty() {
            let queues: Vec<&str> = params.queues.iter().map(|q| q.as_str()).collect();
            query = query.bind(queues);
        }
        if let Some(workspace) = params.workspace {
            query = query.bind(workspace.as_uuid());
        }
        if let Some(engine) = only_engine {
            query = query.bind(engine.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let transition = transition_from_row(row, state(row, "from_state")?)?;
                Ok(ClaimedJob {
                    job_id: transition.job_id,
                    attempt: transition.attempt,
                    lease_expires_at: row.try_get("lease_expires_at")?,
                    due_at: row.try_get("run_at")?,
                    queue: transition.queue,
                    spec: JobSpec {
                        engine: transition.engine,
                        steps: steps(row)?,
                        timeout_seconds: count(row, "timeout_seconds", "timeout")?,
                    },
                    run_on: parse_run_engine(row.try_get("run_on")?)?,
                    engine_reason: row.try_get("engine_reason")?,
                    policies: None,
                })
            })
            .collect()
    }

    async fn job_heartbeat_leased(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
        lease_ttl: Duration,
    ) -> Result<HeartbeatOutcome, StoreError> {
        // A lease never outlives the job's timeout by more than one lease
        // length, so a hung attempt is reaped even if its heartbeats go on.
        let (_, ids, attempts) = item_arrays(leases.iter().copied());
        let rows = sqlx::query(
            "WITH items AS ( \
               SELECT * FROM UNNEST($3::uuid[], $4::int8[]) WITH ORDINALITY AS i(job_id, attempt, ord) \
             ), leased AS ( \
               SELECT j.id, j.attempt FROM jobs j \
               WHERE EXISTS (SELECT 1 FROM items WHERE items.job_id = j.id AND items.attempt = j.attempt) \
                 AND j.state = 'running' AND j.worker_id = $2 \
               ORDER BY j.id FOR UPDATE \
             ), extended AS ( \
               UPDATE jobs j SET lease_expires_at = \
                 LEAST($5, j.started_at + j.timeout_seconds * interval '1 second' + $6) \
               FROM leased \
               WHERE j.id = leased.id AND j.state = 'running' AND j.attempt = leased.attempt \
                 AND j.worker_id = $2 \
                 AND j.started_at + j.timeout_seconds * interval '1 second' + $6 > $1 \
               RETURNING j.id, j.attempt \
             ) \
             SELECT items.job_id, \
               EXISTS (SELECT 1 FROM extended e WHERE e.id = items.job_id AND e.attempt = items.attempt) \
                 AS extended, \
               EXISTS (SELECT 1 FROM jobs c WHERE c.id = items.job_id AND c.state = 'cancelled' \
                 AND c.attempt = items.attempt) AS cancelled \
             FROM items ORDER BY items.ord",
        )
        .bind(now)
        .bind(worker.as_str())
        .bind(ids)
        .bind(attempts)
        .bind(after(now, lease_ttl))
        .bind(interval(lease_ttl))
        .fetch_all(&self.pool)
        .await?;
        let mut outcome = HeartbeatOutcome::default();
        for row in &rows {
            let id = job_id(row, "job_id")?;
            if row.try_get("extended")? {
                outcome.extended.push(id);
            } else if row.try_get("cancelled")? {
                outcome.cancelled.push(id);
            } else {
                outcome.lost.push(id);
            }
        }
        Ok(outcome)
    }

    async fn job_complete_if_leased(
        &self,
        worker: &WorkerId,
        items: &[CompleteItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let sql = complete_sql();
        let (ords, ids, attempts) = item_arrays(items.iter().map(|item| LeaseRef {
            job_id: item.job_id,
            attempt: item.attempt,
        }));
        let results: Vec<_> = items.iter().map(|item| Json(&item.result)).collect();
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(worker.as_str())
            .bind(ords)
            .bind(ids)
            .bind(attempts)
            .bind(results)
            .fetch_all(&self.pool)
            .await?;
        report_outcomes(&rows, items.iter().map(|item| item.job_id))
    }

    async fn job_fail_if_leased(
        &self,
        params: &FailParams,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let now = params.now;
        let worker = params.worker_id.as_str();
        let mut tx = self.pool.begin().await?;
        // What the retry decision needs (policy and attempt budget) is
        // fixed while the job is leased, so this read cannot go stale; the
        // lock keeps the leases ours until the fenced UPDATE below.
        let ids: Vec<Uuid> = params.items.iter().map(|i| i.job_id.as_uuid()).collect();
        let leased = sqlx::query(
            "SELECT id, attempt, retry, max_attempts, attempt_offset FROM jobs \
             WHERE id = ANY($1) AND state = 'running' AND worker_id = $2 ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .bind(worker)
        .fetch_all(&mut *tx)
        .await?;
        let mut budgets = HashMap::with_capacity(leased.len());
        for row in &leased {
            let retry: RetryPolicy = json(row, "retry", "retry policy")?;
            let budget = (
                count(row, "attempt_offset", "attempt offset")?,
                count(row, "max_attempts", "max attempts")?,
            );
            let lease = (job_id(row, "id")?, count(row, "attempt", "attempt")?);
            budgets.insert(lease, (retry, budget));
        }

        let mut ords = Vec::new();
        let mut ids = Vec::new();
        let mut attempts = Vec::new();
        let mut states = Vec::new();
        let mut errors = Vec::new();
        let mut run_ats = Vec::new();
        let mut finished_ats = Vec::new();
        let mut messages = Vec::new();
        for (index, item) in params.items.iter().enumerate() {
            // Items without a lease stay out of the statement: they are stale.
            let Some((retry, (uncounted, max_attempts))) =
                budgets.get(&(item.job_id, item.attempt))
            else {
                continue;
            };
            let failure = Failure {
                attempt: item.attempt,
                uncounted: *uncounted,
                max_attempts: *max_attempts,
                kind: item.error.kind,
            };
            let unit = params.jitter.get(index).copied().unwrap_or(0.5);
            let (to, run_at, finished_at) = match retry.after_failure(failure, now, unit) {
                Next::Retry { at } => (JobState::Retrying, at, None),
                Next::Dead => (JobState::Dead, now, Some(now)),
            };
            ords.push(i32::try_from(index).unwrap_or(i32::MAX));
            ids.push(item.job_id.as_uuid());
            attempts.push(i64::from(item.attempt));
            states.push(to.as_str());
            errors.push(Json(&item.error));
            run_ats.push(run_at);
            finished_ats.push(finished_at);
            messages.push(item.error.message.as_str());
        }
        let sql = Report {
            extra: &[
                ("to_state", "text[]"),
                ("error", "jsonb[]"),
                ("run_at", "timestamptz[]"),
                ("finished_at", "timestamptz[]"),
                ("message", "text[]"),
            ],
            set: "state = items.to_state, last_error = items.error, run_at = items.run_at, \
                  finished_at = items.finished_at",
            kind: EventKind::Failed,
            message: "items.message",
        }
        .sql();
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(worker)
            .bind(ords)
            .bind(ids)
            .bind(attempts)
            .bind(states)
            .bind(errors)
            .bind(run_ats)
            .bind(finished_ats)
            .bind(messages)
            .fetch_all(&mut *tx)
            .await?;
        // A job that failed for good finishes its monitor run in the same
        // transaction: a smoke check's run failed (the site is down), any
        // other run in error.
        let mut dead = Vec::new();
        let mut dead_messages = Vec::new();
        for row in &rows {
            if state(row, "state")? == JobState::Dead {
                let id = job_id(row, "id")?;
                let message = column::<Option<String>>(row, "message", "event message")?;
                let verdict = params.verdicts.iter().find(|v| v.job_id == id);
                if let Some(verdict) = verdict {
                    let message = message.as_deref().unwrap_or_default();
                    if record_dead_verdict(&mut tx, message, verdict, now).await? {
                        continue;
                    }
                }
                dead.push(id.as_uuid());
                dead_messages.push(message);
            }
        }
        if !dead.is_empty() {
            sqlx::query(
                "UPDATE monitor_runs r SET state = CASE r.workflow WHEN 'smoke_check' THEN 'failed' \
                 ELSE 'error' END, error = d.message, finished_at = $1 \
                 FROM UNNEST($2::uuid[], $3::text[]) AS d(job_id, message) \
                 WHERE r.job_id = d.job_id AND r.state = 'running'",
            )
            .bind(now)
            .bind(&dead)
            .bind(&dead_messages)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        report_outcomes(&rows, params.items.iter().map(|item| item.job_id))
    }

    async fn job_release_if_leased(
        &self,
        worker: &WorkerId,
        leases: &[LeaseRef],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        // Released jobs are deferred until now.
        let items: Vec<DeferLease> = leases
            .iter()
            .map(|lease| DeferLease {
                lease: *lease,
                run_at: now,
                message: "released unrun by the worker".to_owned(),
            })
            .collect();
        self.job_defer_if_leased(worker, &items, now).await
    }

    async fn job_defer_if_leased(
        &self,
        worker: &WorkerId,
        items: &[DeferLease],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let sql = Report {
            extra: &[("run_at", "timestamptz[]"), ("message", "text[]")],
            set: "state = 'available', attempt_offset = j.attempt_offset + 1, \
                  run_at = GREATEST(items.run_at, $1)",
            kind: EventKind::Released,
            message: "items.message",
        }
        .sql();
        let (ords, ids, attempts) = item_arrays(items.iter().map(|item| item.lease));
        let run_ats: Vec<DateTime<Utc>> = items.iter().map(|item| item.run_at).collect();
        let messages: Vec<&str> = items.iter().map(|item| item.message.as_str()).collect();
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(worker.as_str())
            .bind(ords)
            .bind(ids)
            .bind(attempts)
            .bind(run_ats)
            .bind(messages)
            .fetch_all(&self.pool)
            .await?;
        let outcomes = report_outcomes(&rows, items.iter().map(|item| item.lease.job_id))?;
        if !rows.is_empty() {
            self.announce();
        }
        Ok(outcomes)
    }

    async fn job_escalate_if_leased(
        &self,
        params: &EscalateParams,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let remember_until = after(params.now, params.remember_for);
        let worker = params.worker_id.as_str();
        let sql = format!(
            "WITH updated AS ( \
               UPDATE jobs j SET state = 'available', attempt_offset = j.attempt_offset + 1, \
                 run_at = $1, updated_at = $1, lease_expires_at = NULL, run_on = 'browser', \
                 engine_reason = $5 \
               WHERE j.id = $3 AND j.state = 'running' AND j.attempt = $4 AND j.worker_id = $2 \
                 AND j.engine = 'auto' AND j.run_on = 'http' \
               RETURNING {TRANSITION_COLUMNS}, j.priority, j.steps \
             ), events AS ( \
               INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt, worker_id, message) \
               SELECT workspace_id, id, $1, 'released', 'running', state, attempt, $2, \
                 'moved to the browser: ' || $5 \
               FROM updated \
             ), {counted} \
             SELECT * FROM updated",
            counted = counted("updated", "'running'", "c.state"),
        );
        let mut outcomes = Vec::with_capacity(params.items.len());
        let mut tx = self.pool.begin().await?;
        for item in &params.items {
            let row = sqlx::query(&sql)
                .bind(params.now)
                .bind(worker)
                .bind(item.job_id.as_uuid())
                .bind(i64::from(item.attempt))
                .bind(&item.reason)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                outcomes.push(ReportOutcome::Stale(item.job_id));
                continue;
            };
            if let Some(domain) = accord_model::auto_domain(&steps(&row)?) {
                let workspace: Uuid = row.try_get("workspace_id")?;
                sqlx::query(
                    "INSERT INTO domain_engines (workspace_id, domain, engine, reason, decided_at, expires_at) \
                     VALUES ($1, $2, 'browser', $3, $4, $5) \
                     ON CONFLICT (workspace_id, domain) DO UPDATE SET engine = excluded.engine, \
                       reason = excluded.reason, decided_at = excluded.decided_at, \
                       expires_at = excluded.expires_at",
                )
                .bind(workspace)
                .bind(domain)
                .bind(&item.reason)
                .bind(params.now)
                .bind(remember_until)
                .execute(&mut *tx)
                .await?;
            }
            outcomes.push(ReportOutcome::Applied(transition_from_row(
                &row,
                JobState::Running,
            )?));
        }
        tx.commit().await?;
        if outcomes
            .iter()
            .any(|outcome| matches!(outcome, ReportOutcome::Applied(_)))
        {
            self.announce();
        }
        Ok(outcomes)
    }

    async fn job_reap_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transition>, StoreError> {
        // The reaper runs on every maintenance pass of the leading process,
        // so it also keeps the count deltas short. First, so that a failure
        // here never loses the transitions below.
        self.fold_counts().await?;
        let error = lease_expired_error();
        // SKIP LOCKED: a lease that a worker is reporting on right now is
        // left to the report; if it is still expired afterwards, the next
        // sweep takes it. The hidden limit and `rows_of` keep the plan a
        // walk of `jobs_leased` in expiry order that stops early, then
        // primary-key look-ups (see `claim`).
        let rows = sqlx::query(&format!(
            "WITH expired AS ( \
               SELECT id, attempt, lease_expires_at FROM jobs \
               WHERE state = 'running' AND lease_expires_at < $1 \
               ORDER BY lease_expires_at LIMIT (SELECT $2::int8) \
               FOR UPDATE SKIP LOCKED \
             ), reaped AS ( \
               UPDATE jobs j SET \
                 state = CASE WHEN j.attempt - j.attempt_offset >= j.max_attempts THEN 'dead' ELSE 'available' END, \
                 finished_at = CASE WHEN j.attempt - j.attempt_offset >= j.max_attempts THEN $1 END, \
                 run_at = $1, updated_at = $1, lease_expires_at = NULL, last_error = $3 \
               FROM {expired} \
               WHERE j.id = e.id AND j.state = 'running' AND j.attempt = e.attempt \
                 AND j.lease_expires_at < $1 \
               RETURNING {TRANSITION_COLUMNS}, j.priority, j.worker_id, \
                 e.lease_expires_at AS expired_at \
             ), events AS ( \
               INSERT INTO job_events (workspace_id, job_id, at, kind, from_state, to_state, attempt, worker_id) \
               SELECT workspace_id, id, $1, 'lease_expired', 'running', state, attempt, worker_id \
               FROM reaped ORDER BY expired_at, id \
             ), runs AS ( \
               UPDATE monitor_runs r SET state = 'error', error = $4, finished_at = $1 \
               FROM reaped WHERE r.job_id = reaped.id AND reaped.state = 'dead' AND r.state = 'running' \
             ), {counted} \
             SELECT * FROM reaped ORDER BY expired_at, id",
            expired = rows_of("expired", &["id", "attempt", "lease_expires_at"], "e"),
            counted = counted("reaped", "'running'", "c.state"),
        ))
        .bind(now)
        .bind(i64::from(limit))
        .bind(Json(&error))
        .bind(crate::schema::RUN_LEASE_EXPIRED)
        .fetch_all(&self.pool)
        .await?;
        let reaped = rows
            .iter()
            .map(|row| transition_from_row(row, JobState::Running))
            .collect::<Result<Vec<_>, _>>()?;
        if !reaped.is_empty() {
            self.announce();
        }
        Ok(reaped)
    }
}

/// Records a dead smoke check's verdict on its run, makes it the baseline
/// and writes its messages, in the failure's transaction; false (nothing
/// written) when the baseline moved since the verdict was judged or the
/// run is no longer running. The monitor row is locked first, as a
/// completion locks it.
async fn record_dead_verdict(
    conn: &mut PgConnection,
    message: &str,
    verdict: &DeadRunVerdict,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let monitor = verdict.monitor_id.as_uuid();
    let baseline: Option<Option<i64>> =
        sqlx::query_scalar("SELECT baseline_run_id FROM monitors WHERE id = $1 FOR UPDATE")
            .bind(monitor)
            .fetch_optional(&mut *conn)
            .await?;
    if baseline != Some(verdict.baseline_run_id) {
        return Ok(false);
    }
    let events = (!verdict.events.is_empty()).then(|| {
        verdict
            .events
            .iter()
            .map(|event| event.as_str().to_owned())
            .collect::<Vec<String>>()
    });
    let recorded = sqlx::query(
        "UPDATE monitor_runs SET state = 'failed', error = $1, outcome = $2, snapshot = $3, \
         events = $4, finished_at = $5 \
         WHERE id = $6 AND job_id = $7 AND monitor_id = $8 AND state = 'running'",
    )
    .bind(message)
    .bind(Json(&verdict.outcome))
    .bind(Json(&verdict.snapshot))
    .bind(events)
    .bind(now)
    .bind(verdict.run_id)
    .bind(verdict.job_id.as_uuid())
    .bind(monitor)
    .execute(&mut *conn)
    .await?;
    if recorded.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE monitors SET baseline_run_id = $1 WHERE id = $2")
        .bind(verdict.run_id)
        .bind(monitor)
        .execute(&mut *conn)
        .await?;
    if let Some(notice) = &verdict.notice {
        enqueue_run(conn, monitor, verdict.run_id, notice, now).await?;
    }
    Ok(true)
}
