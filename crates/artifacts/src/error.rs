//! What can go wrong with a blob, classified so the control plane can tell
//! a refused upload (the uploader's fault) from storage trouble (its own).

use accord_model::Sha256Digest;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The bytes that arrived do not hash to the declared digest; nothing was kept.
    #[error("store the blob: its bytes hash to {actual}, not to the declared {declared}")]
    DigestMismatch {
        declared: Sha256Digest,
        actual: Sha256Digest,
    },
    /// More or fewer bytes arrived than declared; nothing was kept.
    #[error("store the blob: {actual} bytes arrived where {declared} were declared")]
    SizeMismatch { declared: u64, actual: u64 },
    /// The upload's body broke off; nothing was kept.
    #[error("read the uploaded bytes: {0}")]
    Body(String),
    #[error("find blob {0}")]
    NotFound(Sha256Digest),
    /// A range that starts at or past the end of the blob.
    #[error("read bytes {start}.. of a blob of {size} bytes")]
    RangeNotSatisfiable { start: u64, size: u64 },
    #[error("open the blob store: {0}")]
    Config(String),
    /// The storage itself failed (disk, network, permissions).
    #[error("reach the blob store: {0}")]
    Storage(#[source] object_store::Error),
}

impl BlobError {
    /// The uploader sent something other than what it declared.
    pub fn is_refused_upload(&self) -> bool {
        matches!(
            self,
            Self::DigestMismatch { .. } | Self::SizeMismatch { .. } | Self::Body(_)
        )
    }
}

impl From<object_store::Error> for BlobError {
    fn from(err: object_store::Error) -> Self {
        Self::Storage(err)
    }
}
