//! Atom feeds of a workspace's monitor events, and the feed tokens that let
//! a feed reader read them without an API key: a token is made by a key
//! (shown once, stored hashed), acts in that key's workspace, and stops
//! working when that key is revoked or expires.
//!
//! Deliberately holds no Atom: the notify crate renders feeds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiKeyId, ValidationError};

/// The prefix of a feed token (`acf_` and 43 alphanumerics).
pub const FEED_TOKEN_PREFIX: &str = "acf_";
/// Random alphanumerics after the prefix (about 256 bits).
pub const FEED_TOKEN_SECRET_LEN: usize = 43;
/// Most entries a feed lists: the newest.
pub const MAX_FEED_ENTRIES: u32 = 50;
/// Most feed tokens a workspace holds.
pub const MAX_FEED_TOKENS: u32 = 100;
/// Longest feed token name, in characters.
pub const MAX_FEED_TOKEN_NAME_CHARS: usize = 100;

crate::ids::uuid_id!(
    /// A feed token id: a UUIDv7.
    FeedTokenId,
    "feed token id"
);

/// Whether `text` has the shape of a feed token (`acf_` and 43
/// alphanumerics): anything else is answered without a lookup.
pub fn is_feed_token_shaped(text: &str) -> bool {
    text.strip_prefix(FEED_TOKEN_PREFIX).is_some_and(|secret| {
        secret.len() == FEED_TOKEN_SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// `POST /api/v1/feed-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFeedToken {
    /// What the token is for (the feed reader that holds it).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

impl NewFeedToken {
    /// The name, trimmed; errors name the field.
    pub fn validate(&self) -> Result<String, ValidationError> {
        let name = self.name.trim();
        let invalid = |message: &str| ValidationError {
            field: "name".to_owned(),
            message: message.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("must not be blank"));
        }
        if name.chars().count() > MAX_FEED_TOKEN_NAME_CHARS {
            return Err(invalid("at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(name.to_owned())
    }
}

/// A feed token as stored (never the token itself: only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedToken {
    pub id: FeedTokenId,
    pub workspace_id: crate::WorkspaceId,
    /// The key that made it; the token works while that key does.
    pub key_id: ApiKeyId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A feed token as shown (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FeedTokenView {
    pub id: FeedTokenId,
    pub name: String,
    /// The API key that made it: revoking that key ends the token.
    pub key_id: ApiKeyId,
    pub created_at: DateTime<Utc>,
}

impl From<&FeedToken> for FeedTokenView {
    fn from(token: &FeedToken) -> Self {
        Self {
            id: token.id,
            name: token.name.clone(),
            key_id: token.key_id.clone(),
            created_at: token.created_at,
        }
    }
}

/// The answer to creating a feed token: the only time it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedFeedToken {
    #[serde(rename = "feed_token")]
    pub view: FeedTokenView,
    /// The token (`acf_...`): it goes in feed URLs, in place of a key.
    #[schema(pattern = "^acf_[A-Za-z0-9]{43}$")]
    pub token: String,
    /// The workspace's feed: `/feeds/{token}/workspace.atom`.
    pub workspace_feed: String,
    /// A monitor's feed, with `{monitor_id}` to fill in.
    pub monitor_feed: String,
}

/// `GET /api/v1/feed-tokens`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FeedTokenList {
    pub items: Vec<FeedTokenView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes() {
        let good = format!("acf_{}", "a1".repeat(21) + "Z");
        assert!(is_feed_token_shaped(&good));
        assert!(!is_feed_token_shaped("acf_short"));
        assert!(!is_feed_token_shaped(&good.replace("acf_", "acc_")));
        assert!(!is_feed_token_shaped(&format!("{good}x")));
        assert!(!is_feed_token_shaped(&good.replace('Z', "-")));
    }

    #[test]
    fn names_are_checked() {
        let check = |name: &str| {
            NewFeedToken {
                name: name.to_owned(),
            }
            .validate()
        };
        assert_eq!(check("  reader "), Ok("reader".to_owned()));
        assert_eq!(check(" ").unwrap_err().field, "name");
        assert_eq!(check(&"n".repeat(101)).unwrap_err().field, "name");
        assert_eq!(check("a\u{7}").unwrap_err().field, "name");
    }
}
