//! Accord's execution engines: run a job's steps against the web and report
//! a [`JobResult`](accord_model::JobResult) or a classified error.
//!
//! Owns the [`Executor`] trait, the plain-HTTP engine ([`HttpEngine`]), the
//! SSRF guard every fetch goes through, and the extraction of fields from
//! pages. Errors are classified retryable or permanent here, at the source.
//!
//! Deliberately does not retry, time out whole jobs or handle cancellation:
//! the caller (the worker) drops the future to cancel and wraps it in
//! `tokio::time::timeout` for the job timeout. Never touches the store.

mod config;
mod error;
mod executor;
mod extract;
mod guard;
mod http;

pub use config::EngineConfig;
pub use error::{EngineBuildError, EngineError, StepFailure};
pub use executor::Executor;
pub use guard::RefusedTarget;
pub use http::HttpEngine;
