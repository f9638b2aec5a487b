//! The PostgreSQL backend: a connection pool shared by any number of Accord
//! processes.
//!
//! Unlike SQLite there is no single writer, so claims and the reaper lock
//! rows with `FOR UPDATE SKIP LOCKED` and never wait for one another; the
//! worker's reports lock their rows in id order, so two reports never
//! deadlock. Each transition and its job event are written by one statement
//! (data-modifying CTEs), and batches go in as arrays (`UNNEST`) so a batch
//! costs one round trip however long it is. Each file implements one of the
//! store's sub-traits with its own SQL.

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

pub use connect::{PostgresConfig, PostgresStore};
