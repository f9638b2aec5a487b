//! [`accord_store::BackendStore`]: the database as a whole.

use std::sync::Arc;

use accord_store::Store;

use crate::harness::conformance;

async fn names_itself_answers_and_closes(store: Arc<dyn Store>) {
    assert!(["sqlite", "postgres"].contains(&store.backend()));
    store.ping().await.unwrap();
    store.close().await;
    assert!(
        store.ping().await.is_err(),
        "a closed store answers no more"
    );
}

conformance!(names_itself_answers_and_closes);
