//! Which addresses the guard lets through: the model's table of non-public
//! ranges ([`classify_ip`]), plus the explicit exceptions an operator grants
//! ([`AllowList`]).
//!
//! The table itself lives in `accord-model` so the queue can refuse literal
//! targets at submission without depending on this crate; this module is
//! where it meets the exceptions. It does no IO.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use accord_model::{classify_ip, embedded_ipv4, AddressClass};
use ipnet::IpNet;

/// Networks that may be reached although they are not public: the one way
/// to reach an internal site (or a test fixture on loopback) without turning
/// the guard off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpNet>);

/// A CIDR that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a CIDR (like 10.1.0.0/16 or fd00::/8) nor an IP address")]
pub struct CidrError {
    input: String,
}

impl AllowList {
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        Self(networks.into_iter().map(|net| net.trunc()).collect())
    }

    /// Parses CIDRs; a bare address stands for itself alone.
    pub fn parse<'a>(inputs: impl IntoIterator<Item = &'a str>) -> Result<Self, CidrError> {
        inputs
            .into_iter()
            .map(|input| {
                let input = input.trim();
                IpNet::from_str(input)
                    .or_else(|_| IpAddr::from_str(input).map(IpNet::from))
                    .map_err(|_| CidrError {
                        input: input.to_owned(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list with one more address.
    pub fn with(mut self, ip: IpAddr) -> Self {
        self.0.push(IpNet::from(ip));
        self
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{net}")?;
        }
        Ok(())
    }
}

/// An address and the class that got it refused, for the operator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedAddress {
    pub ip: IpAddr,
    pub class: AddressClass,
}

impl fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.ip, self.class.as_str())?;
        if let IpAddr::V6(v6) = self.ip {
            if let Some((form, v4)) = embedded_ipv4(v6) {
                write!(f, ": {v4} in {} form", form.as_str())?;
            }
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_parse_and_match() {
        let list = AllowList::parse(["10.1.0.0/16", " 127.0.0.10 ", "fd00::1:0/112", "10.9.9.9/8"])
            .unwrap();
        assert_eq!(
            list.to_string(),
            "10.1.0.0/16, 127.0.0.10/32, fd00::1:0/112, 10.0.0.0/8"
        );
        let check = |ip: &str, expected: bool| {
            assert_eq!(list.contains(ip.parse().unwrap()), expected, "{ip}");
        };
        check("10.1.2.3", true);
        check("10.200.0.1", true);
        check("127.0.0.10", true);
        check("127.0.0.1", false);
        check("fd00::1:ffff", true);
        check("fd00::2:0", false);
        check("::ffff:127.0.0.10", false);
        assert_eq!(
            AllowList::parse(["10.0.0.0/33"]).unwrap_err().to_string(),
            "`10.0.0.0/33` is not a CIDR (like 10.1.0.0/16 or fd00::/8) nor an IP address"
        );
        assert!(AllowList::parse(["intranet"]).is_err());
    }

    #[test]
    fn refused_addresses_name_what_they_carry() {
        let check = |ip: &str, expected: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            let shown = RefusedAddress {
                ip,
                class: classify_ip(ip),
            };
            assert_eq!(shown.to_string(), expected);
        };
        check("10.0.0.1", "10.0.0.1 (private)");
        check(
            "::ffff:127.0.0.1",
            "::ffff:127.0.0.1 (loopback: 127.0.0.1 in IPv4-mapped form)",
        );
        check(
            "::ffff:8.8.8.8",
            "::ffff:8.8.8.8 (IPv4-mapped: 8.8.8.8 in IPv4-mapped form)",
        );
        check(
            "2002:a9fe:a9fe::",
            "2002:a9fe:a9fe:: (cloud metadata: 169.254.169.254 in 6to4 form)",
        );
    }
}
