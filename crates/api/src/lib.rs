//! The control plane's HTTP surface.
//!
//! Owns the axum router: the REST API under `/api/v1`, the worker protocol
//! under `/internal/v1/worker`, health, readiness and metrics, the OpenAPI
//! document generated from the handlers, and the offline docs page. Every
//! error goes through one table ([`ApiError`]) that fixes its status and
//! machine code.
//!
//! Never runs a job and never speaks SQL: it calls the queue, which calls the store.

mod error;
mod extract;
mod openapi;
mod routes;
mod state;

pub use error::ApiError;
pub use openapi::openapi;
pub use routes::router;
pub use state::{ApiConfig, ApiState};
