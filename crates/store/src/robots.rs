//! [`RobotsStore`]: robots.txt answers shared by every worker, one row per
//! origin, so a site's file is fetched once (not once per worker) and kept
//! until it expires. The row also holds a short claim: the worker that
//! found nothing fresh fetches the file while the others wait for it, so
//! two workers asking at once cause one fetch.
//!
//! Claiming is one conditional statement (an upsert whose update only
//! applies when the answer is stale and no live claim is held); publishing
//! replaces the answer and ends the claim. Times are passed in. Origins are
//! not workspace-scoped: a site's robots.txt is the same for everyone
//! (whether a workspace obeys it is its domain policy's business).

use accord_model::{RobotsRecord, WorkerId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// What the store says about an origin's robots.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotsLookup {
    /// An answer that holds at `now`.
    Fresh(RobotsRecord),
    /// Nothing fresh, and the caller now holds the claim to fetch it until
    /// this time.
    Claimed(DateTime<Utc>),
    /// Another worker holds the claim until this time.
    Busy(DateTime<Utc>),
}

#[async_trait]
pub trait RobotsStore: Send + Sync {
    /// The origin's fresh answer; else the claim to fetch it, for
    /// `claimant` until `claim_until`, unless another worker holds a live
    /// one. A claimant that asks again while holding the claim gets it
    /// again (its earlier fetch was lost).
    async fn robots_get_or_claim(
        &self,
        origin: &str,
        claimant: &WorkerId,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
    ) -> Result<RobotsLookup, StoreError>;

    /// Keeps `record` as its origin's answer and ends any claim on it,
    /// unless a newer answer (by `fetched_at`) is already kept.
    async fn robots_put(&self, record: &RobotsRecord) -> Result<(), StoreError>;

    /// Forgets answers that expired and claims that ran out before
    /// `before`; returns how many origins were forgotten.
    async fn robots_prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
