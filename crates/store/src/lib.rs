//! Accord's storage: the [`Store`] trait and its backends.
//!
//! This is the only crate that speaks SQL. Two backends implement the
//! trait: [`SqliteStore`] (one embedded file, one writer) and
//! [`PostgresStore`] (a shared server, many writers). Each keeps its own SQL
//! and migrations (`migrations/sqlite`, `migrations/postgres`); one
//! conformance suite (`tests/conformance.rs`) holds them to the same
//! behaviour. Every state transition is one conditional statement
//! (`... WHERE state = ... AND attempt = ...`), never read-then-write, and
//! writes its job event in the same transaction. Every query about a job is
//! scoped by its workspace.
//!
//! The store does not decide policy (retry delays, lease lengths, retention
//! ages): callers pass those in, together with the current time, so the
//! store never reads a clock.

mod error;
mod postgres;
mod sqlite;
mod store;

pub use error::StoreError;
pub use postgres::{PostgresConfig, PostgresStore};
pub use sqlite::{SqliteConfig, SqliteStore, Synchronous};
pub use store::{
    AuditFilter, CancelOutcome, ClaimParams, FailParams, HeartbeatOutcome, InsertJob,
    InsertOutcome, JobCount, JobFilter, JobWakeups, Leadership, QueueStats, ReportOutcome,
    RetryOutcome, Store, StoredApiKey, Transition,
};
