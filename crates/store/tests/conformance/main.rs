//! The storage conformance suite: every backend must pass every case, each
//! case on a fresh database. One file per sub-trait of `Store`; the
//! `conformance!` macro of `harness.rs` runs each case on SQLite and on
//! PostgreSQL. Time is passed in explicitly, so nothing here sleeps or reads
//! the wall clock.
//!
//! One test binary rather than one per file: the cases share the harness
//! and fixtures without copying them, and the crate is linked once.

mod fixtures;
mod harness;

mod access;
mod artifacts;
mod audit;
mod backend;
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
mod workflow_runs;
