//! [`RobotsStore`] for SQLite: robots.txt answers by origin, with the
//! claim of the worker fetching one. Claims go through the one writer
//! connection, so two claims of one origin are serialized.

use accord_model::{RobotsRecord, RobotsStatus, WorkerId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::rows::{ms, opt_ms};
use super::SqliteStore;
use crate::{RobotsLookup, RobotsStore, StoreError};

const COLUMNS: &str = "origin, status, body, reason, fetched_at, expires_at, claimed_until";

/// What a row says at `now`: a fresh answer, a live claim, or neither.
fn lookup_of(row: &SqliteRow, now: DateTime<Utc>) -> Result<Option<RobotsLookup>, StoreError> {
    let expires_at = opt_ms(row.try_get("expires_at")?)?;
    if let Some(expires_at) = expires_at.filter(|at| *at > now) {
        let status: String = row.try_get("status")?;
        let fetched_at: Option<i64> = row.try_get("fetched_at")?;
        return Ok(Some(RobotsLookup::Fresh(RobotsRecord {
            origin: row.try_get("origin")?,
            status: RobotsStatus::parse(&status)
                .ok_or_else(|| StoreError::corrupt("robots status", &status))?,
            body: row.try_get("body")?,
            reason: row.try_get("reason")?,
            fetched_at: opt_ms(fetched_at)?
                .ok_or_else(|| StoreError::corrupt("robots fetched_at", "NULL"))?,
            expires_at,
        })));
    }
    let claimed_until = opt_ms(row.try_get("claimed_until")?)?;
    Ok(claimed_until
        .filter(|until| *until > now)
        .map(RobotsLookup::Busy))
}

#[async_trait]
impl RobotsStore for SqliteStore {
    async fn robots_get_or_claim(
        &self,
        origin: &str,
        claimant: &WorkerId,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
    ) -> Result<RobotsLookup, StoreError> {
        let select = format!("SELECT {COLUMNS} FROM robots_answers WHERE origin = ?");
        // The common case: some worker already fetched it.
        let row = sqlx::query(&select)
            .bind(origin)
            .fetch_optional(&self.reader)
            .await?;
        if let Some(RobotsLookup::Fresh(record)) = row
            .as_ref()
            .map(|row| lookup_of(row, now))
            .transpose()?
            .flatten()
        {
            return Ok(RobotsLookup::Fresh(record));
        }
        let claimed = sqlx::query(
            "INSERT INTO robots_answers (origin, claimed_by, claimed_until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (origin) DO UPDATE \
             SET claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until \
             WHERE (robots_answers.expires_at IS NULL OR robots_answers.expires_at <= ?4) \
               AND (robots_answers.claimed_until IS NULL OR robots_answers.claimed_until <= ?4 \
                    OR robots_answers.claimed_by = ?2) \
             RETURNING claimed_until",
        )
        .bind(origin)
        .bind(claimant.as_str())
        .bind(ms(claim_until))
        .bind(ms(now))
        .fetch_optional(&self.writer)
        .await?;
        if claimed.is_some() {
            return Ok(RobotsLookup::Claimed(claim_until));
        }
        // Someone else published or claimed it in between.
        let row = sqlx::query(&select)
            .bind(origin)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row
            .as_ref()
            .map(|row| lookup_of(row, now))
            .transpose()?
            .flatten()
            // Their claim ran out just now: ask again at once.
            .unwrap_or(RobotsLookup::Busy(now)))
    }

    async fn robots_put(&self, record: &RobotsRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO robots_answers (origin, status, body, reason, fetched_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (origin) DO UPDATE \
             SET status = excluded.status, body = excluded.body, reason = excluded.reason, \
                 fetched_at = excluded.fetched_at, expires_at = excluded.expires_at, \
                 claimed_by = NULL, claimed_until = NULL \
             WHERE robots_answers.fetched_at IS NULL \
                OR robots_answers.fetched_at <= excluded.fetched_at",
        )
        .bind(&record.origin)
        .bind(record.status.as_str())
        .bind(&record.body)
        .bind(&record.reason)
        .bind(ms(record.fetched_at))
        .bind(ms(record.expires_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn robots_prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM robots_answers \
             WHERE (expires_at IS NULL OR expires_at < ?1) \
               AND (claimed_until IS NULL OR claimed_until < ?1)",
        )
        .bind(ms(before))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
