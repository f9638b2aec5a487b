//! Target URLs and the address classification behind the SSRF guard.
//!
//! [`TargetUrl`] accepts only absolute `http`/`https` URLs with a host and no
//! embedded credentials. [`classify_ip`] says whether an address is public;
//! the engine applies it to every address it actually connects to, and the
//! API applies it to literal-IP targets at submit time.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// What kind of network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    LinkLocal,
    UniqueLocal,
    Multicast,
    Unspecified,
    /// Cloud instance metadata endpoints (169.254.169.254 and friends).
    Metadata,
    /// Documentation, benchmarking, broadcast and other reserved ranges.
    Reserved,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == Self::Public
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Metadata => "cloud metadata",
            Self::Reserved => "reserved",
        }
    }
}

/// Classifies an address; IPv6 forms that embed an IPv4 address (mapped,
/// compatible, NAT64, 6to4) are judged by the address they embed.
pub fn classify_ip(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    const METADATA: [Ipv4Addr; 3] = [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(169, 254, 170, 2),
        Ipv4Addr::new(100, 100, 100, 200),
    ];
    if METADATA.contains(&ip) {
        return AddressClass::Metadata;
    }
    let table: &[([u8; 4], u32, AddressClass)] = &[
        ([0, 0, 0, 0], 8, AddressClass::Unspecified),
        ([10, 0, 0, 0], 8, AddressClass::Private),
        ([100, 64, 0, 0], 10, AddressClass::Private),
        ([127, 0, 0, 0], 8, AddressClass::Loopback),
        ([169, 254, 0, 0], 16, AddressClass::LinkLocal),
        ([172, 16, 0, 0], 12, AddressClass::Private),
        ([192, 0, 0, 0], 24, AddressClass::Reserved),
        ([192, 0, 2, 0], 24, AddressClass::Reserved),
        ([192, 88, 99, 0], 24, AddressClass::Reserved),
        ([192, 168, 0, 0], 16, AddressClass::Private),
        ([198, 18, 0, 0], 15, AddressClass::Reserved),
        ([198, 51, 100, 0], 24, AddressClass::Reserved),
        ([203, 0, 113, 0], 24, AddressClass::Reserved),
        ([224, 0, 0, 0], 4, AddressClass::Multicast),
        ([240, 0, 0, 0], 4, AddressClass::Reserved),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(AddressClass::Public, |(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

fn embedded_v4(bits: u128, shift: u32) -> Ipv4Addr {
    Ipv4Addr::from(((bits >> shift) & 0xffff_ffff) as u32)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let bits = u128::from(ip);
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (deprecated compatible form).
    if in_v6(ip, Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)
        || in_v6(ip, Ipv6Addr::UNSPECIFIED, 96)
    {
        return classify_v4(embedded_v4(bits, 0));
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48).
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(embedded_v4(bits, 0));
    }
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48) {
        return AddressClass::Private;
    }
    // 6to4 embeds the IPv4 address in bits 16..48.
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return match classify_v4(embedded_v4(bits, 80)) {
            AddressClass::Public => AddressClass::Public,
            other => other,
        };
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return AddressClass::Metadata;
    }
    let table: &[(Ipv6Addr, u32, AddressClass)] = &[
        (
            Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
            7,
            AddressClass::UniqueLocal,
        ),
        (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
            AddressClass::LinkLocal,
        ),
        (
            Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
            10,
            AddressClass::Private,
        ),
        (
            Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
            8,
            AddressClass::Multicast,
        ),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
            32,
            AddressClass::Reserved,
        ),
        (
            Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
            23,
            AddressClass::Reserved,
        ),
        (
            Ipv6Addr::new(0x0100, 0, 0, 0, 0, 0, 0, 0),
            64,
            AddressClass::Reserved,
        ),
        (
            Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
            20,
            AddressClass::Reserved,
        ),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map_or(AddressClass::Public, |(_, _, class)| *class)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, expected: AddressClass) {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(classify_ip(parsed), expected, "{ip}");
    }

    #[test]
    fn classifies_addresses() {
        use AddressClass::*;
        check("8.8.8.8", Public);
        check("93.184.216.34", Public);
        check("127.0.0.1", Loopback);
        check("127.255.0.9", Loopback);
        check("10.1.2.3", Private);
        check("172.16.0.1", Private);
        check("172.32.0.1", Public);
        check("192.168.1.1", Private);
        check("100.64.0.1", Private);
        check("169.254.1.1", LinkLocal);
        check("169.254.169.254", Metadata);
        check("0.0.0.0", Unspecified);
        check("224.0.0.1", Multicast);
        check("255.255.255.255", Reserved);
        check("::", Unspecified);
        check("::1", Loopback);
        check("::ffff:127.0.0.1", Loopback);
        check("::ffff:169.254.169.254", Metadata);
        check("::ffff:8.8.8.8", Public);
        check("::127.0.0.1", Loopback);
        check("64:ff9b::10.0.0.1", Private);
        check("2002:7f00:1::", Loopback);
        check("fc00::1", UniqueLocal);
        check("fd00:ec2::254", Metadata);
        check("fe80::1", LinkLocal);
        check("ff02::1", Multicast);
        check("2001:db8::1", Reserved);
        check("2606:4700:4700::1111", Public);
    }

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
