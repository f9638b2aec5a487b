//! Which hosts a policy is for ([`DomainPattern`]), the networks it may
//! grant ([`Cidr`]), the step kinds it names ([`StepKind`]) and its id.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::MAX_PATTERN_BYTES;
use crate::Step;

crate::ids::uuid_id!(
    /// A domain policy id: a UUIDv7.
    PolicyId,
    "policy id"
);

/// Which hosts a policy is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DomainPattern {
    /// `*`: every host (the workspace default).
    Any,
    /// `*.example.com`: every subdomain of `example.com`, not the name itself.
    Subdomains(String),
    /// `example.com`, `10.0.0.7` or `[fd00::1]`: that host only.
    Exact(String),
}

impl DomainPattern {
    /// Whether the pattern covers `host` (as a URL spells it: lowercase,
    /// IPv6 in brackets; a trailing dot is ignored).
    pub fn matches(&self, host: &str) -> bool {
        let host = normalize_host(host);
        match self {
            Self::Any => true,
            Self::Exact(name) => host == *name,
            Self::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }

    /// Orders matches: exact hosts first, then wildcards by how many labels
    /// they fix, then `*`.
    pub(super) fn specificity(&self) -> (u8, usize) {
        match self {
            Self::Any => (0, 0),
            Self::Subdomains(suffix) => (1, suffix.split('.').count()),
            Self::Exact(_) => (2, 0),
        }
    }
}

/// A host as patterns compare it: lowercase, no trailing dot.
pub(super) fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Parses a host name or IP literal the way a URL would hold it.
fn parse_host(text: &str) -> Result<String, String> {
    let text = text.trim_end_matches('.');
    if text.is_empty() {
        return Err("the host is empty".to_owned());
    }
    let host = url::Host::parse(text).map_err(|err| format!("{text:?} is not a host: {err}"))?;
    match &host {
        url::Host::Domain(name) => {
            if name.len() > 253 {
                return Err("a host name is at most 253 bytes".to_owned());
            }
            for label in name.split('.') {
                let ok = !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(format!(
                        "{text:?} is not a host name: the label {label:?} is not letters, digits and hyphens"
                    ));
                }
            }
        }
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => {}
    }
    Ok(host.to_string())
}

impl FromStr for DomainPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // The bound holds for the text as sent, spaces included.
        if text.len() > MAX_PATTERN_BYTES {
            return Err(format!("at most {MAX_PATTERN_BYTES} bytes"));
        }
        let text = text.trim();
        if text == "*" {
            return Ok(Self::Any);
        }
        const SHAPES: &str = "use `example.com`, `*.example.com` or `*`";
        if let Some(rest) = text.strip_prefix("*.") {
            if rest.contains('*') {
                return Err(format!(
                    "{text:?}: only one leading `*.` is allowed; {SHAPES}"
                ));
            }
            let host = parse_host(rest).map_err(|err| format!("{err}; {SHAPES}"))?;
            if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
                return Err(format!(
                    "{text:?}: an IP address has no subdomains; name it exactly"
                ));
            }
            return Ok(Self::Subdomains(host));
        }
        if text.contains('*') {
            return Err(format!(
                "{text:?}: a `*` may only lead (`*.example.com`) or stand alone; {SHAPES}"
            ));
        }
        if text.contains(['/', ':', '@', '?', '#']) && !text.starts_with('[') {
            return Err(format!(
                "{text:?} is not a domain: give the host alone, without scheme, port or path"
            ));
        }
        parse_host(text)
            .map(Self::Exact)
            .map_err(|err| format!("{err}; {SHAPES}"))
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Subdomains(suffix) => write!(f, "*.{suffix}"),
            Self::Exact(host) => f.write_str(host),
        }
    }
}

impl Serialize for DomainPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DomainPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A network a policy lets its hosts resolve to although it is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn net(&self) -> IpNet {
        self.0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// A CIDR (`10.1.0.0/16`, `fd00::/8`) or a bare address (itself alone).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        IpNet::from_str(text)
            .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
            .map(|net| Self(net.trunc()))
            .map_err(|_| {
                format!("{text:?} is not a CIDR (like 10.1.0.0/16 or fd00::/8) nor an IP address")
            })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The kind of a step, as a policy names it (the step's `action`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Navigate,
    WaitFor,
    Click,
    Follow,
    Fill,
    Select,
    Check,
    Uncheck,
    Press,
    Submit,
    Scroll,
    Hover,
    Extract,
    Screenshot,
    CaptureNetwork,
    Download,
    Evaluate,
    Assert,
    SaveHtml,
}

impl StepKind {
    pub const ALL: [Self; 19] = [
        Self::Navigate,
        Self::WaitFor,
        Self::Click,
        Self::Follow,
        Self::Fill,
        Self::Select,
        Self::Check,
        Self::Uncheck,
        Self::Press,
        Self::Submit,
        Self::Scroll,
        Self::Hover,
        Self::Extract,
        Self::Screenshot,
        Self::CaptureNetwork,
        Self::Download,
        Self::Evaluate,
        Self::Assert,
        Self::SaveHtml,
    ];

    pub fn of(step: &Step) -> Self {
        match step {
            Step::Navigate { .. } => Self::Navigate,
            Step::WaitFor { .. } => Self::WaitFor,
            Step::Click { .. } => Self::Click,
            Step::Follow { .. } => Self::Follow,
            Step::Fill { .. } => Self::Fill,
            Step::Select { .. } => Self::Select,
            Step::Check { .. } => Self::Check,
            Step::Uncheck { .. } => Self::Uncheck,
            Step::Press { .. } => Self::Press,
            Step::Submit { .. } => Self::Submit,
            Step::Scroll { .. } => Self::Scroll,
            Step::Hover { .. } => Self::Hover,
            Step::Extract { .. } => Self::Extract,
            Step::Screenshot { .. } => Self::Screenshot,
            Step::CaptureNetwork { .. } => Self::CaptureNetwork,
            Step::Download { .. } => Self::Download,
            Step::Evaluate { .. } => Self::Evaluate,
            Step::Assert { .. } => Self::Assert,
            Step::SaveHtml { .. } => Self::SaveHtml,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Navigate => "navigate",
            Self::WaitFor => "wait_for",
            Self::Click => "click",
            Self::Follow => "follow",
            Self::Fill => "fill",
            Self::Select => "select",
            Self::Check => "check",
            Self::Uncheck => "uncheck",
            Self::Press => "press",
            Self::Submit => "submit",
            Self::Scroll => "scroll",
            Self::Hover => "hover",
            Self::Extract => "extract",
            Self::Screenshot => "screenshot",
            Self::CaptureNetwork => "capture_network",
            Self::Download => "download",
            Self::Evaluate => "evaluate",
            Self::Assert => "assert",
            Self::SaveHtml => "save_html",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_pattern(text: &str, expected: Result<&str, &str>) {
        let got = text.parse::<DomainPattern>().map(|p| p.to_string());
        match expected {
            Ok(shown) => assert_eq!(got, Ok(shown.to_owned()), "{text}"),
            Err(part) => {
                let err = got.expect_err(text);
                assert!(
                    err.contains(part),
                    "{text}: {err:?} should contain {part:?}"
                );
            }
        }
    }

    #[test]
    fn patterns_parse() {
        check_pattern("*", Ok("*"));
        check_pattern("example.com", Ok("example.com"));
        check_pattern("Example.COM.", Ok("example.com"));
        check_pattern("*.example.com", Ok("*.example.com"));
        check_pattern("10.0.0.7", Ok("10.0.0.7"));
        check_pattern("[fd00::1]", Ok("[fd00::1]"));
        check_pattern("bücher.de", Ok("xn--bcher-kva.de"));
        check_pattern("", Err("empty"));
        check_pattern("*example.com", Err("may only lead"));
        check_pattern("a.*.com", Err("may only lead"));
        check_pattern("*.*.com", Err("only one leading"));
        check_pattern("https://example.com/", Err("without scheme"));
        check_pattern("example.com:8080", Err("without scheme"));
        check_pattern("exa mple.com", Err("not a host"));
        check_pattern("*.10.0.0.7", Err("no subdomains"));
        check_pattern("-bad.com", Err("label"));
        check_pattern(&"a".repeat(300), Err("at most 255"));
    }

    #[test]
    fn patterns_match() {
        let check = |pattern: &str, host: &str, expected: bool| {
            let pattern: DomainPattern = pattern.parse().unwrap();
            assert_eq!(pattern.matches(host), expected, "{pattern} on {host}");
        };
        check("*", "anything.example", true);
        check("example.com", "example.com", true);
        check("example.com", "EXAMPLE.com.", true);
        check("example.com", "www.example.com", false);
        check("*.example.com", "www.example.com", true);
        check("*.example.com", "a.b.example.com", true);
        check("*.example.com", "example.com", false);
        check("*.example.com", "badexample.com", false);
        check("[::1]", "[::1]", true);
    }

    #[test]
    fn step_kinds_are_the_step_actions() {
        for kind in StepKind::ALL {
            assert_eq!(StepKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::json!(kind.as_str()));
        }
    }
}
