//! What can stop the cluster layer from starting. Nothing that happens
//! afterwards is an error to callers: an unreachable Redis degrades to
//! in-process answers (see the crate documentation).

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL does not parse, names an unknown scheme, or asks for TLS
    /// (this build has none). The message never repeats the URL, which may
    /// hold a password.
    #[error("use the redis url: {0}")]
    InvalidRedisUrl(#[source] redis::RedisError),
}
