//! A typed client for Accord's HTTP API: the REST API under `/api/v1` and
//! the worker protocol under `/internal/v1/worker`.
//!
//! The worker, the CLI and the end-to-end tests all use it, so the one wire
//! format has one Rust reader. It does not retry: callers decide, using
//! [`ClientError::is_retryable`].

mod client;
mod error;
mod feeds;
mod notifications;
mod policies;

pub use client::{
    AccordClient, ArtifactDownload, ArtifactUpload, ItemFilter, ListJobs, ManifestDownload,
    Submitted,
};
pub use error::ClientError;
