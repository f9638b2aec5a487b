//! [`ItemHistoryStore`] for PostgreSQL, and the update a completion makes
//! to the history in its transaction ([`record_items`]): one statement for
//! the items seen, one for those gone, however many items a run holds.

use std::collections::BTreeSet;

use accord_model::{ItemRecord, ItemStateFilter, ItemStatus, MonitorId, SeenAt, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::rows::{column, count, json};
use super::PostgresStore;
use crate::{ItemHistoryStore, ItemQuery, SeenItem, StoreError, StoredItem};

/// Brings the history of `monitor` up to date with the snapshot of run
/// `run_id` (finished `at`), which holds `items`: each is inserted or seen
/// again, and every current item it does not hold is removed by this run.
/// The caller holds the monitor's row lock, so histories never interleave.
pub(super) async fn record_items(
    conn: &mut PgConnection,
    monitor: Uuid,
    run_id: i64,
    at: DateTime<Utc>,
    items: &[SeenItem],
) -> Result<(), StoreError> {
    let keys: Vec<&str> = items.iter().map(|item| item.key.as_str()).collect();
    let fields: Vec<Json<&std::collections::BTreeMap<String, Option<String>>>> =
        items.iter().map(|item| Json(&item.fields)).collect();
    let search: Vec<String> = items.iter().map(SeenItem::search_text).collect();
    sqlx::query(
        "INSERT INTO monitor_items AS i (monitor_id, key, fields, search, first_run_id, \
         first_seen_at, last_run_id, last_seen_at) \
         SELECT $1, s.key, s.fields, s.search, $2, $3, $2, $3 \
         FROM UNNEST($4::text[], $5::jsonb[], $6::text[]) WITH ORDINALITY AS s(key, fields, search, n) \
         ORDER BY s.n \
         ON CONFLICT (monitor_id, key) DO UPDATE SET \
           changes = i.changes + CASE WHEN i.fields IS DISTINCT FROM EXCLUDED.fields THEN 1 ELSE 0 END, \
           fields = EXCLUDED.fields, search = EXCLUDED.search, \
           last_run_id = EXCLUDED.last_run_id, last_seen_at = EXCLUDED.last_seen_at, \
           removed_run_id = NULL, removed_at = NULL",
    )
    .bind(monitor)
    .bind(run_id)
    .bind(at)
    .bind(keys)
    .bind(fields)
    .bind(search)
    .execute(&mut *conn)
    .await?;
    // Whatever this run did not see (its last sighting is older) is gone.
    sqlx::query(
        "UPDATE monitor_items SET removed_run_id = $1, removed_at = $2 \
         WHERE monitor_id = $3 AND removed_run_id IS NULL AND last_run_id <> $1",
    )
    .bind(run_id)
    .bind(at)
    .bind(monitor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn item_from_row(row: &PgRow) -> Result<StoredItem, StoreError> {
    let removed = match (
        column::<Option<i64>>(row, "removed_run_id", "item removal")?,
        column::<Option<DateTime<Utc>>>(row, "removed_at", "item removal")?,
    ) {
        (Some(run_id), Some(at)) => Some(SeenAt { run_id, at }),
        _ => None,
    };
    Ok(StoredItem {
        position: column(row, "id", "item position")?,
        record: ItemRecord {
            key: column(row, "key", "item key")?,
            status: if removed.is_some() {
                ItemStatus::Removed
            } else {
                ItemStatus::Current
            },
            first_seen: SeenAt {
                run_id: column(row, "first_run_id", "item sighting")?,
                at: column(row, "first_seen_at", "item sighting")?,
            },
            last_seen: SeenAt {
                run_id: column(row, "last_run_id", "item sighting")?,
                at: column(row, "last_seen_at", "item sighting")?,
            },
            removed,
            changes: count(row, "changes", "item change count")?,
            fields: json(row, "fields", "item fields")?,
        },
    })
}

#[async_trait]
impl ItemHistoryStore for PostgresStore {
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
        let rows = sqlx::query(&format!(
            "SELECT i.id, i.key, i.fields, i.first_run_id, i.first_seen_at, i.last_run_id, \
             i.last_seen_at, i.removed_run_id, i.removed_at, i.changes \
             FROM monitor_items i JOIN monitors m ON m.id = i.monitor_id \
             WHERE m.workspace_id = $1 AND m.id = $2 AND i.id > $3{state} \
             AND ($4::text IS NULL OR strpos(i.search, $4) > 0) \
             ORDER BY i.id LIMIT $5"
        ))
        .bind(workspace.as_uuid())
        .bind(monitor.as_uuid())
        .bind(query.after.unwrap_or(0))
        .bind(query.folded_text())
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    async fn monitor_item_fields(
        &self,
        workspace: WorkspaceId,
        monitor: MonitorId,
    ) -> Result<BTreeSet<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT jsonb_object_keys(i.fields) FROM monitor_items i \
             JOIN monitors m ON m.id = i.monitor_id WHERE m.workspace_id = $1 AND m.id = $2",
        )
        .bind(workspace.as_uuid())
        .bind(monitor.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        Ok(names.into_iter().collect())
    }
}
