//! [`accord_store::RobotsStore`]: robots.txt answers shared by every
//! worker. The first worker to find nothing fresh claims the origin and
//! the others are told to wait; a published answer ends the claim and is
//! handed to everyone until it expires; a claim whose worker vanished runs
//! out and another worker takes it over.

use std::sync::Arc;

use accord_model::{RobotsRecord, RobotsStatus};
use accord_store::{RobotsLookup, Store};
use chrono::{DateTime, TimeDelta, Utc};

use crate::fixtures::*;
use crate::harness::conformance;

const ORIGIN: &str = "https://example.com";

fn record(status: RobotsStatus, body: &[u8], fetched_at: DateTime<Utc>, ttl: i64) -> RobotsRecord {
    RobotsRecord {
        origin: ORIGIN.to_owned(),
        status,
        body: body.to_vec(),
        reason: match status {
            RobotsStatus::Fetched => String::new(),
            _ => "robots.txt answered 503".to_owned(),
        },
        fetched_at,
        expires_at: fetched_at + TimeDelta::seconds(ttl),
    }
}

async fn ask(store: &dyn Store, who: &str, now: DateTime<Utc>) -> RobotsLookup {
    store
        .robots_get_or_claim(ORIGIN, &worker(who), now, now + TimeDelta::seconds(30))
        .await
        .unwrap()
}

async fn one_worker_fetches_while_the_others_wait(store: Arc<dyn Store>) {
    assert_eq!(
        ask(&*store, "a", at(0)).await,
        RobotsLookup::Claimed(at(30))
    );
    assert_eq!(ask(&*store, "b", at(1)).await, RobotsLookup::Busy(at(30)));
    // The claimant asking again (its first fetch was lost) gets it again.
    assert_eq!(
        ask(&*store, "a", at(2)).await,
        RobotsLookup::Claimed(at(32))
    );
    assert_eq!(ask(&*store, "b", at(3)).await, RobotsLookup::Busy(at(32)));
    // A body that is not text is kept byte for byte.
    let body = b"User-agent: *\nDisallow: /private\n\xff\x00".to_vec();
    let fetched = record(RobotsStatus::Fetched, &body, at(4), 86_400);
    store.robots_put(&fetched).await.unwrap();
    assert_eq!(
        ask(&*store, "b", at(5)).await,
        RobotsLookup::Fresh(fetched.clone())
    );
    assert_eq!(
        ask(&*store, "c", at(4 + 86_399)).await,
        RobotsLookup::Fresh(fetched)
    );
    // Expired: the next to ask fetches it again.
    assert_eq!(
        ask(&*store, "c", at(4 + 86_400)).await,
        RobotsLookup::Claimed(at(4 + 86_430))
    );
    // Other origins are unaffected.
    let other = store
        .robots_get_or_claim(
            "https://example.com:8443",
            &worker("b"),
            at(4 + 86_400),
            at(4 + 86_410),
        )
        .await
        .unwrap();
    assert_eq!(other, RobotsLookup::Claimed(at(4 + 86_410)));
}

async fn a_claim_whose_worker_vanished_is_taken_over(store: Arc<dyn Store>) {
    assert_eq!(
        ask(&*store, "a", at(0)).await,
        RobotsLookup::Claimed(at(30))
    );
    assert_eq!(ask(&*store, "b", at(29)).await, RobotsLookup::Busy(at(30)));
    assert_eq!(
        ask(&*store, "b", at(30)).await,
        RobotsLookup::Claimed(at(60))
    );
    // The first worker's late answer still counts: it is an answer.
    let late = record(RobotsStatus::Unavailable, b"", at(31), 86_400);
    store.robots_put(&late).await.unwrap();
    assert_eq!(ask(&*store, "c", at(32)).await, RobotsLookup::Fresh(late));
}

async fn an_unreachable_site_is_asked_again_after_its_short_expiry(store: Arc<dyn Store>) {
    assert_eq!(
        ask(&*store, "a", at(0)).await,
        RobotsLookup::Claimed(at(30))
    );
    let down = record(RobotsStatus::Unreachable, b"", at(1), 60);
    store.robots_put(&down).await.unwrap();
    assert_eq!(
        ask(&*store, "b", at(60)).await,
        RobotsLookup::Fresh(down.clone())
    );
    assert_eq!(
        ask(&*store, "b", at(61)).await,
        RobotsLookup::Claimed(at(91))
    );
    // An older answer published late does not replace a newer one.
    let up = record(RobotsStatus::Fetched, b"User-agent: *\n", at(62), 86_400);
    store.robots_put(&up).await.unwrap();
    store.robots_put(&down).await.unwrap();
    assert_eq!(ask(&*store, "c", at(63)).await, RobotsLookup::Fresh(up));
}

async fn pruning_forgets_expired_answers_and_lapsed_claims(store: Arc<dyn Store>) {
    store
        .robots_put(&record(RobotsStatus::Fetched, b"", at(0), 100))
        .await
        .unwrap();
    store
        .robots_get_or_claim("https://b.example", &worker("a"), at(0), at(30))
        .await
        .unwrap();
    store
        .robots_get_or_claim("https://c.example", &worker("a"), at(0), at(300))
        .await
        .unwrap();
    assert_eq!(store.robots_prune(at(50)).await.unwrap(), 1, "b's claim");
    assert_eq!(store.robots_prune(at(200)).await.unwrap(), 1, "the answer");
    assert_eq!(store.robots_prune(at(400)).await.unwrap(), 1, "c's claim");
    assert_eq!(
        ask(&*store, "z", at(400)).await,
        RobotsLookup::Claimed(at(430))
    );
}

conformance!(
    one_worker_fetches_while_the_others_wait,
    a_claim_whose_worker_vanished_is_taken_over,
    an_unreachable_site_is_asked_again_after_its_short_expiry,
    pruning_forgets_expired_answers_and_lapsed_claims,
);
