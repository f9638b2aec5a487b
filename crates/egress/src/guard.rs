//! [`Guard`]: the one decision about where a worker may connect, and the
//! one way to connect there.
//!
//! The rule is "resolve once, dial what was checked": [`Guard::resolve`]
//! turns a host into addresses and refuses the host if ANY answer may not
//! be reached (a name that answers a public and a private address is a
//! rebinding attempt, not a mirror); [`Guard::connect`] then dials only
//! those addresses, so no second lookup can swap them. Literal addresses
//! and the loopback names (`localhost`, `*.localhost`) are decided without
//! DNS, which is what the queue needs at submission ([`Guard::check_url`]).
//!
//! An address may be reached when it is public, when the operator's
//! [`AllowList`] names it (the explicit way to reach an internal site or a
//! test fixture), or when the whole server runs under
//! `EgressPolicy::AllowPrivate` (tests and demos). Schemes are checked
//! whatever the policy: http and https, plus ws and wss for pages.
//!
//! A job's domain policies may add networks per host ([`HostAllow`], set
//! with [`Guard::with_host_allow`] on that job's guard only): a host's
//! answers in those networks are admitted for that host and no other.
//!
//! Deliberately not here: deciding domain policies, robots.txt and rate
//! limits (the proxy's hook and the redirect policy's
//! [`HopPolicy`](crate::http_client::HopPolicy) are where a domain policy
//! plugs in), and HTTP itself
//! (`http_client` adapts the guard to reqwest, `proxy` to Chromium).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use accord_model::EgressPolicy;
use tokio::net::TcpStream;
use url::Url;

use crate::address::{classify_ip, AllowList, RefusedAddress};
use crate::blocked::{BlockReason, Blocked};
use crate::host::{Authority, HostName, TargetHost};
use crate::resolver::{Resolver, SystemResolver};

/// How a guard decides and connects.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    pub policy: EgressPolicy,
    /// Non-public networks that may be reached all the same.
    pub allow: AllowList,
    /// How long one connection attempt to one address may take.
    pub connect_timeout: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            policy: EgressPolicy::PublicOnly,
            allow: AllowList::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Networks one host may reach on top of the guard's allow-list: what a
/// job's domain policy grants (its `allow_cidrs`) for the hosts it covers.
pub trait HostAllow: fmt::Debug + Send + Sync {
    /// Whether `host` (as a URL spells it: lowercase, IPv6 in brackets) may
    /// reach `ip` although the guard would refuse it.
    fn allows(&self, host: &str, ip: IpAddr) -> bool;
}

/// A workspace's domain policies grant each host the networks of the
/// policy that applies to it (when that policy allows the host at all).
impl HostAllow for accord_model::PolicySet {
    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        let policy = self.effective(host);
        policy.allowed && policy.allow_cidrs.iter().any(|cidr| cidr.contains(ip))
    }
}

/// The SSRF guard. Cheap to clone; clones share the resolver.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    config: GuardConfig,
    resolver: Arc<dyn Resolver>,
    /// A job's per-host exceptions, on a guard made for that job.
    hosts: Option<Arc<dyn HostAllow>>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("config", &self.inner.config)
            .field("resolver", &self.inner.resolver)
            .field("hosts", &self.inner.hosts)
            .finish()
    }
}

/// The addresses a host resolved to, every one of them allowed: the only
/// addresses [`Guard::connect`] dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vetted {
    authority: Authority,
    addrs: Vec<SocketAddr>,
}

impl Vetted {
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Never empty.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// A connection to a vetted address.
#[derive(Debug)]
pub struct Connected {
    pub stream: TcpStream,
    /// The address dialled, one of the vetted ones.
    pub addr: SocketAddr,
}

/// Why [`Guard::connect`] gave no connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Blocked(#[from] Blocked),
    /// Every vetted address failed; worth retrying later.
    #[error("could not connect to {authority}: {source}")]
    Unreachable {
        authority: Authority,
        #[source]
        source: io::Error,
    },
}

const HTTP: &[&str] = &["http", "https"];
const PAGE: &[&str] = &["http", "https", "ws", "wss"];

impl Guard {
    /// A guard over the system resolver: the production setting.
    pub fn new(config: GuardConfig) -> Self {
        Self::with_resolver(config, Arc::new(SystemResolver))
    }

    /// A guard over a resolver of the caller's choice (a `StubResolver` in
    /// tests).
    pub fn with_resolver(config: GuardConfig, resolver: Arc<dyn Resolver>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                resolver,
                hosts: None,
            }),
        }
    }

    /// This guard (same rules, same resolver) admitting also what `hosts`
    /// allows per host: the guard of one job whose policies grant networks.
    pub fn with_host_allow(&self, hosts: Arc<dyn HostAllow>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                resolver: self.inner.resolver.clone(),
                hosts: Some(hosts),
            }),
        }
    }

    pub fn config(&self) -> &GuardConfig {
        &self.inner.config
    }

    /// Checks what a URL alone tells, before any DNS: the scheme is http or
    /// https, the host parses, and a literal address or loopback name is
    /// one that may be reached. Returns where the URL connects to.
    pub fn check_url(&self, url: &Url) -> Result<Authority, Blocked> {
        self.check_url_with(url, HTTP, "http and https")
    }

    /// [`Guard::check_url`] for what a page may open: ws and wss as well.
    pub fn check_page_url(&self, url: &Url) -> Result<Authority, Blocked> {
        self.check_url_with(url, PAGE, "http, https, ws and wss")
    }

    fn check_url_with(
        &self,
        url: &Url,
        schemes: &[&str],
        allowed: &'static str,
    ) -> Result<Authority, Blocked> {
        if !schemes.contains(&url.scheme()) {
            let reason = BlockReason::Scheme {
                scheme: url.scheme().to_owned(),
                allowed,
            };
            return Err(Blocked::new(url.as_str(), reason));
        }
        let host_str = url.host_str().unwrap_or_default();
        let authority =
            Authority::of_url(url).map_err(|err| Blocked::new(host_str, BlockReason::Host(err)))?;
        self.check_host(&authority.host)?;
        Ok(authority)
    }

    /// Decides a host as far as it can without DNS: literal addresses and
    /// loopback names. Other names pass here and are decided by
    /// [`Guard::resolve`].
    pub fn check_host(&self, host: &TargetHost) -> Result<(), Blocked> {
        match host {
            TargetHost::Ip(ip) => self
                .admit_for(&host.to_string(), *ip)
                .map_err(|refused| Blocked::new(host.to_string(), BlockReason::Literal(refused))),
            TargetHost::Name(name) if name.is_loopback_name() => {
                self.check_answers(name, &HostName::loopback_addresses())
            }
            TargetHost::Name(_) => Ok(()),
        }
    }

    /// Whether one address may be reached.
    pub fn admit(&self, ip: IpAddr) -> Result<(), RefusedAddress> {
        let config = &self.inner.config;
        let class = classify_ip(ip);
        if class.is_public() || config.policy.allows_private() || config.allow.contains(ip) {
            return Ok(());
        }
        Err(RefusedAddress { ip, class })
    }

    /// Whether `host` may reach `ip`: [`Guard::admit`], or this guard's
    /// per-host exceptions.
    pub fn admit_for(&self, host: &str, ip: IpAddr) -> Result<(), RefusedAddress> {
        self.admit(ip).or_else(|refused| match &self.inner.hosts {
            Some(hosts) if hosts.allows(host, ip) => Ok(()),
            _ => Err(refused),
        })
    }

    fn check_answers(&self, name: &HostName, answers: &[IpAddr]) -> Result<(), Blocked> {
        let refused: Vec<RefusedAddress> = answers
            .iter()
            .filter_map(|ip| self.admit_for(name.as_str(), *ip).err())
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        let reason = BlockReason::Resolved {
            refused,
            of: answers.len(),
        };
        Err(Blocked::new(name.as_str(), reason))
    }

    /// Resolves a name once and returns its answers if every one of them
    /// may be reached. Loopback names are answered without DNS.
    pub async fn resolve_name(&self, name: &HostName) -> Result<Vec<IpAddr>, Blocked> {
        let answers = if name.is_loopback_name() {
            HostName::loopback_addresses().to_vec()
        } else {
            self.inner.resolver.resolve(name).await.map_err(|err| {
                Blocked::new(name.as_str(), BlockReason::Unresolved(err.to_string()))
            })?
        };
        if answers.is_empty() {
            let reason = BlockReason::Unresolved("no address".to_owned());
            return Err(Blocked::new(name.as_str(), reason));
        }
        self.check_answers(name, &answers)?;
        Ok(answers)
    }

    /// Resolves an authority once into the addresses [`Guard::connect`]
    /// may dial.
    pub async fn resolve(&self, authority: &Authority) -> Result<Vetted, Blocked> {
        let ips = match &authority.host {
            TargetHost::Ip(ip) => {
                self.check_host(&authority.host)?;
                vec![*ip]
            }
            TargetHost::Name(name) => self.resolve_name(name).await?,
        };
        let addrs = ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, authority.port))
            .collect();
        Ok(Vetted {
            authority: authority.clone(),
            addrs,
        })
    }

    /// Resolves once and connects to the first vetted address that answers,
    /// each attempt bounded by the connect timeout.
    pub async fn connect(&self, authority: &Authority) -> Result<Connected, ConnectError> {
        let vetted = self.resolve(authority).await?;
        self.connect_vetted(&vetted).await
    }

    /// Connects to one of the addresses already vetted.
    pub async fn connect_vetted(&self, vetted: &Vetted) -> Result<Connected, ConnectError> {
        let timeout = self.inner.config.connect_timeout;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
        for addr in &vetted.addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Requests and answers are small writes that must not
                    // wait for an ACK (Nagle's algorithm would hold them).
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!(error = %err, "could not set TCP_NODELAY");
                    }
                    return Ok(Connected {
                        stream,
                        addr: *addr,
                    });
                }
                Ok(Err(err)) => last = err,
                Err(_elapsed) => {
                    last = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {addr} took longer than {timeout:?}"),
                    );
                }
            }
        }
        Err(ConnectError::Unreachable {
            authority: vetted.authority.clone(),
            source: last,
        })
    }

    /// Checks the address a response to `url` came from: defence in depth
    /// for clients that connect on their own (reqwest), where a missing
    /// peer address is refused too.
    pub fn check_peer(&self, url: &Url, peer: Option<SocketAddr>) -> Result<(), Blocked> {
        let target = url.host_str().unwrap_or(url.as_str());
        let Some(peer) = peer else {
            if self.inner.config.policy.allows_private() {
                return Ok(());
            }
            return Err(Blocked::new(target, BlockReason::UnknownPeer));
        };
        self.admit_for(target, peer.ip())
            .map_err(|refused| Blocked::new(target, BlockReason::Peer(refused)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::StubResolver;

    fn guard(policy: EgressPolicy, allow: &[&str], stub: &StubResolver) -> Guard {
        let config = GuardConfig {
            policy,
            allow: AllowList::parse(allow.iter().copied()).unwrap(),
            ..GuardConfig::default()
        };
        Guard::with_resolver(config, Arc::new(stub.clone()))
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    /// The outcome of checking then resolving a URL: the vetted addresses,
    /// or the operator's detail of the refusal.
    async fn outcome(guard: &Guard, url: &str) -> String {
        let url = Url::parse(url).unwrap();
        let checked = match guard.check_page_url(&url) {
            Ok(authority) => guard.resolve(&authority).await,
            Err(blocked) => Err(blocked),
        };
        match checked {
            Ok(vetted) => {
                let addrs: Vec<String> = vetted.addrs().iter().map(ToString::to_string).collect();
                format!("ok {}", addrs.join(" "))
            }
            Err(blocked) => format!("blocked: {}", blocked.detail()),
        }
    }

    #[tokio::test]
    async fn any_forbidden_answer_refuses_the_host() {
        let stub = StubResolver::new();
        stub.set("public.test", ips(&["93.184.216.34", "2606:4700::1"]));
        stub.set("mixed.test", ips(&["93.184.216.34", "10.0.0.5"]));
        stub.set("internal.test", ips(&["10.0.0.5"]));
        stub.set("fixture.test", ips(&["127.0.0.10"]));
        stub.set("empty.test", vec![]);
        let strict = guard(EgressPolicy::PublicOnly, &["127.0.0.10/32"], &stub);
        let check = |url: &'static str, expected: &'static str| {
            let strict = strict.clone();
            async move { assert_eq!(outcome(&strict, url).await, expected, "{url}") }
        };
        check(
            "https://public.test/",
            "ok 93.184.216.34:443 [2606:4700::1]:443",
        )
        .await;
        check(
            "http://mixed.test/",
            "blocked: mixed.test resolves to 10.0.0.5 (private) (1 of 2 answers refused)",
        )
        .await;
        check(
            "http://internal.test:8080/",
            "blocked: internal.test resolves to 10.0.0.5 (private) (1 of 1 answers refused)",
        )
        .await;
        check("http://fixture.test:9/", "ok 127.0.0.10:9").await;
        check("http://127.0.0.10:9/", "ok 127.0.0.10:9").await;
        check(
            "http://127.0.0.11:9/",
            "blocked: 127.0.0.11 names 127.0.0.11 (loopback)",
        )
        .await;
        check(
            "http://empty.test/",
            "blocked: empty.test does not resolve: no address",
        )
        .await;
        check(
            "http://nowhere.test/",
            "blocked: nowhere.test does not resolve: no such name",
        )
        .await;
        check(
            "ws://localhost./",
            "blocked: localhost resolves to 127.0.0.1 (loopback), ::1 (loopback) (2 of 2 answers refused)",
        )
        .await;
        check(
            "gopher://public.test/",
            "blocked: gopher://public.test/: scheme `gopher`",
        )
        .await;
        // The loopback names never reach the resolver.
        assert_eq!(stub.lookups("localhost"), 0);

        let open = guard(EgressPolicy::AllowPrivate, &[], &stub);
        assert_eq!(
            outcome(&open, "http://mixed.test/").await,
            "ok 93.184.216.34:80 10.0.0.5:80"
        );
        assert_eq!(
            outcome(&open, "http://localhost:9/").await,
            "ok 127.0.0.1:9 [::1]:9"
        );
        assert_eq!(
            outcome(&open, "file:///etc/passwd").await,
            "blocked: file:///etc/passwd: scheme `file`"
        );
    }

    #[tokio::test]
    async fn http_urls_refuse_websocket_schemes_pages_do_not() {
        let stub = StubResolver::new();
        let strict = guard(EgressPolicy::PublicOnly, &[], &stub);
        let url = Url::parse("wss://93.184.216.34/socket").unwrap();
        assert_eq!(
            strict.check_url(&url).unwrap_err().to_string(),
            "refused wss://93.184.216.34/socket: scheme `wss` is not allowed; only http and https are"
        );
        assert_eq!(strict.check_page_url(&url).unwrap().port, 443);
        let data = Url::parse("data:text/html,hi").unwrap();
        assert_eq!(
            strict.check_page_url(&data).unwrap_err().to_string(),
            "refused data:text/html,hi: scheme `data` is not allowed; only http, https, ws and wss are"
        );
    }

    #[tokio::test]
    async fn connect_dials_only_what_was_vetted() {
        // A name that answers an allowed fixture first and a forbidden
        // address next: the connection goes where the check looked.
        let fixture = tokio::net::TcpListener::bind("127.0.0.10:0").await.unwrap();
        let port = fixture.local_addr().unwrap().port();
        let stub = StubResolver::new();
        stub.set_sequence(
            "rebind.test",
            vec![ips(&["127.0.0.10"]), ips(&["127.0.0.2"])],
        );
        let strict = guard(EgressPolicy::PublicOnly, &["127.0.0.10/32"], &stub);
        let authority = Authority::parse(&format!("rebind.test:{port}")).unwrap();
        let connected = strict.connect(&authority).await.unwrap();
        assert_eq!(connected.addr, fixture.local_addr().unwrap());
        assert_eq!(
            connected.stream.peer_addr().unwrap(),
            fixture.local_addr().unwrap()
        );
        // The next lookup answers the forbidden address, and is refused.
        let err = strict.connect(&authority).await.unwrap_err();
        assert!(matches!(err, ConnectError::Blocked(_)), "{err:?}");
        assert_eq!(stub.lookups("rebind.test"), 2);
    }

    #[tokio::test]
    async fn a_policy_grants_its_networks_to_its_hosts_only() {
        use accord_model::{PolicyEntry, PolicyRules, PolicySet};
        let stub = StubResolver::new();
        stub.set("intranet.test", ips(&["10.1.2.3"]));
        stub.set("evil.test", ips(&["10.1.2.3"]));
        stub.set("denied.test", ips(&["10.1.2.3"]));
        let entry = |pattern: &str, allowed: bool, cidr: &str| PolicyEntry {
            pattern: pattern.parse().unwrap(),
            rules: PolicyRules {
                allowed,
                allow_cidrs: vec![cidr.parse().unwrap()],
                ..PolicyRules::default()
            },
        };
        let set = PolicySet {
            policies: vec![
                entry("intranet.test", true, "10.1.0.0/16"),
                entry("10.9.9.9", true, "10.9.9.9"),
                entry("denied.test", false, "10.1.0.0/16"),
            ],
        };
        let plain = guard(EgressPolicy::PublicOnly, &[], &stub);
        let job = plain.with_host_allow(Arc::new(set));
        assert!(outcome(&plain, "http://intranet.test/")
            .await
            .starts_with("blocked"));
        assert_eq!(
            outcome(&job, "http://intranet.test/").await,
            "ok 10.1.2.3:80"
        );
        assert!(outcome(&job, "http://evil.test/")
            .await
            .starts_with("blocked"));
        assert!(outcome(&job, "http://denied.test/")
            .await
            .starts_with("blocked"));
        assert_eq!(outcome(&job, "http://10.9.9.9/").await, "ok 10.9.9.9:80");
        assert!(outcome(&job, "http://10.1.2.3/")
            .await
            .starts_with("blocked"));
    }

    #[test]
    fn peers_are_checked() {
        let stub = StubResolver::new();
        let strict = guard(EgressPolicy::PublicOnly, &["127.0.0.10"], &stub);
        let open = guard(EgressPolicy::AllowPrivate, &[], &stub);
        let url = Url::parse("https://example.test/").unwrap();
        let check = |guard: &Guard, peer: Option<&str>, expected: Result<(), &str>| {
            let peer = peer.map(|peer| peer.parse().unwrap());
            let got = guard
                .check_peer(&url, peer)
                .map_err(|blocked| blocked.detail().to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{peer:?}");
        };
        check(&strict, Some("93.184.216.34:443"), Ok(()));
        check(&strict, Some("127.0.0.10:443"), Ok(()));
        check(
            &strict,
            Some("127.0.0.1:443"),
            Err("example.test: connected to 127.0.0.1 (loopback)"),
        );
        check(
            &strict,
            None,
            Err("example.test: the peer address is unknown"),
        );
        check(&open, Some("127.0.0.1:443"), Ok(()));
        check(&open, None, Ok(()));
    }
}
