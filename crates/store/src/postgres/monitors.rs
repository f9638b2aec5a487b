//! [`MonitorStore`] for PostgreSQL: monitors, runs started with their job
//! in one transaction, and completions that record the outcome with the
//! job's. Starting a run and recording an outcome lock the monitor's row
//! first (`FOR UPDATE`), so replicas racing for one monitor take turns and
//! each sees the other's commit before checking its fence.

use accord_model::{JobId, Monitor, MonitorId, MonitorRun, ScheduleSpec, SeriesPoint, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::PgConnection;

use super::artifacts::record_for_job;
use super::items::record_items;
use super::jobs::insert_row;
use super::lease::complete_one;
use super::notifications::enqueue_run;
use super::rows::{column, job_from_row, job_id, json, opt_json};
use super::PostgresStore;
use crate::schema::{
    check_monitor_storable, check_storable, parse_engine, parse_run_state, parse_schedule,
    parse_target, parse_trigger, parse_workflow, TERMINAL,
};
use crate::{
    Baseline, CompleteRun, CompleteRunOutcome, MonitorFilter, MonitorGauge, MonitorStore,
    RunContext, RunRecord, SnapshotOrder, StartOutcome, StartRun, StoreError, StoredSnapshot,
};

const MONITOR_COLUMNS: &str =
    "m.id, m.workspace_id, m.name, m.workflow, m.url, m.engine, m.input, \
     m.schedule, m.tags, m.paused, m.notify, m.created_at, m.updated_at, m.next_due_at";

const RUN_COLUMNS: &str = "r.id, r.monitor_id, r.slot, r.trigger, r.job_id, r.state, r.outcome, \
     r.error, r.snapshot IS NOT NULL AS has_snapshot, r.created_at, r.finished_at";

/// Whether the monitor `m` has a run whose job has not finished (a pruned
/// job has finished).
fn unfinished_run() -> String {
    format!(
        "EXISTS (SELECT 1 FROM monitor_runs u JOIN jobs j ON j.id = u.job_id \
         WHERE u.monitor_id = m.id AND u.state = 'running' AND j.state NOT IN {TERMINAL})"
    )
}

fn monitor_from_row(row: &PgRow) -> Result<Monitor, StoreError> {
    let spec: ScheduleSpec = json(row, "schedule", "monitor schedule")?;
    let tags: Vec<String> = column(row, "tags", "monitor tags")?;
    Ok(Monitor {
        id: MonitorId::from_uuid(column(row, "id", "monitor id")?),
        workspace_id: WorkspaceId::from_uuid(column(row, "workspace_id", "workspace id")?),
        name: column(row, "name", "monitor name")?,
        workflow: parse_workflow(&column::<String>(row, "workflow", "workflow")?)?,
        url: parse_target(&column::<String>(row, "url", "monitor url")?)?,
        engine: parse_engine(&column::<String>(row, "engine", "engine")?)?,
        input: json(row, "input", "monitor input")?,
        schedule: parse_schedule(&spec)?,
        tags: tags.into_iter().collect(),
        paused: column(row, "paused", "paused")?,
        notify: json(row, "notify", "monitor subscriptions")?,
        created_at: column(row, "created_at", "timestamp")?,
        updated_at: column(row, "updated_at", "timestamp")?,
        next_due_at: column(row, "next_due_at", "timestamp")?,
    })
}

fn run_from_row(row: &PgRow) -> Result<MonitorRun, StoreError> {
    Ok(MonitorRun {
        id: column(row, "id", "run id")?,
        monitor_id: MonitorId::from_uuid(column(row, "monitor_id", "monitor id")?),
        slot: column(row, "slot", "timestamp")?,
        trigger: parse_trigger(&column::<String>(row, "trigger", "run trigger")?)?,
        job_id: job_id(row, "job_id")?,
        state: parse_run_state(&column::<String>(row, "state", "run state")?)?,
        outcome: opt_json(row, "outcome", "run outcome")?,
        error: column(row, "error", "run error")?,
        has_snapshot: column(row, "has_snapshot", "run snapshot")?,
        created_at: column(row, "created_at", "timestamp")?,
        finished_at: column(row, "finished_at", "timestamp")?,
    })
}

async fn run_by_id(conn: &mut PgConnection, id: i64) -> Result<MonitorRun, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM monitor_runs r WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_one(conn)
    .await?;
    run_from_row(&row)
}

fn tags(monitor: &Monitor) -> Vec<&str> {
    monitor.tags.iter().map(String::as_str).collect()
}

#[async_trait]
impl MonitorStore for PostgresStore {
    async fn monitor_insert(&self, monitor: &Monitor) -> Result<(), StoreError> {
        check_monitor_storable(monitor)?;
        sqlx::query(
            "INSERT INTO monitors (id, workspace_id, name, workflow, url, engine, input, schedule, \
             tags, paused, created_at, updated_at, next_due_at, notify) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(monitor.id.as_uuid())
        .bind(monitor.workspace_id.as_uuid())
        .bind(&monitor.name)
        .bind(monitor.workflow.as_str())
        .bind(monitor.url.as_str())
        .bind(monitor.engine.as_str())
        .bind(Json(&monitor.input))
        .bind(Json(monitor.schedule.spec()))
        .bind(tags(monitor))
        .bind(monitor.paused)
        .bind(monitor.created_at)
        .bind(monitor.updated_at)
        .bind(monitor.next_due_at)
        .bind(Json(&monitor.notify))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn monitor_get(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<Option<Monitor>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MONITOR_COLUMNS} FROM monitors m WHERE m.workspace_id = $1 AND m.id = $2"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(monitor_from_row).transpose()
    }

    async fn monitor_list(
        &self,
        workspace: WorkspaceId,
        filter: &MonitorFilter,
    ) -> Result<Vec<Monitor>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MONITOR_COLUMNS} FROM monitors m WHERE m.workspace_id = $1 \
             AND ($2::text IS NULL OR $2 = ANY(m.tags)) AND ($3::uuid IS NULL OR m.id < $3) \
             ORDER BY m.id DESC LIMIT $4"
        ))
        .bind(workspace.as_uuid())
        .bind(filter.tag.as_deref())
        .bind(filter.before.map(|id| id.as_uuid()))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(monitor_from_row).collect()
    }

    async fn monitor_update(
        &self,
        monitor: &Monitor,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        check_monitor_storable(monitor)?;
        let done = sqlx::query(
            "UPDATE monitors SET name = $1, url = $2, engine = $3, input = $4, schedule = $5, \
             tags = $6, paused = $7, updated_at = $8, next_due_at = $9, notify = $13 \
             WHERE workspace_id = $10 AND id = $11 AND updated_at = $12",
        )
        .bind(&monitor.name)
        .bind(monitor.url.as_str())
        .bind(monitor.engine.as_str())
        .bind(Json(&monitor.input))
        .bind(Json(monitor.schedule.spec()))
        .bind(tags(monitor))
        .bind(monitor.paused)
        .bind(monitor.updated_at)
        .bind(monitor.next_due_at)
        .bind(monitor.workspace_id.as_uuid())
        .bind(monitor.id.as_uuid())
        .bind(expected_updated_at)
        .bind(Json(&monitor.notify))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn monitor_delete(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM monitors WHERE workspace_id = $1 AND id = $2")
            .bind(workspace.as_uuid())
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn monitors_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Monitor>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MONITOR_COLUMNS} FROM monitors m \
             WHERE NOT m.paused AND m.next_due_at <= $1 AND NOT {unfinished} \
             ORDER BY m.next_due_at, m.id LIMIT $2",
            unfinished = unfinished_run(),
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(monitor_from_row).collect()
    }

    async fn monitor_run_start(&self, start: &StartRun) -> Result<StartOutcome, StoreError> {
        check_storable(&start.job)?;
        let mut tx = self.pool.begin().await?;
        let outcome = start_one(&mut tx, start).await?;
        if matches!(outcome, StartOutcome::Started { .. }) {
            tx.commit().await?;
            self.announce();
        }
        Ok(outcome)
    }

    async fn monitor_runs_start(
        &self,
        starts: &[StartRun],
    ) -> Result<Vec<StartOutcome>, StoreError> {
        for start in starts {
            check_storable(&start.job)?;
        }
        // Monitors are locked in id order, whatever order the batch came
        // in, so two replicas' batches cannot wait on each other.
        let mut order: Vec<usize> = (0..starts.len()).collect();
        order.sort_by_key(|&i| starts[i].monitor_id);
        let mut outcomes: Vec<Option<StartOutcome>> = vec![None; starts.len()];
        let mut tx = self.pool.begin().await?;
        for i in order {
            outcomes[i] = Some(start_one(&mut tx, &starts[i]).await?);
        }
        tx.commit().await?;
        let outcomes: Vec<StartOutcome> = outcomes.into_iter().flatten().collect();
        if outcomes
            .iter()
            .any(|o| matches!(o, StartOutcome::Started { .. }))
        {
            self.announce();
        }
        Ok(outcomes)
    }

    async fn monitor_run_context(&self, job: JobId) -> Result<Option<RunContext>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM monitor_runs r WHERE r.job_id = $1 AND r.state = 'running'"
        ))
        .bind(job.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let run = run_from_row(&row)?;
        let row = sqlx::query(&format!(
            "SELECT {MONITOR_COLUMNS}, m.baseline_run_id, b.snapshot AS baseline_snapshot \
             FROM monitors m LEFT JOIN monitor_runs b ON b.id = m.baseline_run_id WHERE m.id = $1"
        ))
        .bind(run.monitor_id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let baseline = match (
            column::<Option<i64>>(&row, "baseline_run_id", "run id")?,
            opt_json::<serde_json::Value>(&row, "baseline_snapshot", "run snapshot")?,
        ) {
            (Some(run_id), Some(snapshot)) => Some(Baseline { run_id, snapshot }),
            _ => None,
        };
        Ok(Some(RunContext {
            monitor: monitor_from_row(&row)?,
            run,
            baseline,
        }))
    }

    async fn monitor_run_complete(
        &self,
        complete: &CompleteRun,
    ) -> Result<CompleteRunOutcome, StoreError> {
        let monitor = complete.monitor_id.as_uuid();
        let mut tx = self.pool.begin().await?;
        // Lock the monitor, then check the baseline the outcome was
        // computed against is still the latest: a second completion waits
        // here and then finds the baseline moved.
        let baseline: Option<Option<i64>> =
            sqlx::query_scalar("SELECT baseline_run_id FROM monitors WHERE id = $1 FOR UPDATE")
                .bind(monitor)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(baseline) = baseline {
            if baseline != complete.baseline_run_id {
                return Ok(CompleteRunOutcome::BaselineMoved);
            }
        }
        let Some(transition) =
            complete_one(&mut tx, &complete.worker, &complete.item, complete.now).await?
        else {
            return Ok(CompleteRunOutcome::Stale);
        };
        let (outcome, snapshot, values, events, artifacts, items) = match &complete.record {
            RunRecord::Outcome {
                outcome,
                snapshot,
                values,
                events,
                artifacts,
                items,
            } => (outcome, snapshot, values, events, artifacts, items),
            RunRecord::Error(message) => {
                sqlx::query(
                    "UPDATE monitor_runs SET state = 'error', error = $1, finished_at = $2 \
                     WHERE id = $3 AND monitor_id = $4 AND state = 'running'",
                )
                .bind(message)
                .bind(complete.now)
                .bind(complete.run_id)
                .bind(monitor)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(CompleteRunOutcome::Applied(transition));
            }
        };
        let recorded = sqlx::query(
            "UPDATE monitor_runs SET state = 'succeeded', outcome = $1, snapshot = $2, \
             finished_at = $3, events = $6 WHERE id = $4 AND monitor_id = $5 AND state = 'running'",
        )
        .bind(Json(outcome))
        .bind(Json(snapshot))
        .bind(complete.now)
        .bind(complete.run_id)
        .bind(monitor)
        .bind((!events.is_empty()).then(|| {
            events
                .iter()
                .map(|event| event.as_str().to_owned())
                .collect::<Vec<String>>()
        }))
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 1 {
            sqlx::query("UPDATE monitors SET baseline_run_id = $1 WHERE id = $2")
                .bind(complete.run_id)
                .bind(monitor)
                .execute(&mut *tx)
                .await?;
            let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
            let numbers: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
            sqlx::query(
                "INSERT INTO monitor_values (monitor_id, run_id, name, value, at) \
                 SELECT $1, $2, v.name, v.value, $3 FROM UNNEST($4::text[], $5::float8[]) AS v(name, value) \
                 ON CONFLICT (run_id, name) DO NOTHING",
            )
            .bind(monitor)
            .bind(complete.run_id)
            .bind(complete.now)
            .bind(names)
            .bind(numbers)
            .execute(&mut *tx)
            .await?;
            // The outcome names these artifacts: their rows commit with it
            // (their bytes were stored before).
            for artifact in artifacts {
                record_for_job(
                    &mut tx,
                    complete.item.job_id.as_uuid(),
                    transition.attempt,
                    artifact,
                    complete.now,
                )
                .await?;
            }
            if let Some(items) = items {
                record_items(&mut tx, monitor, complete.run_id, complete.now, items).await?;
            }
            if let Some(notice) = &complete.notice {
                enqueue_run(&mut tx, monitor, complete.run_id, notice, complete.now).await?;
            }
        }
        tx.commit().await?;
        Ok(CompleteRunOutcome::Applied(transition))
    }

    async fn monitor_runs(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<MonitorRun>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM monitor_runs r JOIN monitors m ON m.id = r.monitor_id \
             WHERE m.workspace_id = $1 AND m.id = $2 AND r.id < $3 ORDER BY r.id DESC LIMIT $4"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn monitor_run_get(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        run_id: i64,
    ) -> Result<Option<(MonitorRun, Option<serde_json::Value>)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS}, r.snapshot FROM monitor_runs r \
             JOIN monitors m ON m.id = r.monitor_id \
             WHERE m.workspace_id = $1 AND m.id = $2 AND r.id = $3"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok((
                run_from_row(&row)?,
                opt_json(&row, "snapshot", "run snapshot")?,
            ))
        })
        .transpose()
    }

    async fn monitor_snapshots(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        order: SnapshotOrder,
        limit: u32,
    ) -> Result<Vec<StoredSnapshot>, StoreError> {
        let (range, direction, cursor) = match order {
            SnapshotOrder::NewestFirst { before } => {
                ("r.id < $3", "DESC", before.unwrap_or(i64::MAX))
            }
            SnapshotOrder::OldestFirst { after } => ("r.id > $3", "ASC", after.unwrap_or(i64::MIN)),
        };
        let rows = sqlx::query(&format!(
            "SELECT r.id, r.finished_at, r.snapshot FROM monitor_runs r \
             JOIN monitors m ON m.id = r.monitor_id \
             WHERE m.workspace_id = $1 AND m.id = $2 AND r.snapshot IS NOT NULL AND {range} \
             ORDER BY r.id {direction} LIMIT $4"
        ))
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .bind(cursor)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let finished: Option<DateTime<Utc>> = column(row, "finished_at", "timestamp")?;
                Ok(StoredSnapshot {
                    run_id: column(row, "id", "run id")?,
                    at: finished.ok_or_else(|| {
                        StoreError::corrupt("monitor run", "a run with a snapshot has no end")
                    })?,
                    snapshot: json(row, "snapshot", "run snapshot")?,
                })
            })
            .collect()
    }

    async fn monitor_gauges(&self, limit: u32) -> Result<Vec<MonitorGauge>, StoreError> {
        // The newest run by the (monitor_id, id) index, one seek each.
        let rows = sqlx::query(
            "SELECT m.id, m.name, r.state, COALESCE(r.finished_at, r.created_at) AS at \
             FROM (SELECT id, name FROM monitors ORDER BY id LIMIT $1) m \
             LEFT JOIN LATERAL (SELECT l.state, l.finished_at, l.created_at FROM monitor_runs l \
               WHERE l.monitor_id = m.id ORDER BY l.id DESC LIMIT 1) r ON true \
             ORDER BY m.id",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut gauges = Vec::with_capacity(rows.len());
        for row in &rows {
            let state: Option<String> = column(row, "state", "run state")?;
            let at: Option<DateTime<Utc>> = column(row, "at", "timestamp")?;
            let last_run = match (state, at) {
                (Some(state), Some(at)) => Some((parse_run_state(&state)?, at)),
                _ => None,
            };
            gauges.push(MonitorGauge {
                monitor_id: MonitorId::from_uuid(column(row, "id", "monitor id")?),
                name: column(row, "name", "monitor name")?,
                last_run,
                values: Vec::new(),
            });
        }
        // The baseline run's values by the (run_id, name) key.
        let values = sqlx::query(
            "SELECT m.id, v.name, v.value \
             FROM (SELECT id, baseline_run_id FROM monitors ORDER BY id LIMIT $1) m \
             JOIN monitor_values v ON v.run_id = m.baseline_run_id \
             ORDER BY m.id, v.name",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        for row in &values {
            let id = MonitorId::from_uuid(column(row, "id", "monitor id")?);
            if let Some(gauge) = gauges.iter_mut().find(|g| g.monitor_id == id) {
                gauge.values.push((
                    column(row, "name", "value name")?,
                    column(row, "value", "value")?,
                ));
            }
        }
        Ok(gauges)
    }

    async fn monitor_series(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT v.run_id, v.name, v.value, v.at FROM monitor_values v \
             JOIN monitors m ON m.id = v.monitor_id \
             WHERE m.workspace_id = $1 AND m.id = $2 AND ($3::text IS NULL OR v.name = $3) \
             ORDER BY v.run_id, v.name LIMIT $4",
        )
        .bind(workspace.as_uuid())
        .bind(id.as_uuid())
        .bind(name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SeriesPoint {
                    run_id: column(row, "run_id", "run id")?,
                    name: column(row, "name", "value name")?,
                    value: column(row, "value", "value")?,
                    at: column(row, "at", "timestamp")?,
                })
            })
            .collect()
    }
}

/// Starts one run in `conn`'s transaction (see
/// [`MonitorStore::monitor_run_start`]); writes nothing unless it starts,
/// so a batch goes on past a monitor that is busy or moved.
async fn start_one(conn: &mut PgConnection, start: &StartRun) -> Result<StartOutcome, StoreError> {
    let monitor = start.monitor_id.as_uuid();
    // The lock makes a second replica wait here and then see this one's
    // commit: its fence fails or it finds the run unfinished.
    let found = sqlx::query(
        "SELECT workflow, paused, next_due_at, updated_at FROM monitors \
         WHERE workspace_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(start.workspace_id.as_uuid())
    .bind(monitor)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(found) = found else {
        return Ok(StartOutcome::Moved);
    };
    // A statement of its own: its snapshot is taken after the lock.
    let busy: bool = sqlx::query_scalar(&format!(
        "SELECT {unfinished} FROM monitors m WHERE m.id = $1",
        unfinished = unfinished_run(),
    ))
    .bind(monitor)
    .fetch_one(&mut *conn)
    .await?;
    if busy {
        return Ok(StartOutcome::Busy);
    }
    if let Some(advance) = &start.advance {
        let paused: bool = column(&found, "paused", "paused")?;
        let due: DateTime<Utc> = column(&found, "next_due_at", "timestamp")?;
        let updated: DateTime<Utc> = column(&found, "updated_at", "timestamp")?;
        if paused || due != advance.due_at || updated != advance.updated_at {
            return Ok(StartOutcome::Moved);
        }
    }
    // The run first: a slot that has its run already leaves nothing written.
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO monitor_runs (monitor_id, workflow, slot, trigger, job_id, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'running', $6) ON CONFLICT (monitor_id, slot) DO NOTHING \
         RETURNING id",
    )
    .bind(monitor)
    .bind(column::<String>(&found, "workflow", "workflow")?)
    .bind(start.slot)
    .bind(start.trigger.as_str())
    .bind(start.job.id.as_uuid())
    .bind(start.now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run_id) = inserted else {
        return Ok(StartOutcome::Moved);
    };
    if let Some(advance) = &start.advance {
        sqlx::query("UPDATE monitors SET next_due_at = $1 WHERE id = $2")
            .bind(advance.next_due_at)
            .bind(monitor)
            .execute(&mut *conn)
            .await?;
    }
    let job = insert_row(&mut *conn, &start.job, start.now)
        .await?
        .ok_or_else(|| {
            StoreError::corrupt("monitor job", "a monitor's job carries no idempotency key")
        })?;
    let job = job_from_row(&job)?;
    let run = run_by_id(conn, run_id).await?;
    Ok(StartOutcome::Started {
        run,
        job: Box::new(job),
    })
}
