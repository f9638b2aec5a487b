//! The address table behind the SSRF guard: [`classify_ip`] says whether an
//! IP address is public and, when it is not, which special range it is in.
//!
//! It lives in the model because both sides need it: the queue refuses a
//! literal non-public target at submission and the egress guard refuses
//! every non-public address at connection time. The table follows the IANA
//! special-purpose registries, and errs on the side of refusing: every IPv6
//! form that carries an IPv4 address (mapped, translated, compatible, NAT64,
//! 6to4, Teredo) is refused whatever it carries, since no public site needs
//! to be reached that way, and so is every IPv6 address outside `2000::/3`,
//! the only block IANA hands out for global unicast.
//!
//! Deliberately only the table: allow-lists and the whole-server switch live
//! with the guard (`accord-egress`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// What kind of network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and the deprecated IPv6
    /// site-local `fec0::/10`.
    Private,
    /// Carrier-grade NAT shared space, `100.64.0.0/10`.
    SharedCgnat,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    Multicast,
    /// `0.0.0.0/8` ("this network", which reaches the local host on Linux)
    /// and `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// Cloud instance metadata endpoints (169.254.169.254 and friends).
    Metadata,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`,
    /// `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// `::ffff:0:0/96` carrying a public IPv4 address (one carrying a
    /// non-public address takes that address's class).
    Ipv4Mapped,
    /// `::ffff:0:0:0/96` (SIIT) carrying a public IPv4 address.
    Ipv4Translated,
    /// `::/96`, the deprecated IPv4-compatible form, carrying a public
    /// IPv4 address.
    Ipv4Compatible,
    /// `64:ff9b::/96` carrying a public IPv4 address, and the local-use
    /// `64:ff9b:1::/48`.
    Nat64,
    /// `2002::/16` carrying a public IPv4 address.
    SixToFour,
    /// `2001::/32`.
    Teredo,
    /// `5f00::/16`, segment routing identifiers.
    Srv6,
    /// Everything else set aside: `192.0.0/24`, `240/4`, the deprecated
    /// 6to4 relay `192.88.99/24`, `100::/64`, `2001::/23`, and IPv6 outside
    /// `2000::/3`.
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
            Self::SharedCgnat => "shared (CGNAT)",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::Metadata => "cloud metadata",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Ipv4Mapped => "IPv4-mapped",
            Self::Ipv4Translated => "IPv4-translated",
            Self::Ipv4Compatible => "IPv4-compatible",
            Self::Nat64 => "NAT64",
            Self::SixToFour => "6to4",
            Self::Teredo => "Teredo",
            Self::Srv6 => "SRv6",
            Self::Reserved => "reserved",
        }
    }
}

/// Cloud metadata endpoints: AWS, GCP, Azure, Oracle (169.254.169.254),
/// ECS task metadata (169.254.170.2), EKS pod identity (169.254.170.23),
/// Alibaba (100.100.100.200) and AWS over IPv6. All of them sit in ranges
/// refused anyway; naming them gives the operator's log a clearer reason.
const METADATA: [IpAddr; 6] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
];

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// IPv4 special ranges; the first match wins, so narrower entries come
/// before the blocks that contain them.
const V4_TABLE: &[(Ipv4Net, AddressClass)] = &[
    (v4(0, 0, 0, 0, 8), AddressClass::Unspecified),
    (v4(10, 0, 0, 0, 8), AddressClass::Private),
    (v4(100, 64, 0, 0, 10), AddressClass::SharedCgnat),
    (v4(127, 0, 0, 0, 8), AddressClass::Loopback),
    (v4(169, 254, 0, 0, 16), AddressClass::LinkLocal),
    (v4(172, 16, 0, 0, 12), AddressClass::Private),
    (v4(192, 0, 0, 0, 24), AddressClass::Reserved),
    (v4(192, 0, 2, 0, 24), AddressClass::Documentation),
    (v4(192, 88, 99, 0, 24), AddressClass::Reserved),
    (v4(192, 168, 0, 0, 16), AddressClass::Private),
    (v4(198, 18, 0, 0, 15), AddressClass::Benchmarking),
    (v4(198, 51, 100, 0, 24), AddressClass::Documentation),
    (v4(203, 0, 113, 0, 24), AddressClass::Documentation),
    (v4(224, 0, 0, 0, 4), AddressClass::Multicast),
    (v4(255, 255, 255, 255, 32), AddressClass::Broadcast),
    (v4(240, 0, 0, 0, 4), AddressClass::Reserved),
];

/// IPv6 special ranges, first match wins. Addresses outside `2000::/3`
/// that match nothing here are [`AddressClass::Reserved`].
const V6_TABLE: &[(Ipv6Net, AddressClass)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), AddressClass::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), AddressClass::Loopback),
    (
        v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
        AddressClass::Ipv4Mapped,
    ),
    (
        v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
        AddressClass::Ipv4Translated,
    ),
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
        AddressClass::Ipv4Compatible,
    ),
    (
        v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
        AddressClass::Nat64,
    ),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        AddressClass::Nat64,
    ),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), AddressClass::Reserved),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), AddressClass::Teredo),
    (
        v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),
        AddressClass::Benchmarking,
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        AddressClass::Reserved,
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        AddressClass::Documentation,
    ),
    (
        v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        AddressClass::SixToFour,
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        AddressClass::Documentation,
    ),
    (v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), AddressClass::Srv6),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        AddressClass::UniqueLocal,
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        AddressClass::LinkLocal,
    ),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), AddressClass::Private),
    (
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        AddressClass::Multicast,
    ),
];

const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// Classifies an address. Every IPv6 form that carries an IPv4 address is
/// refused: when what it carries is not public the class says so (the
/// mapped `::ffff:10.0.0.1` is [`AddressClass::Private`]), otherwise the
/// class names the form (`::ffff:8.8.8.8` is [`AddressClass::Ipv4Mapped`]).
/// [`embedded_ipv4`] recovers the form and the address, for the log.
pub fn classify_ip(ip: IpAddr) -> AddressClass {
    if METADATA.contains(&ip) {
        return AddressClass::Metadata;
    }
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => match embedded_ipv4(ip) {
            Some((form, carried)) => match classify_ip(IpAddr::V4(carried)) {
                AddressClass::Public => form,
                inner => inner,
            },
            None => classify_v6_range(ip),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    V4_TABLE
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map_or(AddressClass::Public, |(_, class)| *class)
}

/// The range an IPv6 address is in, ignoring what it may carry.
fn classify_v6_range(ip: Ipv6Addr) -> AddressClass {
    match V6_TABLE.iter().find(|(net, _)| net.contains(&ip)) {
        Some((_, class)) => *class,
        None if GLOBAL_UNICAST.contains(&ip) => AddressClass::Public,
        None => AddressClass::Reserved,
    }
}

const NAT64_WELL_KNOWN: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);

/// The IPv4 address an IPv6 address carries, and the form it is carried in:
/// mapped, translated, compatible and well-known NAT64 (in the low 32 bits)
/// or 6to4 (bits 16 to 48). Teredo and the local-use NAT64 prefix carry
/// addresses in ways that depend on the deployment, so they are refused
/// for their range alone.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<(AddressClass, Ipv4Addr)> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    match classify_v6_range(ip) {
        form @ (AddressClass::Ipv4Mapped
        | AddressClass::Ipv4Translated
        | AddressClass::Ipv4Compatible) => Some((form, low)),
        AddressClass::Nat64 if NAT64_WELL_KNOWN.contains(&ip) => Some((AddressClass::Nat64, low)),
        AddressClass::SixToFour => {
            let carried = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
            Some((AddressClass::SixToFour, carried))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, expected: AddressClass) {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(classify_ip(parsed), expected, "{ip}");
    }

    #[test]
    fn classifies_ipv4() {
        use AddressClass::*;
        check("8.8.8.8", Public);
        check("93.184.216.34", Public);
        check("1.1.1.1", Public);
        check("0.0.0.0", Unspecified);
        check("0.255.255.255", Unspecified);
        check("9.255.255.255", Public);
        check("10.0.0.0", Private);
        check("10.255.255.255", Private);
        check("11.0.0.0", Public);
        check("100.63.255.255", Public);
        check("100.64.0.0", SharedCgnat);
        check("100.127.255.255", SharedCgnat);
        check("100.128.0.0", Public);
        check("100.100.100.200", Metadata);
        check("126.255.255.255", Public);
        check("127.0.0.1", Loopback);
        check("127.255.255.254", Loopback);
        check("128.0.0.0", Public);
        check("169.254.0.1", LinkLocal);
        check("169.254.169.254", Metadata);
        check("169.254.170.2", Metadata);
        check("169.254.170.23", Metadata);
        check("169.255.0.0", Public);
        check("172.15.255.255", Public);
        check("172.16.0.0", Private);
        check("172.31.255.255", Private);
        check("172.32.0.0", Public);
        check("192.0.0.8", Reserved);
        check("192.0.1.1", Public);
        check("192.0.2.1", Documentation);
        check("192.88.99.1", Reserved);
        check("192.167.255.255", Public);
        check("192.168.0.1", Private);
        check("192.169.0.0", Public);
        check("198.17.255.255", Public);
        check("198.18.0.0", Benchmarking);
        check("198.19.255.255", Benchmarking);
        check("198.20.0.0", Public);
        check("198.51.100.7", Documentation);
        check("203.0.113.9", Documentation);
        check("223.255.255.255", Public);
        check("224.0.0.1", Multicast);
        check("239.255.255.255", Multicast);
        check("240.0.0.1", Reserved);
        check("255.255.255.254", Reserved);
        check("255.255.255.255", Broadcast);
    }

    #[test]
    fn classifies_ipv6() {
        use AddressClass::*;
        check("2606:4700:4700::1111", Public);
        check("2a00:1450:4001::200e", Public);
        check("::", Unspecified);
        check("::1", Loopback);
        // Forms that carry IPv4: what they carry when it is not public,
        // else the form, refused all the same.
        check("::2", Unspecified);
        check("::127.0.0.1", Loopback);
        check("::8.8.8.8", Ipv4Compatible);
        check("::ffff:127.0.0.1", Loopback);
        check("::ffff:10.0.0.1", Private);
        check("::ffff:8.8.8.8", Ipv4Mapped);
        check("::ffff:169.254.169.254", Metadata);
        check("::ffff:0:10.0.0.1", Private);
        check("::ffff:0:8.8.8.8", Ipv4Translated);
        check("64:ff9b::10.0.0.1", Private);
        check("64:ff9b::8.8.8.8", Nat64);
        check("64:ff9b:1::1", Nat64);
        check("64:ff9b:2::1", Reserved);
        check("100::1", Reserved);
        check("2001::1", Teredo);
        check("2001:0:ffff::1", Teredo);
        check("2001:1::1", Reserved);
        check("2001:2::1", Benchmarking);
        check("2001:2:1::1", Reserved);
        check("2001:1ff::1", Reserved);
        check("2001:200::1", Public);
        check("2001:db8::1", Documentation);
        check("2002:7f00:1::", Loopback);
        check("2002:a9fe:a9fe::", Metadata);
        check("2002:808:808::1", SixToFour);
        check("3fff::1", Documentation);
        check("3fff:fff::1", Documentation);
        check("3fff:1000::1", Public);
        check("4000::1", Reserved);
        check("5f00::1", Srv6);
        check("fc00::1", UniqueLocal);
        check("fd12:3456::1", UniqueLocal);
        check("fd00:ec2::254", Metadata);
        check("fd00:ec2::23", Metadata);
        check("fe80::1", LinkLocal);
        check("febf::1", LinkLocal);
        check("fec0::1", Private);
        check("ff02::1", Multicast);
        check("ff0e::1", Multicast);
    }

    #[test]
    fn recovers_embedded_ipv4() {
        use AddressClass::*;
        let check = |ip: &str, expected: Option<(AddressClass, &str)>| {
            let got = embedded_ipv4(ip.parse().unwrap());
            let want = expected.map(|(form, v4)| (form, v4.parse().unwrap()));
            assert_eq!(got, want, "{ip}");
        };
        check("::ffff:127.0.0.1", Some((Ipv4Mapped, "127.0.0.1")));
        check("::ffff:0:10.0.0.1", Some((Ipv4Translated, "10.0.0.1")));
        check("::10.0.0.1", Some((Ipv4Compatible, "10.0.0.1")));
        check("64:ff9b::169.254.169.254", Some((Nat64, "169.254.169.254")));
        check("2002:7f00:1::5", Some((SixToFour, "127.0.0.1")));
        check("2002:c0a8:101::", Some((SixToFour, "192.168.1.1")));
        check("64:ff9b:1::a00:1", None);
        check("2001:0:4136:e378:8000:63bf:3fff:fdd2", None);
        check("2606:4700:4700::1111", None);
        check("::1", None);
        check("::", None);
    }
}
