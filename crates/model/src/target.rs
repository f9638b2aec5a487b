//! Target URLs: [`TargetUrl`] accepts only absolute `http`/`https` URLs
//! with a host and no embedded credentials.
//!
//! Whether the host is one a job may reach is not decided here: the address
//! table is `address.rs`, the checks live with the queue (at submission) and
//! the egress guard (at connection time).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

/// The longest URL a job may target.
pub const MAX_URL_LEN: usize = 2_048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetUrlError {
    #[error("invalid URL: {0}")]
    Parse(String),
    #[error("URL scheme must be http or https, not {0:?}")]
    Scheme(String),
    #[error("URL must have a host")]
    NoHost,
    #[error("URL must not embed a user name or password")]
    Credentials,
    #[error("URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
}

/// An absolute http(s) URL that a job may ask an engine to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, format = Uri, example = "https://example.com/")]
pub struct TargetUrl(Url);

impl TargetUrl {
    pub fn parse(input: &str) -> Result<Self, TargetUrlError> {
        if input.len() > MAX_URL_LEN {
            return Err(TargetUrlError::TooLong);
        }
        let url = Url::parse(input).map_err(|err| TargetUrlError::Parse(err.to_string()))?;
        Self::from_url(url)
    }

    pub fn from_url(url: Url) -> Result<Self, TargetUrlError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(TargetUrlError::Scheme(other.to_owned())),
        }
        if url.host().is_none() {
            return Err(TargetUrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetUrlError::Credentials);
        }
        if url.as_str().len() > MAX_URL_LEN {
            return Err(TargetUrlError::TooLong);
        }
        Ok(Self(url))
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The literal IP address of the host, if the URL names one.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        }
    }
}

impl TryFrom<String> for TargetUrl {
    type Error = TargetUrlError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TargetUrl> for String {
    fn from(value: TargetUrl) -> String {
        value.0.into()
    }
}

impl FromStr for TargetUrl {
    type Err = TargetUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_are_checked() {
        assert!(TargetUrl::parse("https://example.com/a?b=c").is_ok());
        assert_eq!(
            TargetUrl::parse("file:///etc/passwd"),
            Err(TargetUrlError::Scheme("file".into()))
        );
        assert_eq!(
            TargetUrl::parse("gopher://x/"),
            Err(TargetUrlError::Scheme("gopher".into()))
        );
        assert_eq!(
            TargetUrl::parse("http://user:pw@example.com/"),
            Err(TargetUrlError::Credentials)
        );
        assert!(matches!(
            TargetUrl::parse("not a url"),
            Err(TargetUrlError::Parse(_))
        ));
        assert_eq!(
            TargetUrl::parse(&format!("https://e.com/{}", "a".repeat(3000))),
            Err(TargetUrlError::TooLong)
        );
        assert_eq!(
            TargetUrl::parse("http://[::ffff:7f00:1]/")
                .unwrap()
                .literal_ip(),
            Some("::ffff:127.0.0.1".parse().unwrap())
        );
    }
}
