//! [`BlobStore`]: content-addressed bytes on top of `object_store`.
//!
//! A blob's key is `sha256/<first two hex digits>/<all 64 hex digits>`: the
//! two-digit folder keeps a local directory from growing past what file
//! systems list quickly, and the full digest in the name makes a key
//! readable on its own (the sweep parses it back).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use accord_model::Sha256Digest;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::{BlobError, BlobStoreConfig};

/// The folder (key prefix) every blob lives under.
pub const BLOB_PREFIX: &str = "sha256";

/// Bodies up to this size go up in one request; larger ones as a multipart
/// upload in parts of this size (S3 wants parts of at least 5 MiB). Either
/// way a blob only becomes visible once it is complete and verified.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one multipart upload in flight at once: bounds an upload's memory.
const PARTS_IN_FLIGHT: usize = 2;

/// What an uploader says it is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// A stored blob as the store describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// When the bytes were last written; the sweep spares recent blobs.
    pub last_modified: DateTime<Utc>,
}

/// An open read of (part of) a blob.
pub struct BlobRead {
    /// The blob's whole size.
    pub size: u64,
    /// The bytes this read yields, `start..end`.
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Content-addressed blobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    description: String,
}

impl BlobStore {
    /// Opens the configured store; a local folder is created when missing.
    pub fn open(config: &BlobStoreConfig) -> Result<Self, BlobError> {
        let store: Arc<dyn ObjectStore> =
            match config {
                BlobStoreConfig::Local { root } => {
                    std::fs::create_dir_all(root).map_err(|err| {
                        BlobError::Config(format!("create {}: {err}", root.display()))
                    })?;
                    let local = LocalFileSystem::new_with_prefix(root)
                        .map_err(|err| BlobError::Config(format!("{}: {err}", root.display())))?
                        .with_automatic_cleanup(true);
                    Arc::new(local)
                }
                BlobStoreConfig::S3(s3) => {
                    let mut builder = AmazonS3Builder::new()
                        .with_bucket_name(&s3.bucket)
                        .with_region(&s3.region)
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(&s3.secret_access_key)
                        .with_allow_http(s3.allow_http);
                    if let Some(endpoint) = &s3.endpoint {
                        builder = builder.with_endpoint(endpoint);
                    }
                    Arc::new(builder.build().map_err(|err| {
                        BlobError::Config(format!("S3 bucket {}: {err}", s3.bucket))
                    })?)
                }
            };
        Ok(Self {
            store,
            description: config.describe(),
        })
    }

    /// Where the bytes go, for logs (no secrets).
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Streams `body` into the store under its declared digest, hashing and
    /// counting as it goes. When the body breaks off, or its bytes do not
    /// hash to the declared digest or add up to the declared size, the
    /// upload is aborted and nothing becomes visible. Putting bytes that
    /// are already stored writes them again, which is harmless (same key,
    /// same bytes) and marks the blob as recent for the sweep.
    pub async fn put_stream<S, E>(&self, declared: Declared, body: S) -> Result<(), BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: fmt::Display,
    {
        let path = key(&declared.sha256);
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut small: Vec<Bytes> = Vec::new();
        let mut small_len = 0usize;
        let mut multipart: Option<WriteMultipart> = None;
        let body = std::pin::pin!(body);
        let mut body = body;
        let outcome: Result<(), BlobError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|err| BlobError::Body(err.to_string()))?;
                received += chunk.len() as u64;
                if received > declared.size {
                    return Err(BlobError::SizeMismatch {
                        declared: declared.size,
                        actual: received,
                    });
                }
                hasher.update(&chunk);
                match multipart.as_mut() {
                    Some(writer) => {
                        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                        writer.put(chunk);
                    }
                    None if small_len + chunk.len() <= PART_BYTES => {
                        small_len += chunk.len();
                        small.push(chunk);
                    }
                    None => {
                        let upload = self.store.put_multipart(&path).await?;
                        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                        for earlier in small.drain(..) {
                            writer.put(earlier);
                        }
                        writer.put(chunk);
                        multipart = Some(writer);
                    }
                }
            }
            Ok(())
        }
        .await;
        let checked = outcome.and_then(|()| {
            let actual = Sha256Digest::from_bytes(hasher.finalize().into());
            if received != declared.size {
                Err(BlobError::SizeMismatch {
                    declared: declared.size,
                    actual: received,
                })
            } else if actual != declared.sha256 {
                Err(BlobError::DigestMismatch {
                    declared: declared.sha256,
                    actual,
                })
            } else {
                Ok(())
            }
        });
        match (checked, multipart) {
            (Ok(()), Some(writer)) => {
                writer.finish().await?;
                Ok(())
            }
            (Ok(()), None) => {
                let payload: PutPayload = small.into_iter().collect();
                self.store.put(&path, payload).await?;
                Ok(())
            }
            (Err(err), Some(writer)) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, sha256 = %declared.sha256, "could not abort a refused multipart upload; the store discards it on its own");
                }
                Err(err)
            }
            (Err(err), None) => Err(err),
        }
    }

    /// Stores bytes the control plane made itself (an evidence manifest)
    /// and returns their digest.
    pub async fn put_bytes(&self, bytes: Bytes) -> Result<Sha256Digest, BlobError> {
        let sha256 = Sha256Digest::of(&bytes);
        self.store.put(&key(&sha256), bytes.into()).await?;
        Ok(sha256)
    }

    /// The blob's size and age, or `None` when it is not stored.
    pub async fn head(&self, sha256: &Sha256Digest) -> Result<Option<BlobMeta>, BlobError> {
        match self.store.head(&key(sha256)).await {
            Ok(meta) => Ok(Some(BlobMeta {
                sha256: *sha256,
                size: meta.size,
                last_modified: meta.last_modified,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Opens the blob, or `range` of it (`start..end`, the end cut to the
    /// blob's size). A range starting at or past the end is refused.
    pub async fn get(
        &self,
        sha256: &Sha256Digest,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let options = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&key(sha256), options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(BlobError::NotFound(*sha256)),
            Err(err) => {
                // Which error a store gives for an unsatisfiable range
                // differs; the size settles it.
                if let (Some(range), Ok(Some(meta))) = (&range, self.head(sha256).await) {
                    if range.start >= meta.size {
                        return Err(BlobError::RangeNotSatisfiable {
                            start: range.start,
                            size: meta.size,
                        });
                    }
                }
                return Err(err.into());
            }
        };
        let size = result.meta.size;
        let range = result.range.clone();
        let stream = result.into_stream().map_err(BlobError::from).boxed();
        Ok(BlobRead {
            size,
            range,
            stream,
        })
    }

    /// The whole blob in memory: for small blobs only (manifests).
    pub async fn read_all(&self, sha256: &Sha256Digest) -> Result<Bytes, BlobError> {
        let read = self.get(sha256, None).await?;
        let chunks: Vec<Bytes> = read.stream.try_collect().await?;
        Ok(chunks.concat().into())
    }

    /// Deletes the blob; deleting one that is not there is not an error.
    pub async fn delete(&self, sha256: &Sha256Digest) -> Result<(), BlobError> {
        match self.store.delete(&key(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Every stored blob, in no particular order. Objects under the prefix
    /// whose name is not a digest (an interrupted upload's leftovers) are
    /// skipped.
    pub fn list(&self) -> BoxStream<'static, Result<BlobMeta, BlobError>> {
        self.store
            .list(Some(&Path::from(BLOB_PREFIX)))
            .map_err(BlobError::from)
            .try_filter_map(|meta| async move {
                Ok(meta
                    .location
                    .filename()
                    .and_then(|name| name.parse::<Sha256Digest>().ok())
                    .map(|sha256| BlobMeta {
                        sha256,
                        size: meta.size,
                        last_modified: meta.last_modified,
                    }))
            })
            .boxed()
    }
}

/// `sha256/ab/abcdef…`
fn key(sha256: &Sha256Digest) -> Path {
    let hex = sha256.to_hex();
    Path::from(format!("{BLOB_PREFIX}/{}/{hex}", &hex[..2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fan_out_by_the_first_two_hex_digits() {
        let digest = Sha256Digest::of(b"abc");
        assert_eq!(
            key(&digest).as_ref(),
            "sha256/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
