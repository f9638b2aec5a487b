//! [`FeedStore`] for PostgreSQL: feed tokens by the hash of their secret,
//! live only while their key is, and feed entries read through the partial
//! indexes of runs with events (`monitor_runs_events*`).

use accord_model::{FeedToken, FeedTokenId, MonitorId, WorkspaceId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::rows::column;
use super::PostgresStore;
use crate::schema::{parse_events, parse_workflow};
use crate::{FeedEntry, FeedStore, StoreError};

const TOKEN_COLUMNS: &str = "f.id, f.workspace_id, f.key_id, f.name, f.created_at";

fn token_from_row(row: &PgRow) -> Result<FeedToken, StoreError> {
    Ok(FeedToken {
        id: FeedTokenId::from_uuid(column(row, "id", "feed token id")?),
        workspace_id: WorkspaceId::from_uuid(column(row, "workspace_id", "workspace id")?),
        key_id: column::<String>(row, "key_id", "API key id")?
            .parse()
            .map_err(|err| StoreError::corrupt("API key id", err))?,
        name: column(row, "name", "feed token name")?,
        created_at: column(row, "created_at", "timestamp")?,
    })
}

fn entry_from_row(row: &PgRow) -> Result<FeedEntry, StoreError> {
    let names: Vec<String> = column(row, "events", "run events")?;
    let finished: Option<DateTime<Utc>> = column(row, "finished_at", "timestamp")?;
    let Json(outcome): Json<serde_json::Value> = column(row, "outcome", "run outcome")?;
    Ok(FeedEntry {
        monitor_id: MonitorId::from_uuid(column(row, "monitor_id", "monitor id")?),
        monitor_name: column(row, "monitor_name", "monitor name")?,
        workflow: parse_workflow(&column::<String>(row, "workflow", "workflow")?)?,
        monitor_url: column(row, "monitor_url", "monitor url")?,
        run_id: column(row, "run_id", "run id")?,
        finished_at: match finished {
            Some(at) => at,
            None => column(row, "created_at", "timestamp")?,
        },
        events: parse_events(&names)?,
        outcome,
    })
}

#[async_trait]
impl FeedStore for PostgresStore {
    async fn feed_token_insert(
        &self,
        token: &FeedToken,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO feed_tokens (id, workspace_id, key_id, name, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id.as_uuid())
        .bind(token.workspace_id.as_uuid())
        .bind(token.key_id.as_str())
        .bind(&token.name)
        .bind(token_hash)
        .bind(token.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn feed_token_list(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<FeedToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM feed_tokens f WHERE f.workspace_id = $1 \
             ORDER BY f.created_at DESC, f.id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace.as_uuid())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn feed_token_delete(
        &self,
        workspace: WorkspaceId,
        id: FeedTokenId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM feed_tokens WHERE workspace_id = $1 AND id = $2")
            .bind(workspace.as_uuid())
            .bind(id.as_uuid())
            .execute(&self.pool)
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
             WHERE f.token_hash = $1 AND k.revoked_at IS NULL \
             AND (k.expires_at IS NULL OR k.expires_at > $2)"
        );
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn feed_entries(
        &self,
        workspace: WorkspaceId,
        monitor: Option<MonitorId>,
        limit: u32,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id AS run_id, r.monitor_id, r.events, r.outcome, r.created_at, \
             r.finished_at, m.name AS monitor_name, m.workflow, m.url AS monitor_url \
             FROM monitor_runs r JOIN monitors m ON m.id = r.monitor_id \
             WHERE r.events IS NOT NULL AND r.outcome IS NOT NULL AND m.workspace_id = $1 \
             AND ($2::uuid IS NULL OR r.monitor_id = $2) \
             ORDER BY r.id DESC LIMIT $3",
        )
        .bind(workspace.as_uuid())
        .bind(monitor.map(|m| m.as_uuid()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }
}
