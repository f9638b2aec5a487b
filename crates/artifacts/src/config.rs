//! Where blobs are kept, as the binary resolves it from flags, variables
//! and the config file.

use std::fmt;
use std::path::PathBuf;

/// Where the blob store keeps its bytes.
#[derive(Debug, Clone)]
pub enum BlobStoreConfig {
    /// A folder on the local file system (created when missing).
    Local { root: PathBuf },
    /// A bucket on S3 or an S3-compatible server.
    S3(S3Config),
}

/// An S3-compatible bucket. The credentials stay in the control plane:
/// workers upload through it and never see them.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// `https://…` of an S3-compatible server; `None` for AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow a plain-HTTP endpoint (a server on loopback, say).
    pub allow_http: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl BlobStoreConfig {
    /// Where the bytes go, for logs and the start-up banner (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Self::Local { root } => format!("folder {}", root.display()),
            Self::S3(s3) => match &s3.endpoint {
                Some(endpoint) => format!("s3 bucket {} at {endpoint}", s3.bucket),
                None => format!("s3 bucket {} ({})", s3.bucket, s3.region),
            },
        }
    }
}
