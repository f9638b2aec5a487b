//! Accord's storage: the [`Store`] sub-traits and their backends.
//!
//! This is the only crate that speaks SQL. [`Store`] is the sum of one
//! sub-trait per concern, each declared in its own module with the types it
//! takes and returns: [`JobStore`] (`jobs.rs`), [`LeaseStore`] (`lease.rs`),
//! [`AccessStore`] (`access.rs`), [`AuditStore`] (`audit.rs`),
//! [`MaintenanceStore`] (`maintenance.rs`), [`DomainStore`] (`domains.rs`),
//! [`CoordinationStore`] (`coordination.rs`), [`ArtifactStore`] (`artifacts.rs`, the artifact
//! index), [`MonitorStore`] (`monitors.rs`), [`NotificationStore`]
//! (`notifications.rs`), [`WorkflowRunStore`] (`workflow_runs.rs`),
//! [`PolicyStore`] (`policies.rs`, domain policies), [`FeedStore`]
//! (`feeds.rs`), [`ItemHistoryStore`] (`items.rs`, the item histories of
//! `extract_items` monitors), [`RobotsStore`] (`robots.rs`, robots.txt
//! answers shared by every worker) and
//! [`BackendStore`] (`backend.rs`). Two backends
//! implement every one, each in the file of its own that owns the SQL:
//! [`SqliteStore`] (one embedded file, one writer) and [`PostgresStore`] (a
//! shared server, many writers). Each keeps its own SQL and migrations
//! (`migrations/sqlite`, `migrations/postgres`); what they share about the
//! schema (column lists, state sets, decoding stored text) is in
//! `schema.rs`. One conformance suite (`tests/conformance/`, a file per
//! sub-trait) holds them to the same behaviour.
//!
//! Every state transition is one conditional statement (`... WHERE state =
//! ... AND attempt = ...`) and writes its job event in the same transaction.
//! Every query about a job is scoped by its workspace.
//!
//! The store does not decide policy: the retry decision is the model's
//! ([`accord_model::RetryPolicy::after_failure`]), and lease lengths,
//! retention ages and the current time are passed in, so the store never
//! reads a clock.

mod access;
mod artifacts;
mod audit;
mod backend;
mod coordination;
mod domains;
mod error;
mod feeds;
mod items;
mod jobs;
mod lease;
mod maintenance;
mod monitors;
mod notifications;
mod policies;
mod postgres;
mod robots;
mod schema;
mod sqlite;
mod store;
mod workflow_runs;

pub use access::{AccessStore, StoredApiKey};
pub use artifacts::{
    ArtifactInsert, ArtifactInsertOutcome, ArtifactLimits, ArtifactRecord, ArtifactStore,
    AttemptEvidence,
};
pub use audit::{AuditFilter, AuditStore};
pub use backend::BackendStore;
pub use coordination::{CoordinationStore, JobWakeups, Leadership};
pub use domains::{DomainEngine, DomainStore};
pub use error::StoreError;
pub use feeds::{FeedEntry, FeedStore};
pub use items::{ItemHistoryStore, ItemQuery, SeenItem, StoredItem};
pub use jobs::{CancelOutcome, InsertJob, InsertOutcome, JobFilter, JobStore, RetryOutcome};
pub use lease::{
    ClaimParams, DeadRunVerdict, DeferLease, EscalateParams, FailParams, HeartbeatOutcome,
    LeaseStore, ReportOutcome, Transition,
};
pub use maintenance::{JobCount, MaintenanceStore, QueueStats};
pub use monitors::{
    Advance, Baseline, CompleteRun, CompleteRunOutcome, MonitorFilter, MonitorGauge, MonitorStore,
    RunContext, RunRecord, SnapshotOrder, StartOutcome, StartRun, StoredSnapshot,
};
pub use notifications::{
    AttemptNext, AttemptRecord, ClaimedMessage, DeliveryFilter, NewMessage, NotificationStore,
    RecordOutcome, RunNotice, MAX_ATTEMPTS_SHOWN,
};
pub use policies::{PolicyStore, PolicyWrite};
pub use postgres::{PostgresConfig, PostgresStore};
pub use robots::{RobotsLookup, RobotsStore};
pub use sqlite::{SqliteConfig, SqliteStore, Synchronous};
pub use store::Store;
pub use workflow_runs::{
    CompleteWorkflowRun, StartWorkflowRun, WorkflowRecord, WorkflowRun, WorkflowRunStore,
};
