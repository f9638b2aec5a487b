//! The worker: an execution loop that leases jobs from the control plane
//! over the HTTP worker protocol, runs each on an engine with its timeout,
//! keeps every lease alive with one batched heartbeat, aborts jobs the
//! heartbeat reports cancelled or lost, and reports outcomes with their
//! fencing token.
//!
//! It never touches the database: the same code runs inside `accord up` and
//! as a separate `accord worker --server URL` process.

mod config;
mod job;
mod report;
mod run_loop;

pub use config::WorkerConfig;
pub use run_loop::Worker;
