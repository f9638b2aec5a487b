//! The worker: an execution loop that leases jobs from the control plane
//! over the HTTP worker protocol, runs each on an engine with its timeout,
//! keeps every lease alive with one batched heartbeat, aborts jobs the
//! heartbeat reports cancelled or lost, and reports outcomes with their
//! fencing token.
//!
//! It never touches the database: the same code runs inside `accord up` and
//! as a separate `accord worker --server URL` process. It reaches the
//! control plane only through [`ControlPlane`], which
//! [`AccordClient`](accord_client::AccordClient) implements.
//!
//! Modules, each depending only on those listed after it: `run_loop` (the
//! loop and its state), `job` (one job's run), `policy` (the job's domain
//! policies, before and during its run), `robots` (robots.txt
//! before a job's pages), `polite` (per-domain permits around a job), `upload` (sending a run's
//! artifacts before its outcome), `report` (the batching reporter), `event`
//! (the loop's messages), `control` (the boundary).

mod config;
mod control;
mod event;
mod job;
mod policy;
mod polite;
mod report;
mod robots;
mod run_loop;
mod upload;

pub use config::{default_browser_slots, WorkerConfig};
pub use control::ControlPlane;
pub use policy::job_egress;
pub use run_loop::{Engines, Worker};
