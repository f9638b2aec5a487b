//! `extract_items`: a list of records out of a page (job postings,
//! products, articles), each identified by a key, compared with the last
//! snapshot to report new, removed and changed items, after include and
//! exclude keyword filters.
//!
//! Deliberately does not extract the records (the engine runs the item and
//! field selectors and follows the next-page links) nor keep the item
//! history (the control plane stores each run's outcome).

mod compare;
mod input;

pub use compare::{
    extract_items, ChangedItem, FieldChange, Item, ItemsOutcome, ItemsRun, ItemsSnapshot, Record,
    MAX_ITEMS,
};
pub use input::{ExtractItemsInput, ItemField, ItemKey, KeywordFilter, Pagination, MAX_PAGES};

#[cfg(test)]
mod tests;
