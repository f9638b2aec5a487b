//! Captured HTML: parsed within bounds (`bounded`), then read as text the
//! way a person reads it, with elements removed by selector first (`page`).
//!
//! Deliberately does not fetch pages: the engine captured them.

mod bounded;
mod page;

pub use bounded::{PageTooComplex, MAX_PAGE_DEPTH, MAX_PAGE_NODES};
pub(crate) use page::Page;
