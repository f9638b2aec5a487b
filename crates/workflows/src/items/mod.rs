//! `extract_items`: a list of records out of a page (job postings,
//! products, articles), each identified by a key, compared with the last
//! snapshot to report new, removed and changed items, after include and
//! exclude keyword filters.
//!
//! Also compares any two snapshots (`compare_items`). The item history of
//! a monitor is kept by the store, updated from each run's snapshot in the
//! completion's transaction.
//!
//! Deliberately does not extract the records (the engine runs the item and
//! field selectors and follows the next-page links) nor store anything (the
//! control plane keeps each run's outcome and snapshot).

mod compare;
mod input;

pub use compare::{
    compare_items, extract_items, ChangedItem, FieldChange, Item, ItemsDiff, ItemsOutcome,
    ItemsRun, ItemsSnapshot, Record, MAX_ITEMS,
};
pub use input::{ExtractItemsInput, ItemField, ItemKey, KeywordFilter, Pagination, MAX_PAGES};

#[cfg(test)]
mod tests;
