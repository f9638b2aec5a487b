//! [`accord_store::ItemHistoryStore`]: the item history of an
//! `extract_items` monitor follows each completion (items inserted, seen
//! again, changed, removed, back again), in the completion's transaction
//! (a refused completion changes nothing); listed in the order first seen,
//! filtered by state and by a text in the key or a field (any case), paged
//! with a cursor, within its workspace; deleted with its monitor.

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_model::{
    ItemStateFilter, ItemStatus, Monitor, MonitorRun, SeenAt, WorkflowKind, WorkspaceId,
};
use accord_store::{CompleteRunOutcome, ItemQuery, RunRecord, SeenItem, Store, StoredItem};

use crate::fixtures::*;
use crate::harness::conformance;
use crate::monitors::{completion, manual, monitor, started};

fn items_monitor(workspace: WorkspaceId) -> Monitor {
    Monitor {
        workflow: WorkflowKind::ExtractItems,
        ..monitor(workspace, "board", &[], at(3_600))
    }
}

/// An item with a title and a city (none when `city` is empty).
fn seen(key: &str, title: &str, city: &str) -> SeenItem {
    SeenItem {
        key: key.to_owned(),
        fields: [
            ("title".to_owned(), Some(title.to_owned())),
            (
                "city".to_owned(),
                (!city.is_empty()).then(|| city.to_owned()),
            ),
        ]
        .into_iter()
        .collect(),
    }
}

/// Runs the monitor once at `second`, completing with `items`.
async fn run_with(
    store: &dyn Store,
    m: &Monitor,
    baseline: Option<i64>,
    second: i64,
    items: Vec<SeenItem>,
) -> MonitorRun {
    let (run, _) = started(
        store
            .monitor_run_start(&manual(m, at(second)))
            .await
            .unwrap(),
    );
    let lease = claim(store, "w", 1, at(second + 1)).await.remove(0);
    let mut done = completion(m, run.id, lease, baseline, "t", at(second + 2));
    if let RunRecord::Outcome { items: kept, .. } = &mut done.record {
        *kept = Some(items);
    }
    assert!(matches!(
        store.monitor_run_complete(&done).await.unwrap(),
        CompleteRunOutcome::Applied(_)
    ));
    run
}

fn query(state: ItemStateFilter, text: Option<&str>) -> ItemQuery {
    ItemQuery {
        state,
        text: text.map(str::to_owned),
        after: None,
        limit: 100,
    }
}

async fn list(store: &dyn Store, m: &Monitor, query: &ItemQuery) -> Vec<StoredItem> {
    store
        .monitor_items(m.workspace_id, m.id, query)
        .await
        .unwrap()
}

fn keys(items: &[StoredItem]) -> Vec<&str> {
    items.iter().map(|i| i.record.key.as_str()).collect()
}

fn when(run: &MonitorRun, second: i64) -> SeenAt {
    SeenAt {
        run_id: run.id,
        at: at(second),
    }
}

async fn the_history_follows_each_completion(store: Arc<dyn Store>) {
    let m = items_monitor(WorkspaceId::DEFAULT);
    store.monitor_insert(&m).await.unwrap();
    let all = query(ItemStateFilter::All, None);
    assert!(list(&*store, &m, &all).await.is_empty());

    let first = run_with(
        &*store,
        &m,
        None,
        10,
        vec![
            seen("/a", "Rust developer", "Zürich"),
            seen("/b", "Go developer", ""),
        ],
    )
    .await;
    let items = list(&*store, &m, &all).await;
    assert_eq!(keys(&items), ["/a", "/b"]);
    let a = &items[0].record;
    assert_eq!(a.status, ItemStatus::Current);
    assert_eq!(
        (a.first_seen, a.last_seen),
        (when(&first, 12), when(&first, 12))
    );
    assert_eq!((a.removed, a.changes), (None, 0));
    assert_eq!(a.fields["city"].as_deref(), Some("Zürich"));
    assert_eq!(items[1].record.fields["city"], None);

    // /b changes, /c is new, /a is gone.
    let second = run_with(
        &*store,
        &m,
        Some(first.id),
        20,
        vec![
            seen("/c", "C developer", "Oslo"),
            seen("/b", "Go developer", "Remote"),
        ],
    )
    .await;
    let items = list(&*store, &m, &all).await;
    assert_eq!(keys(&items), ["/a", "/b", "/c"], "in the order first seen");
    let (a, b, c) = (&items[0].record, &items[1].record, &items[2].record);
    assert_eq!(a.status, ItemStatus::Removed);
    assert_eq!(a.removed, Some(when(&second, 22)));
    assert_eq!(a.last_seen, when(&first, 12));
    assert_eq!(
        (b.first_seen, b.last_seen),
        (when(&first, 12), when(&second, 22))
    );
    assert_eq!(
        (b.changes, b.fields["city"].as_deref()),
        (1, Some("Remote"))
    );
    assert_eq!(
        (c.first_seen, c.changes, c.removed),
        (when(&second, 22), 0, None)
    );

    // /a comes back unchanged, /b is gone, /c is seen again unchanged.
    let third = run_with(
        &*store,
        &m,
        Some(second.id),
        30,
        vec![
            seen("/c", "C developer", "Oslo"),
            seen("/a", "Rust developer", "Zürich"),
        ],
    )
    .await;
    let items = list(&*store, &m, &all).await;
    assert_eq!(keys(&items), ["/a", "/b", "/c"]);
    let (a, b, c) = (&items[0].record, &items[1].record, &items[2].record);
    assert_eq!(
        (a.status, a.removed, a.changes),
        (ItemStatus::Current, None, 0)
    );
    assert_eq!(
        (a.first_seen, a.last_seen),
        (when(&first, 12), when(&third, 32))
    );
    assert_eq!(
        (b.status, b.removed),
        (ItemStatus::Removed, Some(when(&third, 32)))
    );
    assert_eq!(b.changes, 1);
    assert_eq!((c.last_seen, c.changes), (when(&third, 32), 0));

    // Filters: by state, by a text in the key or a field, ignoring case
    // (beyond ASCII too), both at once.
    let current = list(&*store, &m, &query(ItemStateFilter::Current, None)).await;
    assert_eq!(keys(&current), ["/a", "/c"]);
    let removed = list(&*store, &m, &query(ItemStateFilter::Removed, None)).await;
    assert_eq!(keys(&removed), ["/b"]);
    let zurich = list(&*store, &m, &query(ItemStateFilter::All, Some("ZÜRICH"))).await;
    assert_eq!(keys(&zurich), ["/a"]);
    let developers = list(&*store, &m, &query(ItemStateFilter::All, Some("Developer"))).await;
    assert_eq!(keys(&developers), ["/a", "/b", "/c"]);
    let by_key = list(&*store, &m, &query(ItemStateFilter::All, Some("/C"))).await;
    assert_eq!(keys(&by_key), ["/c"]);
    let remote_gone = list(
        &*store,
        &m,
        &query(ItemStateFilter::Removed, Some("remote")),
    )
    .await;
    assert_eq!(keys(&remote_gone), ["/b"]);
    let remote_here = list(
        &*store,
        &m,
        &query(ItemStateFilter::Current, Some("remote")),
    )
    .await;
    assert!(remote_here.is_empty());
    let nothing = list(&*store, &m, &query(ItemStateFilter::All, Some("cobol"))).await;
    assert!(nothing.is_empty());

    // Paged: each page continues after the last position of the one before.
    let mut page = ItemQuery {
        limit: 2,
        ..query(ItemStateFilter::All, None)
    };
    let one = list(&*store, &m, &page).await;
    assert_eq!(keys(&one), ["/a", "/b"]);
    page.after = Some(one[1].position);
    let two = list(&*store, &m, &page).await;
    assert_eq!(keys(&two), ["/c"]);
    page.after = Some(two[0].position);
    assert!(list(&*store, &m, &page).await.is_empty());
    // A filtered page continues the same way.
    let mut developers_page = ItemQuery {
        limit: 1,
        ..query(ItemStateFilter::All, Some("developer"))
    };
    let first_dev = list(&*store, &m, &developers_page).await;
    developers_page.after = Some(first_dev[0].position);
    developers_page.limit = 10;
    assert_eq!(
        keys(&list(&*store, &m, &developers_page).await),
        ["/b", "/c"]
    );

    // The field names of the whole history.
    let fields = store
        .monitor_item_fields(m.workspace_id, m.id)
        .await
        .unwrap();
    assert_eq!(
        fields,
        ["city", "title"]
            .map(str::to_owned)
            .into_iter()
            .collect::<BTreeSet<_>>()
    );

    // Another workspace sees nothing of it.
    let elsewhere = WorkspaceId::new();
    assert!(store
        .monitor_items(elsewhere, m.id, &all)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .monitor_item_fields(elsewhere, m.id)
        .await
        .unwrap()
        .is_empty());
}

async fn a_refused_completion_changes_no_history(store: Arc<dyn Store>) {
    let m = items_monitor(WorkspaceId::DEFAULT);
    store.monitor_insert(&m).await.unwrap();
    let first = run_with(&*store, &m, None, 10, vec![seen("/a", "A", "")]).await;

    let (run, _) = started(store.monitor_run_start(&manual(&m, at(20))).await.unwrap());
    let lease = claim(&*store, "w", 1, at(21)).await.remove(0);
    let with_items = |baseline: Option<i64>| {
        let mut done = completion(&m, run.id, lease, baseline, "t", at(22));
        if let RunRecord::Outcome { items, .. } = &mut done.record {
            *items = Some(vec![seen("/b", "B", "")]);
        }
        done
    };
    // Computed against a baseline that is not the monitor's.
    assert_eq!(
        store.monitor_run_complete(&with_items(None)).await.unwrap(),
        CompleteRunOutcome::BaselineMoved
    );
    // Another worker's lease.
    let mut stolen = with_items(Some(first.id));
    stolen.worker = worker("other");
    assert_eq!(
        store.monitor_run_complete(&stolen).await.unwrap(),
        CompleteRunOutcome::Stale
    );
    let items = list(&*store, &m, &query(ItemStateFilter::All, None)).await;
    assert_eq!(keys(&items), ["/a"]);
    assert_eq!(items[0].record.status, ItemStatus::Current);

    // A run that records an error keeps the history as it was.
    let mut error = with_items(Some(first.id));
    error.record = RunRecord::Error("the capture was unreadable".to_owned());
    assert!(matches!(
        store.monitor_run_complete(&error).await.unwrap(),
        CompleteRunOutcome::Applied(_)
    ));
    let items = list(&*store, &m, &query(ItemStateFilter::All, None)).await;
    assert_eq!(keys(&items), ["/a"]);
    assert_eq!(items[0].record.status, ItemStatus::Current);
}

async fn deleting_the_monitor_deletes_its_history(store: Arc<dyn Store>) {
    let m = items_monitor(WorkspaceId::DEFAULT);
    store.monitor_insert(&m).await.unwrap();
    run_with(
        &*store,
        &m,
        None,
        10,
        vec![seen("/a", "A", ""), seen("/b", "B", "")],
    )
    .await;
    let other = Monitor {
        id: accord_model::MonitorId::new(),
        ..items_monitor(WorkspaceId::DEFAULT)
    };
    store.monitor_insert(&other).await.unwrap();
    run_with(&*store, &other, None, 20, vec![seen("/a", "A", "")]).await;

    assert!(store
        .monitor_delete(WorkspaceId::DEFAULT, m.id)
        .await
        .unwrap());
    // The same monitor made again starts with no history: the rows went
    // with it, not just out of sight.
    store.monitor_insert(&m).await.unwrap();
    assert!(list(&*store, &m, &query(ItemStateFilter::All, None))
        .await
        .is_empty());
    // The other monitor's history is untouched.
    let kept = list(&*store, &other, &query(ItemStateFilter::All, None)).await;
    assert_eq!(keys(&kept), ["/a"]);
}

conformance!(
    the_history_follows_each_completion,
    a_refused_completion_changes_no_history,
    deleting_the_monitor_deletes_its_history,
);

/// An `extract_items` snapshot as the workflows crate keeps it.
fn items_snapshot(items: &[SeenItem]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|item| serde_json::json!({"key": item.key, "fields": item.fields}))
        .collect();
    serde_json::json!({"workflow": "extract_items", "version": 1, "rules": "r", "items": items})
}

/// Runs the monitor once at `second` the way a build before the item
/// history did: the snapshot is kept, no history is written.
async fn run_without_history(
    store: &dyn Store,
    m: &Monitor,
    baseline: Option<i64>,
    second: i64,
    items: &[SeenItem],
) -> MonitorRun {
    let (run, _) = started(
        store
            .monitor_run_start(&manual(m, at(second)))
            .await
            .unwrap(),
    );
    let lease = claim(store, "w", 1, at(second + 1)).await.remove(0);
    let mut done = completion(m, run.id, lease, baseline, "t", at(second + 2));
    if let RunRecord::Outcome { snapshot, .. } = &mut done.record {
        *snapshot = items_snapshot(items);
    }
    assert!(matches!(
        store.monitor_run_complete(&done).await.unwrap(),
        CompleteRunOutcome::Applied(_)
    ));
    run
}

/// Monitors that ran before the table: two runs kept snapshots; the
/// history is then taken away (table and migration record) as if the
/// database predated it. Returns the monitor and its runs.
async fn history_before_the_table(store: &dyn Store) -> (Monitor, MonitorRun) {
    let m = items_monitor(WorkspaceId::DEFAULT);
    store.monitor_insert(&m).await.unwrap();
    let first = run_without_history(
        store,
        &m,
        None,
        10,
        &[seen("/a", "A", ""), seen("/b", "B", "Bern")],
    )
    .await;
    let second = run_without_history(
        store,
        &m,
        Some(first.id),
        20,
        &[seen("/c", "C", "Oslo"), seen("/b", "B", "Zürich")],
    )
    .await;
    // A page_change monitor's snapshot holds no items.
    let page = monitor(WorkspaceId::DEFAULT, "page", &[], at(3_600));
    store.monitor_insert(&page).await.unwrap();
    run_with(store, &page, None, 30, Vec::new()).await;
    (m, second)
}

/// After the migration ran again: the latest snapshot's items, in page
/// order, first and last seen on that run; and the next completion
/// carries on from there.
async fn check_backfill(store: &dyn Store, m: &Monitor, latest: &MonitorRun) {
    let all = query(ItemStateFilter::All, None);
    let items = list(store, m, &all).await;
    assert_eq!(keys(&items), ["/c", "/b"]);
    for item in &items {
        let record = &item.record;
        assert_eq!(record.status, ItemStatus::Current);
        assert_eq!(
            (record.first_seen, record.last_seen),
            (when(latest, 22), when(latest, 22))
        );
        assert_eq!((record.removed, record.changes), (None, 0));
    }
    assert_eq!(items[1].record.fields["city"].as_deref(), Some("Zürich"));
    assert_eq!(items[1].record.fields["title"].as_deref(), Some("B"));
    let found = list(store, m, &query(ItemStateFilter::All, Some("oslo"))).await;
    assert_eq!(keys(&found), ["/c"]);

    let next = run_with(store, m, Some(latest.id), 40, vec![seen("/c", "C", "Oslo")]).await;
    let items = list(store, m, &all).await;
    assert_eq!(keys(&items), ["/c", "/b"]);
    assert_eq!(items[0].record.last_seen, when(&next, 42));
    assert_eq!(
        items[0].record.changes, 0,
        "the same fields after the backfill"
    );
    assert_eq!(items[1].record.removed, Some(when(&next, 42)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_migration_backfills_from_the_latest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accord.db");
    let config = accord_store::SqliteConfig::new(path.clone());
    let store = accord_store::SqliteStore::open(&config).await.unwrap();
    let (m, latest) = history_before_the_table(&store).await;
    drop(store);
    let url = format!("sqlite://{}", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE monitor_items")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 10")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = accord_store::SqliteStore::open(&config).await.unwrap();
    check_backfill(&store, &m, &latest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_migration_backfills_from_the_latest_snapshot() {
    let database = accord_test_support::TestDatabase::create().await;
    let config = accord_store::PostgresConfig::new(database.url());
    let store = accord_store::PostgresStore::connect(&config).await.unwrap();
    let (m, latest) = history_before_the_table(&store).await;
    drop(store);
    let pool = sqlx::PgPool::connect(&database.url()).await.unwrap();
    sqlx::query("DROP TABLE monitor_items")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 11")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = accord_store::PostgresStore::connect(&config).await.unwrap();
    check_backfill(&store, &m, &latest).await;
}
