//! The blob store of artifacts: the bytes of every screenshot, page,
//! capture, download and evidence manifest, addressed by their SHA-256.
//!
//! Owns where bytes live (a folder under the data directory by default,
//! S3-compatible object storage when configured, both through the
//! `object_store` crate), the streaming put that hashes on the fly and
//! keeps nothing whose hash or size differs from what was declared, ranged
//! reads, deletes, and the listing a sweep walks.
//!
//! Deliberately not the index: which job holds which artifact under which
//! name, quotas and pruning belong to the store (`ArtifactStore`) and the
//! queue. A blob here knows nothing of jobs, so one blob can serve every
//! job that captured the same bytes.

mod blob;
mod config;
mod error;

pub use blob::{BlobMeta, BlobRead, BlobStore, Declared, BLOB_PREFIX};
pub use config::{BlobStoreConfig, S3Config};
pub use error::BlobError;
