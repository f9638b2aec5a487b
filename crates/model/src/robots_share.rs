//! robots.txt answers shared between workers through the control plane
//! (`/internal/v1/worker/robots/lookup` and `.../robots/publish`): a worker
//! asks for a site's answer before fetching `/robots.txt` itself; the
//! control plane hands back a fresh answer some worker already fetched,
//! or lets this worker fetch it (a short claim on the origin, so that two
//! workers asking at once cause one fetch), or asks it to wait for the
//! worker that holds the claim. The fetching worker publishes what it got.
//!
//! The answer is kept as fetched (the body, cut at a whole line within the
//! parse limit), not as parsed rules: each worker parses it with its own
//! product token. Deliberately no verdicts here: what a fetch means is
//! `accord_egress::robots`'.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::WorkerId;

/// The most of a robots.txt body that is shared: 512 KiB (the egress
/// crate parses as much, more than RFC 9309's 500 KiB minimum).
pub const MAX_SHARED_ROBOTS_BYTES: usize = 512 * 1024;
/// The longest a shared answer is kept: 24 hours.
pub const MAX_ROBOTS_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a claim to fetch an origin's robots.txt holds before another
/// worker may take it over (the fetching worker died or gave up).
pub const ROBOTS_CLAIM_MS: i64 = 30_000;

/// How fetching a site's `/robots.txt` went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RobotsStatus {
    /// A 2xx answer: its body holds the rules.
    Fetched,
    /// A 4xx answer or too many redirects: everything is allowed.
    Unavailable,
    /// A 5xx or 429 answer, or none: nothing is allowed until it answers.
    Unreachable,
}

impl RobotsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fetched => "fetched",
            Self::Unavailable => "unavailable",
            Self::Unreachable => "unreachable",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "fetched" => Self::Fetched,
            "unavailable" => Self::Unavailable,
            "unreachable" => Self::Unreachable,
            _ => return None,
        })
    }
}

/// One origin's robots.txt answer, as a worker fetched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotsRecord {
    /// The origin whose file it is (`https://example.com:8443`), as a URL
    /// library serializes it.
    pub origin: String,
    pub status: RobotsStatus,
    /// The body of a `fetched` answer, base64 (at most 512 KiB decoded);
    /// empty otherwise.
    #[serde(default, with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = String, format = Byte)]
    pub body: Vec<u8>,
    /// Why, for `unavailable` and `unreachable` (`robots.txt answered
    /// 503`); at most 512 bytes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub fetched_at: DateTime<Utc>,
    /// When the answer stops holding (24 h for a real answer, a minute for
    /// an unreachable site): at most 24 h after `fetched_at`.
    pub expires_at: DateTime<Utc>,
}

/// Ask for an origin's robots.txt answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotsLookupRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    /// `http` or `https` origin, e.g. `https://example.com:8443`.
    pub origin: String,
}

/// What to do about an origin's robots.txt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "answer", rename_all = "snake_case", deny_unknown_fields)]
pub enum RobotsLookupResponse {
    /// A fresh answer another worker (or this one) fetched.
    Fresh { record: RobotsRecord },
    /// Nothing fresh is known and this worker holds the claim until
    /// `claimed_until`: fetch `/robots.txt` and publish what came back.
    Fetch { claimed_until: DateTime<Utc> },
    /// Another worker is fetching it: ask again after `retry_in_ms`.
    Wait {
        #[schema(format = "uint64")]
        retry_in_ms: u64,
    },
}

/// Share what fetching an origin's robots.txt gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotsPublishRequest {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._:-]{1,111}$")]
    pub worker_id: WorkerId,
    pub record: RobotsRecord,
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|err| serde::de::Error::custom(format!("body is not base64: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_answers_read_as_tagged_objects() {
        let wait: RobotsLookupResponse =
            serde_json::from_str(r#"{"answer":"wait","retry_in_ms":200}"#).unwrap();
        assert_eq!(wait, RobotsLookupResponse::Wait { retry_in_ms: 200 });
        let record = RobotsRecord {
            origin: "https://example.com".to_owned(),
            status: RobotsStatus::Fetched,
            body: vec![0xff, b'\n', 0],
            reason: String::new(),
            fetched_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            expires_at: DateTime::from_timestamp(1_700_086_400, 0).unwrap(),
        };
        let fresh = RobotsLookupResponse::Fresh {
            record: record.clone(),
        };
        let json = serde_json::to_string(&fresh).unwrap();
        assert!(json.contains(r#""body":"/woA""#), "{json}");
        assert_eq!(
            serde_json::from_str::<RobotsLookupResponse>(&json).unwrap(),
            fresh
        );
        let bad = serde_json::from_str::<RobotsRecord>(
            r#"{"origin":"https://a","status":"fetched","body":"%%","fetched_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("body is not base64"), "{bad}");
    }
}
