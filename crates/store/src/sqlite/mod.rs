//! The embedded SQLite backend: one file, WAL journal, one writer connection.
//!
//! All writes go through a single connection, so they never contend for
//! SQLite's write lock inside the process; reads use a small pool of their
//! own and see the last committed state (WAL readers do not block the writer).
//! Each file implements one of the store's sub-traits with its own SQL.

mod access;
mod artifacts;
mod audit;
mod connect;
mod coordination;
mod domains;
mod feeds;
mod items;
mod jobs;
mod lease;
mod maintenance;
mod monitors;
mod notifications;
mod policies;
mod robots;
mod rows;
mod workflow_runs;

pub use connect::{SqliteConfig, SqliteStore, Synchronous};
