//! The control plane's HTTP surface.
//!
//! Owns the axum router: the REST API under `/api/v1`, the worker protocol
//! under `/internal/v1/worker`, health, readiness and metrics, the OpenAPI
//! document generated from the handlers, and the offline docs page; and
//! who may call it: API keys, roles and workspaces, rate limits and the
//! audit log ([`auth`]). Every error goes through one table ([`ApiError`])
//! that fixes its status and machine code.
//!
//! Never runs a job and never speaks SQL: it calls the queue and the store trait.

mod audit;
pub mod auth;
mod error;
mod extract;
mod hardening;
mod openapi;
mod routes;
mod serve;
mod state;

pub use audit::AuditRecorder;
pub use error::ApiError;
pub use openapi::openapi;
pub use routes::router;
pub use serve::{serve, ConnectionLimits};
pub use state::{ApiConfig, ApiState};
