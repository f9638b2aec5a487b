//! Artifacts: the files a run leaves behind as evidence (screenshots, the
//! final HTML, network captures, downloads, the console log), named within
//! their job and addressed by the SHA-256 of their bytes.
//!
//! Owns the validated name and the reference a job keeps to each artifact.
//! Deliberately not the bytes, nor where they are stored: the blob store and
//! the artifact index own that.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest artifact name, in bytes.
pub const MAX_ARTIFACT_NAME_BYTES: usize = 128;

/// An artifact's name within its job, e.g. `step-3-screenshot.png`.
///
/// 1 to 128 bytes of ASCII letters, digits, `.`, `_` and `-`, not starting
/// with a dot: no path separator, no `..`, nothing a file system or a URL
/// path would read differently.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactName(String);

/// Why a string is not an [`ArtifactName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactNameError {
    #[error("an artifact name must be 1 to {MAX_ARTIFACT_NAME_BYTES} bytes")]
    Length,
    #[error("an artifact name must not start with a dot")]
    LeadingDot,
    #[error(
        "an artifact name may only hold ASCII letters, digits, `.`, `_` and `-` (no path separators), found {0:?}"
    )]
    Character(char),
}

impl ArtifactName {
    pub fn new(name: impl Into<String>) -> Result<Self, ArtifactNameError> {
        let name = name.into();
        if name.is_empty() || name.len() > MAX_ARTIFACT_NAME_BYTES {
            return Err(ArtifactNameError::Length);
        }
        if name.starts_with('.') {
            return Err(ArtifactNameError::LeadingDot);
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(ArtifactNameError::Character(bad));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ArtifactName {
    type Err = ArtifactNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for ArtifactName {
    type Error = ArtifactNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<ArtifactName> for String {
    fn from(name: ArtifactName) -> Self {
        name.0
    }
}

impl utoipa::PartialSchema for ArtifactName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"))
            .description(Some("An artifact's name within its job."))
            .into()
    }
}

impl ToSchema for ArtifactName {}

/// The SHA-256 of an artifact's bytes: its address in the blob store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Digest([u8; 32]);

/// A string that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a SHA-256 digest must be 64 lowercase hex digits")]
pub struct DigestError;

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        Self(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(DigestError);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| DigestError)?;
        Ok(Self(out))
    }
}

impl TryFrom<String> for Sha256Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Sha256Digest> for String {
    fn from(digest: Sha256Digest) -> Self {
        digest.to_hex()
    }
}

impl utoipa::PartialSchema for Sha256Digest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-f]{64}$"))
            .description(Some("SHA-256 of the bytes, lowercase hex."))
            .into()
    }
}

impl ToSchema for Sha256Digest {}

/// What an artifact is, as a job keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    pub name: ArtifactName,
    /// A MIME type, e.g. `image/png`.
    pub content_type: String,
    #[schema(format = "uint64")]
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// Longest content type kept, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// A string that is not a media type such as `image/png` or
/// `text/html; charset=utf-8`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a content type must be a media type such as `image/png` or `text/html; charset=utf-8` \
     (at most {MAX_CONTENT_TYPE_BYTES} bytes of visible ASCII), not {0:?}"
)]
pub struct ContentTypeError(pub String);

/// Checks that `value` is a media type: `type/subtype`, each an RFC 9110
/// token, then `; name=value` parameters (a value a token or a quoted
/// string). An artifact is served back with it, so nothing else may pass.
pub fn check_content_type(value: &str) -> Result<(), ContentTypeError> {
    fn token(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }
    fn quoted(s: &str) -> bool {
        s.len() >= 2
            && s.starts_with('"')
            && s.ends_with('"')
            && s[1..s.len() - 1]
                .bytes()
                .all(|b| (b == b' ' || b.is_ascii_graphic()) && b != b'"' && b != b'\\')
    }
    let refuse = || ContentTypeError(value.chars().take(64).collect());
    if value.len() > MAX_CONTENT_TYPE_BYTES || value.bytes().any(|b| b.is_ascii_control()) {
        return Err(refuse());
    }
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default();
    match essence.split_once('/') {
        Some((kind, subtype)) if token(kind) && token(subtype) => {}
        _ => return Err(refuse()),
    }
    for parameter in parts {
        match parameter.trim_start_matches(' ').split_once('=') {
            Some((name, value)) if token(name) && (token(value) || quoted(value)) => {}
            _ => return Err(refuse()),
        }
    }
    Ok(())
}

/// An artifact as the index keeps it and the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredArtifact {
    pub name: ArtifactName,
    /// A MIME type, e.g. `image/png`; the download answers with it.
    pub content_type: String,
    #[schema(format = "uint64")]
    pub size: u64,
    pub sha256: Sha256Digest,
    /// The attempt that stored it (a later attempt's artifact of the same
    /// name replaces it).
    #[schema(format = "uint32")]
    pub attempt: u32,
    pub created_at: DateTime<Utc>,
}

impl StoredArtifact {
    pub fn reference(&self) -> ArtifactRef {
        ArtifactRef {
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            sha256: self.sha256,
        }
    }
}

/// `GET /api/v1/jobs/{id}/artifacts`: every artifact of a job, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactList {
    pub items: Vec<StoredArtifact>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_media_types() {
        let check = |value: &str, ok: bool| {
            assert_eq!(check_content_type(value).is_ok(), ok, "{value:?}");
        };
        check("image/png", true);
        check("text/html; charset=utf-8", true);
        check("application/vnd.api+json", true);
        check("multipart/form-data; boundary=\"a b\"", true);
        check("text/plain;charset=UTF-8", true);
        check("", false);
        check("png", false);
        check("image/", false);
        check("/png", false);
        check("image/png; charset", false);
        check("text/html\r\nSet-Cookie: a=b", false);
        check("text/html; x=\"a\\\"b\"", false);
        check("imäge/png", false);
        check(&format!("text/{}", "a".repeat(300)), false);
    }

    #[test]
    fn artifact_names_cannot_escape_their_job() {
        let check = |name: &str, ok: bool| {
            assert_eq!(ArtifactName::new(name).is_ok(), ok, "{name:?}");
        };
        check("page.html", true);
        check("step-3-screenshot.png", true);
        check("network_2.json", true);
        check("", false);
        check(".hidden", false);
        check("..", false);
        check("../etc/passwd", false);
        check("a/b", false);
        check("a\\b", false);
        check("a b", false);
        check("a\0b", false);
        check("é.png", false);
        check(&"a".repeat(128), true);
        check(&"a".repeat(129), false);
    }

    #[test]
    fn digests_round_trip_as_lowercase_hex() {
        let digest = Sha256Digest::of(b"abc");
        let hex = digest.to_hex();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex.parse::<Sha256Digest>(), Ok(digest));
        assert!(hex.to_uppercase().parse::<Sha256Digest>().is_err());
        assert!("abc".parse::<Sha256Digest>().is_err());
        assert!("zz".repeat(32).parse::<Sha256Digest>().is_err());
    }
}
