//! Accord's execution engines: run a job's steps against the web and report
//! a [`JobResult`](accord_model::JobResult) or a classified error.
//!
//! Owns the [`Executor`] trait, the plain-HTTP engine ([`HttpEngine`]), the
//! Chromium engine ([`browser::BrowserEngine`]), the SSRF guard every
//! fetch goes through, the extraction of fields from pages (HTML and JSON),
//! and the network capture format every engine writes. Errors are
//! classified retryable or permanent here, at the source.
//!
//! Deliberately does not retry or time out whole jobs: the caller (the
//! worker) cancels a run through its token when the job times out or is
//! stopped, and awaits the run, which ends promptly, so its slot is not
//! reused while work of the run is still going. Never touches the store.

mod auto;
mod bounded;
pub mod browser;
mod capture;
mod config;
mod error;
mod executor;
mod extract;
mod fetch;
mod http;
mod process;
mod text;

pub use accord_egress::Blocked;
pub use auto::client_rendered;
pub use bounded::{Exceeded, PageLimits};
pub use capture::{
    ActiveCapture, BodyEncoding, CapturedBody, Exchange, Header, NetworkCapture, MAX_EXCHANGES,
    REDACTED_HEADERS,
};
pub use config::EngineConfig;
pub use error::{EngineBuildError, EngineError, SiteSignal, StepFailure};
pub use executor::{Artifact, Executor, JobEgress, RunFailure, RunOutput};
pub use http::HttpEngine;
pub use process::process_page;
