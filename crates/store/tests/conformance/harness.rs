//! Runs a conformance case on every backend, each on a fresh database: a
//! new SQLite file in a temporary directory, a new PostgreSQL database
//! (dropped afterwards, see `TestDatabase`).

use std::sync::Arc;

use accord_store::{PostgresConfig, PostgresStore, SqliteConfig, SqliteStore, Store};
use accord_test_support::TestDatabase;

/// A fresh SQLite store, and the directory that keeps its file alive.
pub(crate) async fn open_sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::new(dir.path().join("accord.db"));
    let store = SqliteStore::open(&config).await.unwrap();
    (Arc::new(store), dir)
}

/// A PostgreSQL store on a fresh database, and the guard that drops it.
pub(crate) async fn open_postgres() -> (Arc<dyn Store>, TestDatabase) {
    let database = TestDatabase::create().await;
    let mut config = PostgresConfig::new(database.url());
    config.max_connections = 8;
    let store = PostgresStore::connect(&config).await.unwrap();
    (Arc::new(store), database)
}

/// Expands each case, an `async fn(Arc<dyn Store>)` of the calling module,
/// into two tests: `sqlite::<case>` and `postgres::<case>`.
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _guard) = $crate::harness::open_sqlite().await;
                    super::$case(store).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _guard) = $crate::harness::open_postgres().await;
                    super::$case(store).await;
                }
            )+
        }
    };
}

pub(crate) use conformance;
