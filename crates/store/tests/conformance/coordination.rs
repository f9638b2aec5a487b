//! [`accord_store::CoordinationStore`]: wake-ups and leadership between
//! processes sharing one database. Only PostgreSQL is shared, so these cases
//! run there and check SQLite's single-process answers at the end.

use std::time::Duration;

use accord_model::JobState;
use accord_store::{CoordinationStore, JobWakeups, LeaseStore, PostgresConfig, PostgresStore};
use accord_test_support::TestDatabase;

use crate::fixtures::{at, claim, insert, state_of, t0};
use crate::harness::open_sqlite;

async fn hear(wakeups: &mut dyn JobWakeups) {
    tokio::time::timeout(Duration::from_secs(20), wakeups.next())
        .await
        .expect("a wake-up arrives")
        .unwrap();
}

/// PostgreSQL only: a control plane hears about jobs inserted, requeued or
/// reaped by another process sharing the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakes_other_processes() {
    let database = TestDatabase::create().await;
    let one = PostgresStore::connect(&PostgresConfig::new(database.url()))
        .await
        .unwrap();
    let two = PostgresStore::connect(&PostgresConfig::new(database.url()))
        .await
        .unwrap();
    let mut wakeups = one
        .job_wakeups()
        .await
        .unwrap()
        .expect("postgres has wake-ups");
    let id = insert(&two, "", t0()).await;
    hear(&mut *wakeups).await;
    let lease = claim(&two, "w", 1, at(0)).await;
    assert_eq!(lease.len(), 1);
    two.job_reap_expired(at(100), 10).await.unwrap();
    hear(&mut *wakeups).await;
    assert_eq!(state_of(&two, id).await, JobState::Available);
    let sqlite = open_sqlite().await;
    assert!(
        sqlite.0.job_wakeups().await.unwrap().is_none(),
        "one process: no wake-ups"
    );
}

/// PostgreSQL only: one process at a time leads the background duties, and
/// another takes over when the leader's session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_elects_one_maintenance_leader() {
    let database = TestDatabase::create().await;
    let one = PostgresStore::connect(&PostgresConfig::new(database.url()))
        .await
        .unwrap();
    let two = PostgresStore::connect(&PostgresConfig::new(database.url()))
        .await
        .unwrap();
    let mut leader = one
        .leadership_try_acquire()
        .await
        .unwrap()
        .expect("the first contender leads");
    assert!(leader.still_held().await);
    assert!(
        two.leadership_try_acquire().await.unwrap().is_none(),
        "only one leader at a time"
    );
    drop(leader);
    // The lock goes with the session; the server notices the closed socket
    // promptly, but give it a few tries.
    let mut took_over = None;
    for _ in 0..100 {
        if let Some(held) = two.leadership_try_acquire().await.unwrap() {
            took_over = Some(held);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(took_over.is_some(), "the other process takes over");
    let sqlite = open_sqlite().await;
    assert!(
        sqlite.0.leadership_try_acquire().await.unwrap().is_some(),
        "one process always leads"
    );
}
