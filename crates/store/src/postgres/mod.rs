//! The PostgreSQL backend: a connection pool shared by any number of Accord
//! processes.
//!
//! Unlike SQLite there is no single writer, so claims and the reaper lock
//! rows with `FOR UPDATE SKIP LOCKED` and never wait for one another; the
//! worker's reports lock their rows in id order, so two reports never
//! deadlock. Each transition and its job event are written by one statement
//! (data-modifying CTEs), and batches go in as arrays (`UNNEST`) so a batch
//! costs one round trip however long it is.

mod access;
mod connect;
mod jobs;
mod leader;
mod lease;
mod maintenance;
mod rows;
mod store_impl;
mod wakeups;

pub use connect::{PostgresConfig, PostgresStore};
