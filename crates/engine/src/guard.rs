//! The SSRF guard: the engine fetches only public addresses unless its
//! configuration explicitly allows private ones.
//!
//! A single check of the URL is not enough (DNS can point anywhere, and
//! redirects can lead anywhere), so the guard sits at every point where an
//! address is chosen:
//! - [`GuardedResolver`] resolves names for the HTTP client and drops every
//!   non-public address, failing when none remains;
//! - [`Guard::check_url`] refuses literal-IP hosts that are not public (the
//!   client never asks the resolver about those) and non-http(s) schemes; it
//!   runs on the initial URL and, through [`redirect_policy`], on every
//!   redirect hop (a redirect the client cannot even turn into a request,
//!   like `file:`, never reaches the policy: the engine checks its scheme
//!   with [`check_scheme`] when the response comes back unfollowed);
//! - [`Guard::check_peer`] checks the address a response actually came from,
//!   as defense in depth.
//!
//! Whether an address is public is decided by [`accord_model::classify_ip`].
//! Under `EgressPolicy::AllowPrivate` only the scheme check remains. The guard does
//! not do domain allow/deny lists or robots.txt; policies live elsewhere.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use accord_model::{classify_ip, AddressClass, EgressPolicy};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use url::{Host, Url};

/// A fetch the SSRF guard refused. Always a permanent failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedTarget {
    /// The host (or, for a bad scheme, the whole URL) that was refused.
    target: String,
    reason: Refusal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The URL names a non-public address literally.
    Literal(IpAddr, AddressClass),
    /// Every address the name resolves to is non-public.
    ResolvesOnlyTo(Vec<(IpAddr, AddressClass)>),
    /// The response came from a non-public address.
    ConnectedTo(IpAddr, AddressClass),
    /// The response did not say where it came from, so it cannot be trusted.
    UnknownPeer,
    /// A scheme other than http or https.
    Scheme(String),
}

impl RefusedTarget {
    /// The host (or, for a bad scheme, the URL) that was refused.
    pub fn target(&self) -> &str {
        &self.target
    }
}

impl std::error::Error for RefusedTarget {}

impl fmt::Display for RefusedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused target {}: ", self.target)?;
        match &self.reason {
            Refusal::Literal(ip, class) => write!(f, "names {} address {ip}", class.as_str()),
            Refusal::ResolvesOnlyTo(addresses) => match addresses.as_slice() {
                [(ip, class)] => write!(f, "resolves only to {} address {ip}", class.as_str()),
                many => {
                    f.write_str("resolves only to non-public addresses ")?;
                    for (i, (ip, class)) in many.iter().enumerate() {
                        let sep = if i == 0 { "" } else { ", " };
                        write!(f, "{sep}{ip} ({})", class.as_str())?;
                    }
                    Ok(())
                }
            },
            Refusal::ConnectedTo(ip, class) => {
                write!(f, "connected to {} address {ip}", class.as_str())
            }
            Refusal::UnknownPeer => f.write_str("the connected address could not be verified"),
            Refusal::Scheme(scheme) => {
                write!(
                    f,
                    "scheme `{scheme}` is not allowed; only http and https are"
                )
            }
        }
    }
}

/// A redirect beyond the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many redirects (more than {max})")]
pub(crate) struct TooManyRedirects {
    pub(crate) max: usize,
}

/// Why a redirect hop was not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedirectRefusal {
    TooMany(TooManyRedirects),
    Target(RefusedTarget),
}

/// The address rules of one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Guard {
    allow_private: bool,
}

impl Guard {
    pub(crate) fn new(policy: EgressPolicy) -> Self {
        Self {
            allow_private: policy.allows_private(),
        }
    }

    /// The resolver the HTTP client must use, or `None` when private targets
    /// are allowed and the system resolver will do.
    pub(crate) fn resolver(self) -> Option<GuardedResolver> {
        (!self.allow_private).then_some(GuardedResolver)
    }

    /// Checks a URL before anything is sent to it: the scheme must be http(s)
    /// and a literal-IP host must be public.
    pub(crate) fn check_url(self, url: &Url) -> Result<(), RefusedTarget> {
        check_scheme(url)?;
        if self.allow_private {
            return Ok(());
        }
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            // Names go through the resolver; http(s) URLs always have a host.
            Some(Host::Domain(_)) | None => return Ok(()),
        };
        match classify_ip(ip) {
            AddressClass::Public => Ok(()),
            class => Err(RefusedTarget {
                target: host_of(url),
                reason: Refusal::Literal(ip, class),
            }),
        }
    }

    /// Checks the address a response to `url` came from.
    pub(crate) fn check_peer(
        self,
        url: &Url,
        peer: Option<SocketAddr>,
    ) -> Result<(), RefusedTarget> {
        if self.allow_private {
            return Ok(());
        }
        let reason = match peer {
            None => Refusal::UnknownPeer,
            Some(peer) => match classify_ip(peer.ip()) {
                AddressClass::Public => return Ok(()),
                class => Refusal::ConnectedTo(peer.ip(), class),
            },
        };
        Err(RefusedTarget {
            target: host_of(url),
            reason,
        })
    }
}

/// Only http and https are fetched, whatever the configuration.
pub(crate) fn check_scheme(url: &Url) -> Result<(), RefusedTarget> {
    if matches!(url.scheme(), "http" | "https") {
        return Ok(());
    }
    Err(RefusedTarget {
        target: url.as_str().to_owned(),
        reason: Refusal::Scheme(url.scheme().to_owned()),
    })
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or(url.as_str()).to_owned()
}

/// Decides whether to follow the `hops`-th redirect (1 for the first) of a
/// request, to `next`.
pub(crate) fn check_redirect(
    guard: Guard,
    next: &Url,
    hops: usize,
    max_redirects: usize,
) -> Result<(), RedirectRefusal> {
    if hops > max_redirects {
        return Err(RedirectRefusal::TooMany(TooManyRedirects {
            max: max_redirects,
        }));
    }
    guard.check_url(next).map_err(RedirectRefusal::Target)
}

/// The client's redirect policy: [`check_redirect`] on every hop.
///
/// The errors it raises travel inside `reqwest::Error` as its source, where
/// the engine finds them again to classify the failure.
pub(crate) fn redirect_policy(guard: Guard, max_redirects: usize) -> Policy {
    Policy::custom(move |attempt| {
        // `previous` holds the original URL and every hop followed so far.
        let hops = attempt.previous().len();
        match check_redirect(guard, attempt.url(), hops, max_redirects) {
            Ok(()) => attempt.follow(),
            Err(RedirectRefusal::TooMany(err)) => attempt.error(err),
            Err(RedirectRefusal::Target(err)) => attempt.error(err),
        }
    })
}

/// Resolves names with the system resolver and keeps only public addresses.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is replaced by the URL's port when connecting.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if resolved.is_empty() {
                let message = format!("{host} resolves to no address");
                return Err(io::Error::new(io::ErrorKind::NotFound, message).into());
            }
            let public = public_addresses(&host, resolved)?;
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The public addresses among those `host` resolved to (which must not be
/// empty); refuses the host when there are none.
pub(crate) fn public_addresses(
    host: &str,
    resolved: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, RefusedTarget> {
    let mut refused: Vec<(IpAddr, AddressClass)> = Vec::new();
    let mut public = Vec::with_capacity(resolved.len());
    for addr in resolved {
        match classify_ip(addr.ip()) {
            AddressClass::Public => public.push(addr),
            class => {
                if !refused.iter().any(|(ip, _)| *ip == addr.ip()) {
                    refused.push((addr.ip(), class));
                }
            }
        }
    }
    if public.is_empty() {
        return Err(RefusedTarget {
            target: host.to_owned(),
            reason: Refusal::ResolvesOnlyTo(refused),
        });
    }
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUARDED: Guard = Guard {
        allow_private: false,
    };
    const OPEN: Guard = Guard {
        allow_private: true,
    };

    fn addrs(ips: &[&str]) -> Vec<SocketAddr> {
        ips.iter()
            .map(|ip| SocketAddr::new(ip.parse().unwrap(), 443))
            .collect()
    }

    #[test]
    fn resolver_keeps_only_public_addresses() {
        let check = |ips: &[&str], expected: Result<&[&str], &str>| {
            let got = public_addresses("example.test", addrs(ips)).map_err(|e| e.to_string());
            let want = expected.map(addrs).map_err(str::to_owned);
            assert_eq!(got, want, "{ips:?}");
        };
        check(&["93.184.216.34"], Ok(&["93.184.216.34"]));
        check(
            &["93.184.216.34", "2606:4700:4700::1111"],
            Ok(&["93.184.216.34", "2606:4700:4700::1111"]),
        );
        check(&["10.0.0.1", "8.8.8.8"], Ok(&["8.8.8.8"]));
        check(&["::1", "1.1.1.1", "127.0.0.1"], Ok(&["1.1.1.1"]));
        check(
            &["10.0.0.1"],
            Err("refused target example.test: resolves only to private address 10.0.0.1"),
        );
        check(
            &["127.0.0.1", "::1", "127.0.0.1"],
            Err("refused target example.test: resolves only to non-public addresses 127.0.0.1 (loopback), ::1 (loopback)"),
        );
        check(
            &["169.254.169.254"],
            Err("refused target example.test: resolves only to cloud metadata address 169.254.169.254"),
        );
        check(
            &["::ffff:192.168.1.1"],
            Err("refused target example.test: resolves only to private address ::ffff:192.168.1.1"),
        );
        check(
            &["fe80::1"],
            Err("refused target example.test: resolves only to link-local address fe80::1"),
        );
        check(
            &["0.0.0.0"],
            Err("refused target example.test: resolves only to unspecified address 0.0.0.0"),
        );
        check(
            &["fd12::1"],
            Err("refused target example.test: resolves only to unique-local address fd12::1"),
        );
    }

    #[test]
    fn redirects_are_checked() {
        let check = |guard: Guard, url: &str, hops: usize, expected: Result<(), &str>| {
            let url = Url::parse(url).unwrap();
            let got = check_redirect(guard, &url, hops, 10).map_err(|err| match err {
                RedirectRefusal::TooMany(err) => err.to_string(),
                RedirectRefusal::Target(err) => err.to_string(),
            });
            assert_eq!(got, expected.map_err(str::to_owned), "{url} after {hops}");
        };
        check(GUARDED, "http://example.com/next", 1, Ok(()));
        check(GUARDED, "https://93.184.216.34/", 10, Ok(()));
        check(
            GUARDED,
            "http://example.com/next",
            11,
            Err("too many redirects (more than 10)"),
        );
        check(
            GUARDED,
            "http://10.0.0.1/",
            1,
            Err("refused target 10.0.0.1: names private address 10.0.0.1"),
        );
        check(
            GUARDED,
            "http://[::1]:8080/",
            1,
            Err("refused target [::1]: names loopback address ::1"),
        );
        check(
            GUARDED,
            "http://[::ffff:127.0.0.1]/",
            1,
            Err("refused target [::ffff:7f00:1]: names loopback address ::ffff:127.0.0.1"),
        );
        // WHATWG parsing turns these spellings into 127.0.0.1 before we see them.
        check(
            GUARDED,
            "http://0x7f.1/",
            1,
            Err("refused target 127.0.0.1: names loopback address 127.0.0.1"),
        );
        check(
            GUARDED,
            "http://2130706433/",
            1,
            Err("refused target 127.0.0.1: names loopback address 127.0.0.1"),
        );
        check(
            GUARDED,
            "http://169.254.169.254/latest/meta-data/",
            1,
            Err("refused target 169.254.169.254: names cloud metadata address 169.254.169.254"),
        );
        check(
            GUARDED,
            "file:///etc/passwd",
            1,
            Err("refused target file:///etc/passwd: scheme `file` is not allowed; only http and https are"),
        );
        check(OPEN, "http://10.0.0.1/", 1, Ok(()));
        check(OPEN, "http://localhost:9/", 1, Ok(()));
        check(
            OPEN,
            "file:///etc/passwd",
            1,
            Err("refused target file:///etc/passwd: scheme `file` is not allowed; only http and https are"),
        );
        check(
            OPEN,
            "gopher://example.com/",
            1,
            Err("refused target gopher://example.com/: scheme `gopher` is not allowed; only http and https are"),
        );
        check(
            OPEN,
            "http://example.com/",
            11,
            Err("too many redirects (more than 10)"),
        );
    }

    #[test]
    fn peers_are_checked() {
        let url = Url::parse("https://example.test/").unwrap();
        let check = |guard: Guard, peer: Option<&str>, expected: Result<(), &str>| {
            let peer = peer.map(|ip| SocketAddr::new(ip.parse().unwrap(), 443));
            let got = guard.check_peer(&url, peer).map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{peer:?}");
        };
        check(GUARDED, Some("93.184.216.34"), Ok(()));
        check(
            GUARDED,
            Some("127.0.0.1"),
            Err("refused target example.test: connected to loopback address 127.0.0.1"),
        );
        check(
            GUARDED,
            None,
            Err("refused target example.test: the connected address could not be verified"),
        );
        check(OPEN, Some("127.0.0.1"), Ok(()));
        check(OPEN, None, Ok(()));
    }
}
