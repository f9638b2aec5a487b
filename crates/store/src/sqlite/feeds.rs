//! [`FeedStore`] for SQLite: feed tokens by the hash of their secret, live
//! only while their key is, and feed entries read through the partial
//! indexes of runs with events (`monitor_runs_events*`).

use accord_model::{FeedToken, FeedTokenId, MonitorId, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::rows::{from_ms, ms};
use super::SqliteStore;
use crate::schema::{parse_events, parse_workflow};
use crate::{FeedEntry, FeedStore, StoreError};

const TOKEN_COLUMNS: &str = "f.id, f.workspace_id, f.key_id, f.name, f.created_at";

fn parsed<T: std::str::FromStr>(text: &str, what: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|err| StoreError::corrupt(what, err))
}

fn token_from_row(row: &SqliteRow) -> Result<FeedToken, StoreError> {
    Ok(FeedToken {
        id: parsed(row.try_get("id")?, "feed token id")?,
        workspace_id: parsed(row.try_get("workspace_id")?, "workspace id")?,
        key_id: parsed(row.try_get("key_id")?, "API key id")?,
        name: row.try_get("name")?,
        created_at: from_ms(row.try_get("created_at")?)?,
    })
}

fn entry_from_row(row: &SqliteRow) -> Result<FeedEntry, StoreError> {
    let events: String = row.try_get("events")?;
    let names: Vec<String> =
        serde_json::from_str(&events).map_err(|err| StoreError::corrupt("run events", err))?;
    let outcome: String = row.try_get("outcome")?;
    let finished: Option<i64> = row.try_get("finished_at")?;
    Ok(FeedEntry {
        monitor_id: parsed(row.try_get("monitor_id")?, "monitor id")?,
        monitor_name: row.try_get("monitor_name")?,
        workflow: parse_workflow(row.try_get("workflow")?)?,
        monitor_url: row.try_get("monitor_url")?,
        run_id: row.try_get("run_id")?,
        finished_at: from_ms(finished.unwrap_or(row.try_get("created_at")?))?,
        events: parse_events(&names)?,
        outcome: serde_json::from_str(&outcome)
            .map_err(|err| StoreError::corrupt("run outcome", err))?,
    })
}

#[async_trait]
impl FeedStore for SqliteStore {
    async fn feed_token_insert(
        &self,
        token: &FeedToken,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO feed_tokens (id, workspace_id, key_id, name, token_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(token.id.to_string())
        .bind(token.workspace_id.to_string())
        .bind(token.key_id.as_str())
        .bind(&token.name)
        .bind(token_hash)
        .bind(ms(token.created_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn feed_token_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<FeedToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM feed_tokens f WHERE f.workspace_id = ? \
             ORDER BY f.created_at DESC, f.id DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn feed_token_delete(
        &self,
        workspace: WorkspaceId,
        id: FeedTokenId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM feed_tokens WHERE workspace_id = ? AND id = ?")
            .bind(workspace.to_string())
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn feed_token_resolve(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<FeedToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM feed_tokens f JOIN api_keys k ON k.id = f.key_id \
             WHERE f.token_hash = ? AND k.revoked_at IS NULL \
             AND (k.expires_at IS NULL OR k.expires_at > ?)"
        );
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .bind(ms(now))
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn feed_entries(
        &self,
        workspace: WorkspaceId,
        monitor: Option<MonitorId>,
        limit: u32,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let filter = if monitor.is_some() {
            "AND r.monitor_id = ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT r.id AS run_id, r.monitor_id, r.events, r.outcome, r.created_at, \
             r.finished_at, m.name AS monitor_name, m.workflow, m.url AS monitor_url \
             FROM monitor_runs r JOIN monitors m ON m.id = r.monitor_id \
             WHERE r.events IS NOT NULL AND r.outcome IS NOT NULL AND m.workspace_id = ? {filter} \
             ORDER BY r.id DESC LIMIT ?"
        );
        let mut query = sqlx::query(&sql).bind(workspace.to_string());
        if let Some(monitor) = monitor {
            query = query.bind(monitor.to_string());
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.reader).await?;
        rows.iter().map(entry_from_row).collect()
    }
}
