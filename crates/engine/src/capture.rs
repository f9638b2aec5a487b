//! Network captures: what a `capture_network` step records, in the one JSON
//! shape every engine writes (the HTTP engine records the responses it
//! fetches itself; a browser records every request the page makes).
//!
//! Owns the artifact's format, the headers that never go into it (cookies
//! and credentials), and how bodies are cut to the step's size cap.
//! Deliberately does not fetch anything nor decide which requests are
//! made.

use accord_model::{ArtifactName, UrlPattern};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::Artifact;

/// Most exchanges one capture keeps; later ones are counted, not kept.
pub const MAX_EXCHANGES: usize = 1_000;

/// Headers never recorded: they carry credentials or session state.
pub const REDACTED_HEADERS: &[&str] = &[
    "cookie",
    "set-cookie",
    "set-cookie2",
    "authorization",
    "proxy-authorization",
];

/// The artifact of one `capture_network` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCapture {
    /// The step's pattern, as given.
    pub url_pattern: String,
    /// Longest body kept per response, in bytes.
    pub max_body_bytes: u32,
    /// Matching exchanges in the order their responses arrived.
    pub exchanges: Vec<Exchange>,
    /// Matching exchanges left out past [`MAX_EXCHANGES`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One request and its response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    /// The URL requested.
    pub url: String,
    /// Request headers, without [`REDACTED_HEADERS`].
    pub request_headers: Vec<Header>,
    pub status: u16,
    /// Where the response came from, when redirects led elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_url: Option<String>,
    /// Response headers, without [`REDACTED_HEADERS`].
    pub response_headers: Vec<Header>,
    /// The body, cut to the capture's cap; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<CapturedBody>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Lowercase.
    pub name: String,
    pub value: String,
}

/// A response body, or its first bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedBody {
    /// `utf8` when the kept bytes are UTF-8 text, else `base64`.
    pub encoding: BodyEncoding,
    pub data: String,
    /// Bytes kept.
    pub size: u64,
    /// Whether the body was longer than the cap (or than what was read).
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    Utf8,
    Base64,
}

impl Header {
    /// The headers worth keeping, lowercased, credentials left out. Values
    /// that are not text are kept lossily.
    pub fn filter<'h>(headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) -> Vec<Header> {
        headers
            .into_iter()
            .filter(|(name, _)| {
                !REDACTED_HEADERS
                    .iter()
                    .any(|redacted| name.eq_ignore_ascii_case(redacted))
            })
            .map(|(name, value)| Header {
                name: name.to_ascii_lowercase(),
                value: String::from_utf8_lossy(value).into_owned(),
            })
            .collect()
    }
}

impl CapturedBody {
    /// The first `max` bytes of `bytes`; `more` says whether the body went
    /// on past what `bytes` holds.
    pub fn cut(bytes: &[u8], max: u32, more: bool) -> Self {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let mut kept = &bytes[..bytes.len().min(max)];
        let truncated = more || bytes.len() > max;
        // A cut in the middle of a character would make text look binary.
        let text = match std::str::from_utf8(kept) {
            Ok(text) => Some(text),
            Err(err) if truncated && err.error_len().is_none() => {
                kept = &kept[..err.valid_up_to()];
                std::str::from_utf8(kept).ok()
            }
            Err(_) => None,
        };
        match text {
            Some(text) => Self {
                encoding: BodyEncoding::Utf8,
                data: text.to_owned(),
                size: u64::try_from(kept.len()).unwrap_or(u64::MAX),
                truncated,
            },
            None => Self {
                encoding: BodyEncoding::Base64,
                data: base64::engine::general_purpose::STANDARD.encode(kept),
                size: u64::try_from(kept.len()).unwrap_or(u64::MAX),
                truncated,
            },
        }
    }
}

/// A capture in progress: its artifact name, pattern and what it recorded.
#[derive(Debug, Clone)]
pub struct ActiveCapture {
    pub name: ArtifactName,
    pub pattern: UrlPattern,
    pub capture: NetworkCapture,
}

impl ActiveCapture {
    pub fn new(name: ArtifactName, pattern: UrlPattern, max_body_bytes: u32) -> Self {
        Self {
            name,
            capture: NetworkCapture {
                url_pattern: pattern.as_str().to_owned(),
                max_body_bytes,
                exchanges: Vec::new(),
                dropped: 0,
            },
            pattern,
        }
    }

    /// Whether an exchange for `url` (or its response from `response_url`)
    /// belongs here.
    pub fn wants(&self, url: &str, response_url: Option<&str>) -> bool {
        self.pattern.matches(url) || response_url.is_some_and(|url| self.pattern.matches(url))
    }

    /// Keeps `exchange` (its body cut to this capture's cap) if there is room.
    pub fn record(&mut self, exchange: &Exchange, body: Option<(&[u8], bool)>) {
        if self.capture.exchanges.len() >= MAX_EXCHANGES {
            self.capture.dropped += 1;
            return;
        }
        let mut exchange = exchange.clone();
        exchange.body =
            body.map(|(bytes, more)| CapturedBody::cut(bytes, self.capture.max_body_bytes, more));
        self.capture.exchanges.push(exchange);
    }

    /// The capture as its JSON artifact.
    pub fn into_artifact(self) -> Artifact {
        let json =
            serde_json::to_vec_pretty(&self.capture).expect("a network capture always serializes");
        Artifact::new(self.name, "application/json", json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_a_capture() {
        let headers = Header::filter([
            ("Content-Type", b"text/html".as_slice()),
            ("Set-Cookie", b"session=secret".as_slice()),
            ("cookie", b"a=b".as_slice()),
            ("Authorization", b"Bearer x".as_slice()),
            ("Proxy-Authorization", b"Basic y".as_slice()),
            ("X-Weird", b"\xff".as_slice()),
        ]);
        assert_eq!(
            headers,
            vec![
                Header {
                    name: "content-type".into(),
                    value: "text/html".into()
                },
                Header {
                    name: "x-weird".into(),
                    value: "\u{fffd}".into()
                },
            ]
        );
    }

    #[test]
    fn bodies_are_cut_to_the_cap() {
        let check =
            |bytes: &[u8], max: u32, more: bool, expected: (BodyEncoding, &str, u64, bool)| {
                let body = CapturedBody::cut(bytes, max, more);
                assert_eq!(
                    (body.encoding, body.data.as_str(), body.size, body.truncated),
                    expected,
                    "{bytes:?} / {max}"
                );
            };
        check(b"hello", 10, false, (BodyEncoding::Utf8, "hello", 5, false));
        check(b"hello", 3, false, (BodyEncoding::Utf8, "hel", 3, true));
        check(b"hello", 5, true, (BodyEncoding::Utf8, "hello", 5, true));
        check(b"", 0, false, (BodyEncoding::Utf8, "", 0, false));
        check(b"abc", 0, false, (BodyEncoding::Utf8, "", 0, true));
        // "é" is two bytes: a cut between them keeps the text before it.
        check(
            "aé".as_bytes(),
            2,
            false,
            (BodyEncoding::Utf8, "a", 1, true),
        );
        check(
            b"\x89PNG\r\n",
            10,
            false,
            (BodyEncoding::Base64, "iVBORw0K", 6, false),
        );
    }

    #[test]
    fn a_capture_keeps_at_most_its_share() {
        let mut active = ActiveCapture::new(
            ArtifactName::new("n.json").unwrap(),
            UrlPattern::new("/api/").unwrap(),
            4,
        );
        assert!(active.wants("https://x.test/api/a", None));
        assert!(active.wants("https://x.test/r", Some("https://x.test/api/b")));
        assert!(!active.wants("https://x.test/page", None));
        let exchange = Exchange {
            method: "GET".into(),
            url: "https://x.test/api/a".into(),
            request_headers: Vec::new(),
            status: 200,
            response_url: None,
            response_headers: Vec::new(),
            body: None,
        };
        for _ in 0..MAX_EXCHANGES + 2 {
            active.record(&exchange, Some((b"123456", false)));
        }
        assert_eq!(active.capture.exchanges.len(), MAX_EXCHANGES);
        assert_eq!(active.capture.dropped, 2);
        let body = active.capture.exchanges[0].body.as_ref().unwrap();
        assert_eq!((body.data.as_str(), body.truncated), ("1234", true));
        let artifact = active.into_artifact();
        assert_eq!(artifact.name.as_str(), "n.json");
        assert_eq!(artifact.content_type, "application/json");
        let back: NetworkCapture = serde_json::from_slice(&artifact.bytes).unwrap();
        assert_eq!(back.dropped, 2);
    }
}
