//! What the binary tells the cluster layer: where Redis is (if anywhere),
//! how to name keys, and who this replica is. Also the fixed timeouts that
//! keep a dead Redis from holding up requests. Reads no environment.

use std::fmt;
use std::time::Duration;

use accord_model::Backoff;

/// The key prefix when none is configured.
pub const DEFAULT_KEY_PREFIX: &str = "accord:";

/// Opening a connection to Redis gives up after this long.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// A command on an open connection gives up after this long.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(200);
/// The most a request waits on Redis in all before it is answered in-process.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_millis(250);
/// While Redis answers, the prober checks it this often, so `/ready` notices
/// an outage even when no request does.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The reconnect delays of the background tasks (the prober and the
/// subscriber) while Redis is down: from 100 ms up to 2 s.
pub(crate) const RECONNECT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_secs(2));

#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host[:port][/db]`; `None` keeps everything
    /// in-process (fine for one replica).
    pub redis_url: Option<String>,
    /// Prepended to every Redis key and channel, so several deployments can
    /// share one Redis. Defaults to [`DEFAULT_KEY_PREFIX`].
    pub key_prefix: String,
    /// Names this replica in logs and in published job events. It need not
    /// be unique: a random suffix tells processes apart.
    pub replica_id: String,
}

impl ClusterConfig {
    /// A configuration with the default key prefix.
    pub fn new(redis_url: Option<String>, replica_id: impl Into<String>) -> Self {
        Self {
            redis_url,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            replica_id: replica_id.into(),
        }
    }
}

/// Leaves the password out of logs.
impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &self.redis_url.as_deref().map(redacted))
            .field("key_prefix", &self.key_prefix)
            .field("replica_id", &self.replica_id)
            .finish()
    }
}

/// The URL with any credentials replaced by `***`.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_credentials() {
        let check = |url: &str, expected: &str| {
            let config = ClusterConfig::new(Some(url.to_owned()), "r1");
            let debug = format!("{config:?}");
            assert!(debug.contains(expected), "{debug} lacks {expected}");
        };
        check(
            "redis://:hunter2@cache:6379/0",
            "\"redis://***@cache:6379/0\"",
        );
        check("redis://user:pw@cache", "\"redis://***@cache\"");
        check("redis://cache:6379", "\"redis://cache:6379\"");
    }
}
