//! [`MonitorStore`] for SQLite: monitors, runs started with their job in
//! one transaction, and completions that record the outcome with the job's.
//! Every write goes through the one writer connection, so a fence read
//! inside a write transaction cannot go stale before its commit.

use accord_model::{Monitor, MonitorId, MonitorRun, ScheduleSpec, SeriesPoint, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::artifacts::record_for_job;
use super::items::record_items;
use super::jobs::insert_row;
use super::lease::complete_one;
use super::notifications::enqueue_run;
use super::rows::{from_ms, ms, opt_ms, parse_id, to_json};
use super::SqliteStore;
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

fn json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|err| StoreError::corrupt(what, err))
}

fn opt_json(
    row: &SqliteRow,
    column: &str,
    what: &'static str,
) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| serde_json::from_str(&text).map_err(|err| StoreError::corrupt(what, err)))
        .transpose()
}

fn monitor_id(text: &str) -> Result<MonitorId, StoreError> {
    text.parse()
        .map_err(|err| StoreError::corrupt("monitor id", err))
}

fn monitor_from_row(row: &SqliteRow) -> Result<Monitor, StoreError> {
    let spec: ScheduleSpec = json(row, "schedule", "monitor schedule")?;
    let workspace: String = row.try_get("workspace_id")?;
    Ok(Monitor {
        id: monitor_id(row.try_get("id")?)?,
        workspace_id: workspace
            .parse::<WorkspaceId>()
            .map_err(|err| StoreError::corrupt("workspace id", err))?,
        name: row.try_get("name")?,
        workflow: parse_workflow(row.try_get("workflow")?)?,
        url: parse_target(row.try_get("url")?)?,
        engine: parse_engine(row.try_get("engine")?)?,
        input: json(row, "input", "monitor input")?,
        schedule: parse_schedule(&spec)?,
        tags: json(row, "tags", "monitor tags")?,
        paused: row.try_get::<i64, _>("paused")? != 0,
        notify: json(row, "notify", "monitor subscriptions")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
        next_due_at: from_ms(row.try_get("next_due_at")?)?,
    })
}

fn run_from_row(row: &SqliteRow) -> Result<MonitorRun, StoreError> {
    Ok(MonitorRun {
        id: row.try_get("id")?,
        monitor_id: monitor_id(row.try_get("monitor_id")?)?,
        slot: from_ms(row.try_get("slot")?)?,
        trigger: parse_trigger(row.try_get("trigger")?)?,
        job_id: parse_id(row.try_get("job_id")?)?,
        state: parse_run_state(row.try_get("state")?)?,
        outcome: opt_json(row, "outcome", "run outcome")?,
        error: row.try_get("error")?,
        has_snapshot: row.try_get::<i64, _>("has_snapshot")? != 0,
        created_at: from_ms(row.try_get("created_at")?)?,
        finished_at: opt_ms(row.try_get("finished_at")?)?,
    })
}

async fn run_by_id(conn: &mut SqliteConnection, id: i64) -> Result<MonitorRun, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM monitor_runs r WHERE r.id = ?"
    ))
    .bind(id)
    .fetch_one(conn)
    .await?;
    run_from_row(&row)
}

#[async_trait]
impl MonitorStore for SqliteStore {
    async fn monitor_insert(&self, monitor: &Monitor) -> Result<(), StoreError> {
        check_monitor_storable(monitor)?;
        sqlx::query(
            "INSERT INTO monitors (id, workspace_id, name, workflow, url, engine, input, schedule, \
             tags, paused, notify, created_at, updated_at, next_due_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(monitor.id.to_string())
        .bind(monitor.workspace_id.to_string())
        .bind(&monitor.name)
        .bind(monitor.workflow.as_str())
        .bind(monitor.url.as_str())
        .bind(monitor.engine.as_str())
        .bind(to_json(&monitor.input))
        .bind(to_json(&monitor.schedule.spec()))
        .bind(to_json(&monitor.tags))
        .bind(i64::from(monitor.paused))
        .bind(to_json(&monitor.notify))
        .bind(ms(monitor.created_at))
        .bind(ms(monitor.updated_at))
        .bind(ms(monitor.next_due_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn monitor_get(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<Option<Monitor>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MONITOR_COLUMNS} FROM monitors m WHERE m.workspace_id = ? AND m.id = ?"
        ))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(monitor_from_row).transpose()
    }

    async fn monitor_list(
        &self,
        workspace: WorkspaceId,
        filter: &MonitorFilter,
    ) -> Result<Vec<Monitor>, StoreError> {
        let mut sql = format!("SELECT {MONITOR_COLUMNS} FROM monitors m WHERE m.workspace_id = ?");
        if filter.tag.is_some() {
            sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value = ?)");
        }
        if filter.before.is_some() {
            sql.push_str(" AND m.id < ?");
        }
        sql.push_str(" ORDER BY m.id DESC LIMIT ?");
        let mut query = sqlx::query(&sql).bind(workspace.to_string());
        if let Some(tag) = &filter.tag {
            query = query.bind(tag);
        }
        if let Some(before) = filter.before {
            query = query.bind(before.to_string());
        }
        let rows = query.bind(filter.limit).fetch_all(&self.reader).await?;
        rows.iter().map(monitor_from_row).collect()
    }

    async fn monitor_update(
        &self,
        monitor: &Monitor,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        check_monitor_storable(monitor)?;
        let done = sqlx::query(
            "UPDATE monitors SET name = ?, url = ?, engine = ?, input = ?, schedule = ?, tags = ?, \
             paused = ?, notify = ?, updated_at = ?, next_due_at = ? \
             WHERE workspace_id = ? AND id = ? AND updated_at = ?",
        )
        .bind(&monitor.name)
        .bind(monitor.url.as_str())
        .bind(monitor.engine.as_str())
        .bind(to_json(&monitor.input))
        .bind(to_json(&monitor.schedule.spec()))
        .bind(to_json(&monitor.tags))
        .bind(i64::from(monitor.paused))
        .bind(to_json(&monitor.notify))
        .bind(ms(monitor.updated_at))
        .bind(ms(monitor.next_due_at))
        .bind(monitor.workspace_id.to_string())
        .bind(monitor.id.to_string())
        .bind(ms(expected_updated_at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn monitor_delete(
        &self,
        workspace: WorkspaceId,
        id: MonitorId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM monitors WHERE workspace_id = ? AND id = ?")
            .bind(workspace.to_string())
            .bind(id.to_string())
            .execute(&self.writer)
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
             WHERE m.paused = 0 AND m.next_due_at <= ? AND NOT {unfinished} \
             ORDER BY m.next_due_at, m.id LIMIT ?",
            unfinished = unfinished_run(),
        ))
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(monitor_from_row).collect()
    }

    async fn monitor_run_start(&self, start: &StartRun) -> Result<StartOutcome, StoreError> {
        check_storable(&start.job)?;
        let mut tx = self.writer.begin().await?;
        let outcome = start_one(&mut tx, start).await?;
        if matches!(outcome, StartOutcome::Started { .. }) {
            tx.commit().await?;
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
        // One transaction on the one writer: one commit for the batch.
        let mut tx = self.writer.begin().await?;
        let mut outcomes = Vec::with_capacity(starts.len());
        for start in starts {
            outcomes.push(start_one(&mut tx, start).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn monitor_run_contexts(
        &self,
        jobs: &[accord_model::JobId],
    ) -> Result<Vec<Option<RunContext>>, StoreError> {
        // In-process reads are cheap: one pair per job, on one connection.
        let mut conn = self.reader.acquire().await?;
        let mut contexts = Vec::with_capacity(jobs.len());
        for job in jobs {
            contexts.push(run_context(&mut conn, *job).await?);
        }
        Ok(contexts)
    }

    async fn monitor_runs_complete(
        &self,
        batch: &[CompleteRun],
    ) -> Result<Vec<CompleteRunOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // One transaction for the batch, so one commit (one fsync); each
        // run is judged on its own inside it, and a run that writes nothing
        // leaves the others be.
        let mut tx = self.writer.begin().await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for complete in batch {
            outcomes.push(complete_run(&mut tx, complete).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
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
             WHERE m.workspace_id = ? AND m.id = ? AND r.id < ? ORDER BY r.id DESC LIMIT ?"
        ))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.reader)
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
             WHERE m.workspace_id = ? AND m.id = ? AND r.id = ?"
        ))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .bind(run_id)
        .fetch_optional(&self.reader)
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
                ("r.id < ?", "DESC", before.unwrap_or(i64::MAX))
            }
            SnapshotOrder::OldestFirst { after } => ("r.id > ?", "ASC", after.unwrap_or(i64::MIN)),
        };
        let rows = sqlx::query(&format!(
            "SELECT r.id, r.finished_at, r.snapshot FROM monitor_runs r \
             JOIN monitors m ON m.id = r.monitor_id \
             WHERE m.workspace_id = ? AND m.id = ? AND r.snapshot IS NOT NULL AND {range} \
             ORDER BY r.id {direction} LIMIT ?"
        ))
        .bind(workspace.to_string())
        .bind(id.to_string())
        .bind(cursor)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let finished: Option<i64> = row.try_get("finished_at")?;
                Ok(StoredSnapshot {
                    run_id: row.try_get("id")?,
                    at: from_ms(finished.ok_or_else(|| {
                        StoreError::corrupt("monitor run", "a run with a snapshot has no end")
                    })?)?,
                    snapshot: json(row, "snapshot", "run snapshot")?,
                })
            })
            .collect()
    }

    async fn monitor_gauges(&self, limit: u32) -> Result<Vec<MonitorGauge>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        // The newest run by the (monitor_id, id) index, one seek each.
        let rows = sqlx::query(
            "SELECT m.id, m.name, r.state, COALESCE(r.finished_at, r.created_at) AS at \
             FROM (SELECT id, name FROM monitors ORDER BY id LIMIT ?) m \
             LEFT JOIN monitor_runs r ON r.id = \
               (SELECT MAX(l.id) FROM monitor_runs l WHERE l.monitor_id = m.id) \
             ORDER BY m.id",
        )
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut gauges = Vec::with_capacity(rows.len());
        for row in &rows {
            let state: Option<String> = row.try_get("state")?;
            let at: Option<i64> = row.try_get("at")?;
            let last_run = match (state, at) {
                (Some(state), Some(at)) => Some((parse_run_state(&state)?, from_ms(at)?)),
                _ => None,
            };
            gauges.push(MonitorGauge {
                monitor_id: monitor_id(row.try_get("id")?)?,
                name: row.try_get("name")?,
                last_run,
                values: Vec::new(),
            });
        }
        // The baseline run's values by the (run_id, name) key.
        let values = sqlx::query(
            "SELECT m.id, v.name, v.value \
             FROM (SELECT id, baseline_run_id FROM monitors ORDER BY id LIMIT ?) m \
             JOIN monitor_values v ON v.run_id = m.baseline_run_id \
             ORDER BY m.id, v.name",
        )
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        for row in &values {
            let id = monitor_id(row.try_get("id")?)?;
            if let Some(gauge) = gauges.iter_mut().find(|g| g.monitor_id == id) {
                gauge
                    .values
                    .push((row.try_get("name")?, row.try_get("value")?));
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
             WHERE m.workspace_id = ? AND m.id = ? AND (? IS NULL OR v.name = ?) \
             ORDER BY v.run_id, v.name LIMIT ?",
        )
        .bind(workspace.to_string())
        .bind(id.to_string())
        .bind(name)
        .bind(name)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SeriesPoint {
                    run_id: row.try_get("run_id")?,
                    name: row.try_get("name")?,
                    value: row.try_get("value")?,
                    at: from_ms(row.try_get("at")?)?,
                })
            })
            .collect()
    }
}

/// The monitor run `job_id` is for, if it is one and still running.
async fn run_context(
    conn: &mut SqliteConnection,
    job_id: accord_model::JobId,
) -> Result<Option<RunContext>, StoreError> {
    let run = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM monitor_runs r WHERE r.job_id = ? AND r.state = 'running'"
    ))
    .bind(job_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run) = run else {
        return Ok(None);
    };
    let run = run_from_row(&run)?;
    let monitor = sqlx::query(&format!(
        "SELECT {MONITOR_COLUMNS}, m.baseline_run_id, b.snapshot AS baseline_snapshot \
         FROM monitors m LEFT JOIN monitor_runs b ON b.id = m.baseline_run_id WHERE m.id = ?"
    ))
    .bind(run.monitor_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = monitor else {
        return Ok(None);
    };
    let baseline = match (
        row.try_get::<Option<i64>, _>("baseline_run_id")?,
        opt_json(&row, "baseline_snapshot", "run snapshot")?,
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

/// Completes one run inside `tx` (see
/// [`MonitorStore::monitor_runs_complete`]); writes nothing unless its
/// lease and its baseline hold.
async fn complete_run(
    tx: &mut SqliteConnection,
    complete: &CompleteRun,
) -> Result<CompleteRunOutcome, StoreError> {
    let now = ms(complete.now);
    let monitor = complete.monitor_id.to_string();
    // The baseline fence first: on the one writer nothing moves it
    // between this read and the commit.
    let baseline: Option<Option<i64>> =
        sqlx::query_scalar("SELECT baseline_run_id FROM monitors WHERE id = ?")
            .bind(&monitor)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(baseline) = baseline {
        if baseline != complete.baseline_run_id {
            return Ok(CompleteRunOutcome::BaselineMoved);
        }
    }
    let Some(transition) = complete_one(&mut *tx, &complete.worker, &complete.item, now).await?
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
                "UPDATE monitor_runs SET state = 'error', error = ?, finished_at = ? \
                 WHERE id = ? AND monitor_id = ? AND state = 'running'",
            )
            .bind(message)
            .bind(now)
            .bind(complete.run_id)
            .bind(&monitor)
            .execute(&mut *tx)
            .await?;
            return Ok(CompleteRunOutcome::Applied(transition));
        }
    };
    let recorded = sqlx::query(
        "UPDATE monitor_runs SET state = 'succeeded', outcome = ?, snapshot = ?, finished_at = ?, \
         events = ? WHERE id = ? AND monitor_id = ? AND state = 'running'",
    )
    .bind(to_json(outcome))
    .bind(to_json(snapshot))
    .bind(now)
    .bind((!events.is_empty()).then(|| to_json(events)))
    .bind(complete.run_id)
    .bind(&monitor)
    .execute(&mut *tx)
    .await?;
    if recorded.rows_affected() == 1 {
        sqlx::query("UPDATE monitors SET baseline_run_id = ? WHERE id = ?")
            .bind(complete.run_id)
            .bind(&monitor)
            .execute(&mut *tx)
            .await?;
        for (name, value) in values {
            sqlx::query(
                "INSERT INTO monitor_values (monitor_id, run_id, name, value, at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO NOTHING",
            )
            .bind(&monitor)
            .bind(complete.run_id)
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The outcome names these artifacts: their rows commit with it
        // (their bytes were stored before).
        let job_id = complete.item.job_id.to_string();
        for artifact in artifacts {
            record_for_job(&mut *tx, &job_id, transition.attempt, artifact, now).await?;
        }
        if let Some(items) = items {
            record_items(&mut *tx, &monitor, complete.run_id, complete.now, items).await?;
        }
        if let Some(notice) = &complete.notice {
            enqueue_run(&mut *tx, &monitor, complete.run_id, notice, now).await?;
        }
    }
    Ok(CompleteRunOutcome::Applied(transition))
}

/// Starts one run in `conn`'s transaction (see
/// [`MonitorStore::monitor_run_start`]); writes nothing unless it starts,
/// so a batch goes on past a monitor that is busy or moved.
async fn start_one(
    conn: &mut SqliteConnection,
    start: &StartRun,
) -> Result<StartOutcome, StoreError> {
    let monitor = start.monitor_id.to_string();
    let found = sqlx::query(&format!(
        "SELECT m.workflow, m.paused, m.next_due_at, m.updated_at, {unfinished} AS busy \
         FROM monitors m WHERE m.workspace_id = ? AND m.id = ?",
        unfinished = unfinished_run(),
    ))
    .bind(start.workspace_id.to_string())
    .bind(&monitor)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(found) = found else {
        return Ok(StartOutcome::Moved);
    };
    if found.try_get::<i64, _>("busy")? != 0 {
        return Ok(StartOutcome::Busy);
    }
    if let Some(advance) = &start.advance {
        let fence_holds = found.try_get::<i64, _>("paused")? == 0
            && found.try_get::<i64, _>("next_due_at")? == ms(advance.due_at)
            && found.try_get::<i64, _>("updated_at")? == ms(advance.updated_at);
        if !fence_holds {
            return Ok(StartOutcome::Moved);
        }
    }
    // The run first: a slot that has its run already leaves nothing written.
    let inserted = sqlx::query(
        "INSERT INTO monitor_runs (monitor_id, workflow, slot, trigger, job_id, state, created_at) \
         VALUES (?, ?, ?, ?, ?, 'running', ?) ON CONFLICT (monitor_id, slot) DO NOTHING \
         RETURNING id",
    )
    .bind(&monitor)
    .bind(found.try_get::<String, _>("workflow")?)
    .bind(ms(start.slot))
    .bind(start.trigger.as_str())
    .bind(start.job.id.to_string())
    .bind(ms(start.now))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(inserted) = inserted else {
        return Ok(StartOutcome::Moved);
    };
    if let Some(advance) = &start.advance {
        sqlx::query("UPDATE monitors SET next_due_at = ? WHERE id = ?")
            .bind(ms(advance.next_due_at))
            .bind(&monitor)
            .execute(&mut *conn)
            .await?;
    }
    let job = insert_row(&mut *conn, &start.job, start.now)
        .await?
        .ok_or_else(|| {
            StoreError::corrupt("monitor job", "a monitor's job carries no idempotency key")
        })?;
    let run = run_by_id(conn, inserted.try_get("id")?).await?;
    Ok(StartOutcome::Started {
        run,
        job: Box::new(job),
    })
}
