//! [`MonitorStore`] for PostgreSQL: monitors, runs started with their job
//! in one transaction, and completions that record the outcome with the
//! job's. Starting a run and recording an outcome lock the monitor's row
//! first (`FOR UPDATE`), so replicas racing for one monitor take turns and
//! each sees the other's commit before checking its fence.

use std::collections::{HashMap, HashSet};

use accord_model::{
    CompleteItem, JobId, Monitor, MonitorId, MonitorRun, ScheduleSpec, SeriesPoint, WorkerId,
    WorkspaceId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::artifacts::record_for_job;
use super::items::record_items;
use super::jobs::insert_many;
use super::lease::complete_in;
use super::notifications::enqueue_run;
use super::rows::{column, job_id, json, opt_json};
use super::PostgresStore;
use crate::schema::{
    check_monitor_storable, check_storable, parse_engine, parse_run_state, parse_schedule,
    parse_target, parse_trigger, parse_workflow, TERMINAL,
};
use crate::{
    Baseline, CompleteRun, CompleteRunOutcome, MonitorFilter, MonitorGauge, MonitorStore,
    ReportOutcome, RunContext, RunRecord, SnapshotOrder, StartOutcome, StartRun, StoreError,
    StoredSnapshot, Transition,
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
        self.monitor_runs_start(std::slice::from_ref(start))
            .await?
            .pop()
            .ok_or_else(|| StoreError::corrupt("monitor run", "a start without an outcome"))
    }

    async fn monitor_runs_start(
        &self,
        starts: &[StartRun],
    ) -> Result<Vec<StartOutcome>, StoreError> {
        for start in starts {
            check_storable(&start.job)?;
        }
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let outcomes = start_runs(&mut tx, starts).await?;
        if outcomes
            .iter()
            .any(|o| matches!(o, StartOutcome::Started { .. }))
        {
            tx.commit().await?;
            self.announce();
        }
        Ok(outcomes)
    }

    async fn monitor_run_contexts(
        &self,
        jobs: &[JobId],
    ) -> Result<Vec<Option<RunContext>>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = jobs.iter().map(|job| job.as_uuid()).collect();
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM monitor_runs r \
             WHERE r.job_id = ANY($1) AND r.state = 'running'"
        ))
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(vec![None; jobs.len()]);
        }
        let mut runs: HashMap<JobId, MonitorRun> = rows
            .iter()
            .map(|row| run_from_row(row).map(|run| (run.job_id, run)))
            .collect::<Result<_, _>>()?;
        let mut monitor_ids: Vec<Uuid> =
            runs.values().map(|run| run.monitor_id.as_uuid()).collect();
        monitor_ids.sort_unstable();
        monitor_ids.dedup();
        let rows = sqlx::query(&format!(
            "SELECT {MONITOR_COLUMNS}, m.baseline_run_id, b.snapshot AS baseline_snapshot \
             FROM monitors m LEFT JOIN monitor_runs b ON b.id = m.baseline_run_id \
             WHERE m.id = ANY($1)"
        ))
        .bind(&monitor_ids)
        .fetch_all(&mut *conn)
        .await?;
        let mut monitors: HashMap<MonitorId, (Monitor, Option<Baseline>)> =
            HashMap::with_capacity(rows.len());
        for row in &rows {
            let baseline = match (
                column::<Option<i64>>(row, "baseline_run_id", "run id")?,
                opt_json::<serde_json::Value>(row, "baseline_snapshot", "run snapshot")?,
            ) {
                (Some(run_id), Some(snapshot)) => Some(Baseline { run_id, snapshot }),
                _ => None,
            };
            let monitor = monitor_from_row(row)?;
            monitors.insert(monitor.id, (monitor, baseline));
        }
        Ok(jobs
            .iter()
            .map(|job| {
                // Moved out, not cloned: a monitor has one running run,
                // and its baseline snapshot may be a whole page. (A job
                // named twice gets its context once, like a workflow run.)
                let run = runs.remove(job)?;
                let (monitor, baseline) = monitors.remove(&run.monitor_id)?;
                Some(RunContext {
                    monitor,
                    run,
                    baseline,
                })
            })
            .collect())
    }

    async fn monitor_runs_complete(
        &self,
        batch: &[CompleteRun],
    ) -> Result<Vec<CompleteRunOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut outcomes: Vec<Option<CompleteRunOutcome>> = vec![None; batch.len()];
        let mut tx = self.pool.begin().await?;
        // Lock the monitors (in id order, so two batches cannot wait on
        // each other), then check the baseline each outcome was computed
        // against is still the latest: a second completion waits here and
        // then finds the baseline moved.
        let mut monitor_ids: Vec<Uuid> = batch.iter().map(|c| c.monitor_id.as_uuid()).collect();
        monitor_ids.sort_unstable();
        monitor_ids.dedup();
        let baselines: HashMap<Uuid, Option<i64>> = sqlx::query_as(
            "SELECT id, baseline_run_id FROM monitors WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&monitor_ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let mut fenced: Vec<usize> = Vec::with_capacity(batch.len());
        let mut taken = HashSet::with_capacity(batch.len());
        for (index, complete) in batch.iter().enumerate() {
            let monitor = complete.monitor_id.as_uuid();
            let moved = baselines
                .get(&monitor)
                .is_some_and(|baseline| *baseline != complete.baseline_run_id);
            // A monitor's second run in the batch would be computed
            // against the baseline its first one replaces.
            if moved || !taken.insert(monitor) {
                outcomes[index] = Some(CompleteRunOutcome::BaselineMoved);
            } else {
                fenced.push(index);
            }
        }
        // The jobs complete as one statement per worker and time (one, in
        // practice: a batch is one worker's report).
        let mut applied: Vec<(usize, Transition)> = Vec::with_capacity(fenced.len());
        let mut groups: Vec<(&WorkerId, DateTime<Utc>, Vec<usize>)> = Vec::new();
        for &index in &fenced {
            let complete = &batch[index];
            match groups
                .iter_mut()
                .find(|(worker, now, _)| **worker == complete.worker && *now == complete.now)
            {
                Some((_, _, members)) => members.push(index),
                None => groups.push((&complete.worker, complete.now, vec![index])),
            }
        }
        for (worker, now, members) in groups {
            let items: Vec<&CompleteItem> = members.iter().map(|&i| &batch[i].item).collect();
            let reports = complete_in(&mut tx, worker, &items, now).await?;
            for (index, report) in members.into_iter().zip(reports) {
                match report {
                    ReportOutcome::Applied(transition) => applied.push((index, transition)),
                    ReportOutcome::Stale(_) => {
                        outcomes[index] = Some(CompleteRunOutcome::Stale);
                    }
                }
            }
        }
        let recorded = record_runs(&mut tx, batch, &applied).await?;
        for (index, transition) in &applied {
            let complete = &batch[*index];
            let RunRecord::Outcome {
                artifacts, items, ..
            } = &complete.record
            else {
                continue;
            };
            if !recorded.contains(&complete.run_id) {
                continue;
            }
            let monitor = complete.monitor_id.as_uuid();
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
        for (index, transition) in applied {
            outcomes[index] = Some(CompleteRunOutcome::Applied(transition));
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(CompleteRunOutcome::Stale))
            .collect())
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

/// Records the runs whose jobs just completed (`applied`, indices into
/// `batch`): an error ends its run in `error`; an outcome ends its run in
/// `succeeded` with its snapshot, which becomes its monitor's baseline, and
/// stores its values. A few statements for the whole batch. Returns the
/// runs that recorded an outcome (a run deleted with its monitor, or no
/// longer running, records nothing).
async fn record_runs(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    batch: &[CompleteRun],
    applied: &[(usize, Transition)],
) -> Result<HashSet<i64>, StoreError> {
    let mut errors = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut done = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (index, _) in applied {
        let complete = &batch[*index];
        match &complete.record {
            RunRecord::Error(message) => {
                errors.0.push(complete.run_id);
                errors.1.push(complete.monitor_id.as_uuid());
                errors.2.push(message.as_str());
                errors.3.push(complete.now);
            }
            RunRecord::Outcome {
                outcome,
                snapshot,
                events,
                ..
            } => {
                done.0.push(complete.run_id);
                done.1.push(complete.monitor_id.as_uuid());
                done.2.push(Json(outcome));
                done.3.push(Json(snapshot));
                done.4.push(complete.now);
                // Event names are plain words, so a comma joins them.
                done.5.push((!events.is_empty()).then(|| {
                    events
                        .iter()
                        .map(|event| event.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                }));
            }
        }
    }
    if !errors.0.is_empty() {
        sqlx::query(
            "UPDATE monitor_runs r SET state = 'error', error = u.error, finished_at = u.at \
             FROM UNNEST($1::int8[], $2::uuid[], $3::text[], $4::timestamptz[]) AS u(id, monitor_id, error, at) \
             WHERE r.id = u.id AND r.monitor_id = u.monitor_id AND r.state = 'running'",
        )
        .bind(errors.0)
        .bind(errors.1)
        .bind(errors.2)
        .bind(errors.3)
        .execute(&mut **tx)
        .await?;
    }
    if done.0.is_empty() {
        return Ok(HashSet::new());
    }
    let recorded: HashSet<i64> = sqlx::query_scalar(
        "UPDATE monitor_runs r SET state = 'succeeded', outcome = u.outcome, snapshot = u.snapshot, \
           finished_at = u.at, events = string_to_array(u.events, ',') \
         FROM UNNEST($1::int8[], $2::uuid[], $3::jsonb[], $4::jsonb[], $5::timestamptz[], $6::text[]) \
           AS u(id, monitor_id, outcome, snapshot, at, events) \
         WHERE r.id = u.id AND r.monitor_id = u.monitor_id AND r.state = 'running' \
         RETURNING r.id",
    )
    .bind(&done.0)
    .bind(&done.1)
    .bind(done.2)
    .bind(done.3)
    .bind(done.4)
    .bind(done.5)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    if recorded.is_empty() {
        return Ok(recorded);
    }
    let mut baselines = (Vec::new(), Vec::new());
    let mut values = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, _) in applied {
        let complete = &batch[*index];
        if !recorded.contains(&complete.run_id) {
            continue;
        }
        let RunRecord::Outcome { values: read, .. } = &complete.record else {
            continue;
        };
        baselines.0.push(complete.monitor_id.as_uuid());
        baselines.1.push(complete.run_id);
        for (name, value) in read {
            values.0.push(complete.monitor_id.as_uuid());
            values.1.push(complete.run_id);
            values.2.push(name.as_str());
            values.3.push(*value);
            values.4.push(complete.now);
        }
    }
    sqlx::query(
        "UPDATE monitors m SET baseline_run_id = u.run_id \
         FROM UNNEST($1::uuid[], $2::int8[]) AS u(id, run_id) WHERE m.id = u.id",
    )
    .bind(baselines.0)
    .bind(baselines.1)
    .execute(&mut **tx)
    .await?;
    if !values.0.is_empty() {
        sqlx::query(
            "INSERT INTO monitor_values (monitor_id, run_id, name, value, at) \
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::float8[], $5::timestamptz[]) \
             ON CONFLICT (run_id, name) DO NOTHING",
        )
        .bind(values.0)
        .bind(values.1)
        .bind(values.2)
        .bind(values.3)
        .bind(values.4)
        .execute(&mut **tx)
        .await?;
    }
    Ok(recorded)
}

/// A monitor's row as a start reads it, under its lock.
struct Locked {
    workspace_id: Uuid,
    workflow: String,
    paused: bool,
    next_due_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Starts runs in `tx` (see [`MonitorStore::monitor_runs_start`]), a few
/// statements for the whole batch. Writes nothing for a run that does not
/// start, so the batch goes on past a monitor that is busy or moved.
async fn start_runs(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    starts: &[StartRun],
) -> Result<Vec<StartOutcome>, StoreError> {
    let mut ids: Vec<Uuid> = starts.iter().map(|s| s.monitor_id.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    // The lock (in id order, so two replicas' batches cannot wait on each
    // other) makes a second replica wait here and then see this one's
    // commit: its fence fails or it finds the run unfinished.
    let rows = sqlx::query(
        "SELECT id, workspace_id, workflow, paused, next_due_at, updated_at FROM monitors \
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut locked: HashMap<Uuid, Locked> = HashMap::with_capacity(rows.len());
    for row in &rows {
        locked.insert(
            column(row, "id", "monitor id")?,
            Locked {
                workspace_id: column(row, "workspace_id", "workspace id")?,
                workflow: column(row, "workflow", "workflow")?,
                paused: column(row, "paused", "paused")?,
                next_due_at: column(row, "next_due_at", "timestamp")?,
                updated_at: column(row, "updated_at", "timestamp")?,
            },
        );
    }
    // A statement of its own: its snapshot is taken after the lock.
    let busy: HashSet<Uuid> = sqlx::query_scalar(&format!(
        "SELECT m.id FROM monitors m WHERE m.id = ANY($1) AND {unfinished}",
        unfinished = unfinished_run(),
    ))
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let mut outcomes = vec![StartOutcome::Moved; starts.len()];
    let mut starting: Vec<usize> = Vec::with_capacity(starts.len());
    let mut taken = HashSet::with_capacity(starts.len());
    for (index, start) in starts.iter().enumerate() {
        let monitor = start.monitor_id.as_uuid();
        let Some(found) = locked
            .get(&monitor)
            .filter(|found| found.workspace_id == start.workspace_id.as_uuid())
        else {
            continue;
        };
        // A monitor's second start in the batch would overlap its first.
        if busy.contains(&monitor) || taken.contains(&monitor) {
            outcomes[index] = StartOutcome::Busy;
            continue;
        }
        if let Some(advance) = &start.advance {
            if found.paused
                || found.next_due_at != advance.due_at
                || found.updated_at != advance.updated_at
            {
                continue;
            }
        }
        taken.insert(monitor);
        starting.push(index);
    }
    if starting.is_empty() {
        return Ok(outcomes);
    }
    // The runs first: a slot that has its run already leaves nothing
    // written for it.
    let mut runs = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for &index in &starting {
        let start = &starts[index];
        let monitor = start.monitor_id.as_uuid();
        runs.0.push(monitor);
        runs.1.push(locked[&monitor].workflow.as_str());
        runs.2.push(start.slot);
        runs.3.push(start.trigger.as_str());
        runs.4.push(start.job.id.as_uuid());
        runs.5.push(start.now);
    }
    let rows = sqlx::query(&format!(
        "INSERT INTO monitor_runs AS r (monitor_id, workflow, slot, trigger, job_id, state, created_at) \
         SELECT u.monitor_id, u.workflow, u.slot, u.trigger, u.job_id, 'running', u.created_at \
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::uuid[], $6::timestamptz[]) \
           AS u(monitor_id, workflow, slot, trigger, job_id, created_at) \
         ON CONFLICT (monitor_id, slot) DO NOTHING \
         RETURNING {RUN_COLUMNS}"
    ))
    .bind(runs.0)
    .bind(runs.1)
    .bind(runs.2)
    .bind(runs.3)
    .bind(runs.4)
    .bind(runs.5)
    .fetch_all(&mut **tx)
    .await?;
    let mut inserted: HashMap<MonitorId, MonitorRun> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let run = run_from_row(row)?;
        inserted.insert(run.monitor_id, run);
    }
    starting.retain(|&index| inserted.contains_key(&starts[index].monitor_id));
    if starting.is_empty() {
        return Ok(outcomes);
    }
    let mut advances = (Vec::new(), Vec::new());
    for &index in &starting {
        if let Some(advance) = &starts[index].advance {
            advances.0.push(starts[index].monitor_id.as_uuid());
            advances.1.push(advance.next_due_at);
        }
    }
    if !advances.0.is_empty() {
        sqlx::query(
            "UPDATE monitors m SET next_due_at = u.next_due_at \
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, next_due_at) WHERE m.id = u.id",
        )
        .bind(advances.0)
        .bind(advances.1)
        .execute(&mut **tx)
        .await?;
    }
    // The jobs, one statement per start time (one, in practice).
    let mut groups: Vec<(DateTime<Utc>, Vec<usize>)> = Vec::new();
    for &index in &starting {
        let now = starts[index].now;
        match groups.iter_mut().find(|(at, _)| *at == now) {
            Some((_, members)) => members.push(index),
            None => groups.push((now, vec![index])),
        }
    }
    for (now, members) in groups {
        let jobs = insert_many(
            &mut **tx,
            members.iter().map(|&index| &starts[index].job),
            now,
        )
        .await?;
        for (index, job) in members.into_iter().zip(jobs) {
            let run = inserted
                .remove(&starts[index].monitor_id)
                .ok_or_else(|| StoreError::corrupt("monitor run", "a started run went missing"))?;
            outcomes[index] = StartOutcome::Started {
                run,
                job: Box::new(job),
            };
        }
    }
    Ok(outcomes)
}
