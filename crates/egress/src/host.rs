//! Hosts as a browser understands them: every spelling of a host is turned
//! into the one address or name a connection would really go to, before
//! anything is checked.
//!
//! The WHATWG URL parser (the `url` crate) does the heavy lifting: decimal
//! (`2130706433`), octal (`0177.0.0.1`), hex (`0x7f.1`) and short (`127.1`)
//! IPv4 forms, percent-encoded and full-width hosts, backslashes and
//! userinfo are all resolved the way Chromium resolves them. What is left
//! here is what the parser keeps as a name but a resolver treats specially:
//! trailing dots (`localhost.` is `localhost`), and the names RFC 6761
//! reserves for loopback (`localhost`, `*.localhost`), which are answered
//! without asking DNS.
//!
//! Deliberately does not decide whether a host may be reached: that is the
//! guard's job.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// A host that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the URL has no host")]
    Missing,
    #[error("`{0}` is not a valid host")]
    Invalid(String),
    #[error("`{0}` is not a valid host and port")]
    Authority(String),
}

/// A DNS name in its canonical form: lowercase ASCII (punycode for
/// international names), no trailing dot, no empty label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(String);

impl HostName {
    /// Canonicalises a name the URL parser already lowercased and mapped to
    /// ASCII: one trailing dot (the DNS root) is dropped, and a name with an
    /// empty label is refused since no resolver would answer it.
    fn from_parsed(domain: &str) -> Result<Self, HostError> {
        let name = domain.strip_suffix('.').unwrap_or(domain);
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(HostError::Invalid(domain.to_owned()));
        }
        Ok(Self(name.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `localhost` and every name under it, which RFC 6761 says resolve to
    /// loopback without asking DNS.
    pub fn is_loopback_name(&self) -> bool {
        self.0 == "localhost" || self.0.ends_with(".localhost")
    }

    /// The addresses a loopback name stands for.
    pub fn loopback_addresses() -> [IpAddr; 2] {
        [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a URL points: a literal address or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetHost {
    Ip(IpAddr),
    Name(HostName),
}

impl TargetHost {
    /// The host of a parsed URL.
    pub fn of_url(url: &Url) -> Result<Self, HostError> {
        match url.host() {
            Some(Host::Ipv4(ip)) => Ok(Self::Ip(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => Ok(Self::Ip(IpAddr::V6(ip))),
            Some(Host::Domain(domain)) => HostName::from_parsed(domain).map(Self::Name),
            None => Err(HostError::Missing),
        }
    }

    /// Parses a host alone, in any spelling a URL may hold (`[::1]` for
    /// IPv6), exactly as the host of an `http:` URL is parsed.
    pub fn parse(input: &str) -> Result<Self, HostError> {
        let invalid = || HostError::Invalid(input.to_owned());
        match Host::parse(input).map_err(|_| invalid())? {
            Host::Ipv4(ip) => Ok(Self::Ip(IpAddr::V4(ip))),
            Host::Ipv6(ip) => Ok(Self::Ip(IpAddr::V6(ip))),
            Host::Domain(domain) => HostName::from_parsed(&domain).map(Self::Name),
        }
    }

    /// Parses a name that reached us without a URL around it (reqwest hands
    /// its resolver the host of a URL it already parsed).
    pub fn parse_name(input: &str) -> Result<HostName, HostError> {
        match Self::parse(input)? {
            Self::Name(name) => Ok(name),
            Self::Ip(_) => Err(HostError::Invalid(input.to_owned())),
        }
    }
}

impl fmt::Display for TargetHost {
    /// The host as it appears in a URL (IPv6 in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Name(name) => write!(f, "{name}"),
        }
    }
}

/// A host and port, as a `CONNECT` request names them (`host:port`,
/// `[v6]:port`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    pub host: TargetHost,
    pub port: u16,
}

impl Authority {
    /// Parses `host:port`. The port is required and must not be 0; the host
    /// goes through the URL host parser, so `0x7f.1:443` is `127.0.0.1:443`.
    /// Anything that could make the host mean something else in a URL
    /// (userinfo, a path, a backslash) is refused outright.
    pub fn parse(input: &str) -> Result<Self, HostError> {
        let invalid = || HostError::Authority(input.to_owned());
        if input
            .bytes()
            .any(|b| matches!(b, b'@' | b'/' | b'\\' | b'?' | b'#') || b.is_ascii_whitespace())
        {
            return Err(invalid());
        }
        let (host, port) = input.rsplit_once(':').ok_or_else(invalid)?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let port: u16 = port.parse().map_err(|_| invalid())?;
        if port == 0 {
            return Err(invalid());
        }
        let host = TargetHost::parse(host).map_err(|_| invalid())?;
        Ok(Self { host, port })
    }

    /// The host and port a URL connects to (its port or the scheme's).
    pub fn of_url(url: &Url) -> Result<Self, HostError> {
        let host = TargetHost::of_url(url)?;
        let port = url.port_or_known_default().ok_or(HostError::Missing)?;
        Ok(Self { host, port })
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a spelling comes to: an address, a name, or a parse error.
    fn show(host: Result<TargetHost, HostError>) -> String {
        match host {
            Ok(TargetHost::Ip(ip)) => format!("ip {ip}"),
            Ok(TargetHost::Name(name)) => {
                let loopback = if name.is_loopback_name() {
                    " (loopback)"
                } else {
                    ""
                };
                format!("name {name}{loopback}")
            }
            Err(err) => format!("error: {err}"),
        }
    }

    #[test]
    fn urls_resolve_hostile_spellings() {
        let check = |url: &str, expected: &str| {
            let host = Url::parse(url)
                .map_err(|err| HostError::Invalid(err.to_string()))
                .and_then(|url| TargetHost::of_url(&url));
            assert_eq!(show(host), expected, "{url}");
        };
        check("http://127.0.0.1/", "ip 127.0.0.1");
        check("http://2130706433/", "ip 127.0.0.1");
        check("http://0177.0.0.1/", "ip 127.0.0.1");
        check("http://0x7f.1/", "ip 127.0.0.1");
        check("http://0x7f000001/", "ip 127.0.0.1");
        check("http://127.1/", "ip 127.0.0.1");
        check("http://127.0.1/", "ip 127.0.0.1");
        check("http://0/", "ip 0.0.0.0");
        check("http://017700000001/", "ip 127.0.0.1");
        check("http://0x7F.0X0.00.0x1/", "ip 127.0.0.1");
        check("http://127.0.0.1./", "ip 127.0.0.1");
        check("http://3232235777/", "ip 192.168.1.1");
        check("http://0xa9fea9fe/", "ip 169.254.169.254");
        check("http://[::1]/", "ip ::1");
        check("http://[0:0:0:0:0:0:0:1]/", "ip ::1");
        check("http://[::ffff:127.0.0.1]/", "ip ::ffff:127.0.0.1");
        check("http://[::ffff:7f00:1]/", "ip ::ffff:127.0.0.1");
        check("http://[::127.0.0.1]/", "ip ::7f00:1");
        check("http://localhost/", "name localhost (loopback)");
        check("http://LOCALHOST/", "name localhost (loopback)");
        check("http://localhost./", "name localhost (loopback)");
        check("http://a.b.localhost/", "name a.b.localhost (loopback)");
        check(
            "http://localhost.example.com/",
            "name localhost.example.com",
        );
        check("http://notlocalhost/", "name notlocalhost");
        check(
            "http://localhost../",
            "error: `localhost..` is not a valid host",
        );
        // Userinfo is not the host, whatever it looks like.
        check("http://example.com@127.0.0.1/", "ip 127.0.0.1");
        check("http://127.0.0.1@example.com/", "name example.com");
        check("http://example.com:80@127.0.0.1/", "ip 127.0.0.1");
        // A backslash ends the authority in special URLs, as in browsers.
        check("http://127.0.0.1\\@example.com/", "ip 127.0.0.1");
        check("http://example.com\\.127.0.0.1/", "name example.com");
        // Percent-encoded and full-width spellings are decoded first.
        check("http://%31%32%37.0.0.1/", "ip 127.0.0.1");
        check(
            "http://%6c%6f%63%61%6c%68%6f%73%74/",
            "name localhost (loopback)",
        );
        check("http://１２７.０.０.１/", "ip 127.0.0.1");
        check("http://127。0。0。1/", "ip 127.0.0.1");
        check("http://ｌｏｃａｌｈｏｓｔ/", "name localhost (loopback)");
        check("http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/", "name localhost (loopback)");
        check("http://bücher.example/", "name xn--bcher-kva.example");
    }

    #[test]
    fn bare_hosts_parse_like_url_hosts() {
        let check = |input: &str, expected: &str| {
            assert_eq!(show(TargetHost::parse(input)), expected, "{input}");
        };
        check("2130706433", "ip 127.0.0.1");
        check("0x7f.1", "ip 127.0.0.1");
        check("[::1]", "ip ::1");
        check("Example.COM.", "name example.com");
        check("localhost.", "name localhost (loopback)");
        check("::1", "error: `::1` is not a valid host");
        check("", "error: `` is not a valid host");
        check("a b", "error: `a b` is not a valid host");
        check("256.0.0.1", "error: `256.0.0.1` is not a valid host");
        check("1.2.3.4.5", "error: `1.2.3.4.5` is not a valid host");
    }

    #[test]
    fn connect_authorities_are_strict() {
        let check = |input: &str, expected: &str| {
            let got = match Authority::parse(input) {
                Ok(authority) => format!("{} port {}", show(Ok(authority.host)), authority.port),
                Err(err) => format!("error: {err}"),
            };
            assert_eq!(got, expected, "{input}");
        };
        check("example.com:443", "name example.com port 443");
        check("EXAMPLE.com.:443", "name example.com port 443");
        check("[::1]:443", "ip ::1 port 443");
        check("2130706433:80", "ip 127.0.0.1 port 80");
        check("0x7f.1:8080", "ip 127.0.0.1 port 8080");
        check("localhost.:443", "name localhost (loopback) port 443");
        check(
            "example.com",
            "error: `example.com` is not a valid host and port",
        );
        check(
            "example.com:",
            "error: `example.com:` is not a valid host and port",
        );
        check(
            "example.com:0",
            "error: `example.com:0` is not a valid host and port",
        );
        check(
            "example.com:65536",
            "error: `example.com:65536` is not a valid host and port",
        );
        check(
            "example.com:+1",
            "error: `example.com:+1` is not a valid host and port",
        );
        check("::1:443", "error: `::1:443` is not a valid host and port");
        check(
            "evil@127.0.0.1:443",
            "error: `evil@127.0.0.1:443` is not a valid host and port",
        );
        check(
            "example.com/x:443",
            "error: `example.com/x:443` is not a valid host and port",
        );
        check(
            "127.0.0.1\\x:443",
            "error: `127.0.0.1\\x:443` is not a valid host and port",
        );
        check(
            "example.com :443",
            "error: `example.com :443` is not a valid host and port",
        );
    }
}
