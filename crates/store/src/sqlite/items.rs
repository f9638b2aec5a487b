//! [`ItemHistoryStore`] for SQLite, and the update a completion makes to
//! the history in its transaction ([`record_items`]).

use std::collections::BTreeSet;

use accord_model::{ItemRecord, ItemStateFilter, ItemStatus, MonitorId, SeenAt, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::rows::{from_ms, ms, to_json};
use super::SqliteStore;
use crate::{ItemHistoryStore, ItemQuery, SeenItem, StoreError, StoredItem};

/// Brings the history of `monitor` up to date with the snapshot of run
/// `run_id` (finished `at`), which holds `items`: each is inserted or seen
/// again, and every current item it does not hold is removed by this run.
pub(super) async fn record_items(
    conn: &mut SqliteConnection,
    monitor: &str,
    run_id: i64,
    at: DateTime<Utc>,
    items: &[SeenItem],
) -> Result<(), StoreError> {
    let at = ms(at);
    for item in items {
        sqlx::query(
            "INSERT INTO monitor_items (monitor_id, key, fields, search, first_run_id, \
             first_seen_at, last_run_id, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (monitor_id, key) DO UPDATE SET \
               changes = changes + (json(fields) <> json(excluded.fields)), \
               fields = excluded.fields, search = excluded.search, \
               last_run_id = excluded.last_run_id, last_seen_at = excluded.last_seen_at, \
               removed_run_id = NULL, removed_at = NULL",
        )
        .bind(monitor)
        .bind(&item.key)
        .bind(to_json(&item.fields))
        .bind(item.search_text())
        .bind(run_id)
        .bind(at)
        .bind(run_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    // Whatever this run did not see (its last sighting is older) is gone.
    sqlx::query(
        "UPDATE monitor_items SET removed_run_id = ?, removed_at = ? \
         WHERE monitor_id = ? AND removed_run_id IS NULL AND last_run_id <> ?",
    )
    .bind(run_id)
    .bind(at)
    .bind(monitor)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn item_from_row(row: &SqliteRow) -> Result<StoredItem, StoreError> {
    let fields: String = row.try_get("fields")?;
    let removed = match (
        row.try_get::<Option<i64>, _>("removed_run_id")?,
        row.try_get::<Option<i64>, _>("removed_at")?,
    ) {
        (Some(run_id), Some(at)) => Some(SeenAt {
            run_id,
            at: from_ms(at)?,
        }),
        _ => None,
    };
    let changes: i64 = row.try_get("changes")?;
    Ok(StoredItem {
        position: row.try_get("id")?,
        record: ItemRecord {
            key: row.try_get("key")?,
            status: if removed.is_some() {
                ItemStatus::Removed
            } else {
                ItemStatus::Current
            },
            first_seen: SeenAt {
                run_id: row.try_get("first_run_id")?,
                at: from_ms(row.try_get("first_seen_at")?)?,
            },
            last_seen: SeenAt {
                run_id: row.try_get("last_run_id")?,
                at: from_ms(row.try_get("last_seen_at")?)?,
            },
            removed,
            changes: u32::try_from(changes)
                .map_err(|_| StoreError::corrupt("item change count", changes))?,
            fields: serde_json::from_str(&fields)
                .map_err(|err| StoreError::corrupt("item fields", err))?,
        },
    })
}

#[async_trait]
impl ItemHistoryStore for SqliteStore {
    async fn monitor_items(
        &self,
        workspace: WorkspaceId,
        monitor: MonitorId,
        query: &ItemQuery,
    ) -> Result<Vec<StoredItem>, StoreError> {
        let state = match query.state {
            ItemStateFilter::Current => " AND i.removed_run_id IS NULL",
            ItemStateFilter::Removed => " AND i.removed_run_id IS NOT NULL",
            ItemStateFilter::All => "",
        };
        let text = query.folded_text();
        let search = if text.is_some() {
            " AND instr(i.search, ?) > 0"
        } else {
            ""
        };
        let sql = format!(
            "SELECT i.id, i.key, i.fields, i.first_run_id, i.first_seen_at, i.last_run_id, \
             i.last_seen_at, i.removed_run_id, i.removed_at, i.changes \
             FROM monitor_items i JOIN monitors m ON m.id = i.monitor_id \
             WHERE m.workspace_id = ? AND m.id = ? AND i.id > ?{state}{search} \
             ORDER BY i.id LIMIT ?"
        );
        let mut select = sqlx::query(&sql)
            .bind(workspace.to_string())
            .bind(monitor.to_string())
            .bind(query.after.unwrap_or(0));
        if let Some(text) = &text {
            select = select.bind(text);
        }
        let rows = select.bind(query.limit).fetch_all(&self.reader).await?;
        rows.iter().map(item_from_row).collect()
    }

    async fn monitor_item_fields(
        &self,
        workspace: WorkspaceId,
        monitor: MonitorId,
    ) -> Result<BTreeSet<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT f.key FROM monitor_items i JOIN monitors m ON m.id = i.monitor_id, \
             json_each(i.fields) f WHERE m.workspace_id = ? AND m.id = ?",
        )
        .bind(workspace.to_string())
        .bind(monitor.to_string())
        .fetch_all(&self.reader)
        .await?;
        Ok(names.into_iter().collect())
    }
}
