//! The guard as reqwest needs it: a DNS resolver that resolves once and
//! hands the client only vetted addresses (the client then dials exactly
//! those), and a redirect policy that checks every hop.
//!
//! A client built this way still needs the caller to check the first URL
//! ([`Guard::check_url`]: reqwest never asks the resolver about a literal
//! address) and, as defence in depth, the peer of each response
//! ([`Guard::check_peer`]). It must also be built with `no_proxy()`: a proxy
//! would connect on the client's behalf to addresses the guard never sees.
//!
//! The errors raised inside reqwest are [`Blocked`] and [`TooManyRedirects`]
//! values in the `reqwest::Error`'s source chain; [`find_refusal`] gets them
//! back out.
//!
//! A client's redirect policy is fixed when it is built, but a job's domain
//! policies ([`HopPolicy`]) are per request: [`per_request_redirect_policy`]
//! asks the hop policy the request was sent with ([`send_with_hops`]), so
//! one client (and its connection pool) serves every job whose guard is the
//! same, with or without policies.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use url::Url;

use crate::blocked::{BlockReason, Blocked};
use crate::guard::Guard;
use crate::host::TargetHost;

/// The most redirects any request follows, whatever its configuration.
pub const MAX_REDIRECTS: usize = 10;

/// A redirect beyond the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many redirects (more than {max})")]
pub struct TooManyRedirects {
    pub max: usize,
}

/// A hop a [`HopPolicy`] refused; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HopDenied(pub String);

/// A per-request decision on each redirect hop beyond the guard's (a
/// job's domain policies): called with every URL a redirect leads to.
pub trait HopPolicy: std::fmt::Debug + Send + Sync {
    fn check(&self, next: &Url) -> Result<(), HopDenied>;
}

/// Why a request was stopped inside the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Blocked(Blocked),
    TooManyRedirects(TooManyRedirects),
    /// The client's [`HopPolicy`] refused a redirect.
    Denied(HopDenied),
}

/// The guard's refusal inside a reqwest error, if that is why it failed.
pub fn find_refusal(err: &(dyn StdError + 'static)) -> Option<Refusal> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(blocked) = current.downcast_ref::<Blocked>() {
            return Some(Refusal::Blocked(blocked.clone()));
        }
        if let Some(too_many) = current.downcast_ref::<TooManyRedirects>() {
            return Some(Refusal::TooManyRedirects(*too_many));
        }
        if let Some(denied) = current.downcast_ref::<HopDenied>() {
            return Some(Refusal::Denied(denied.clone()));
        }
        cause = current.source();
    }
    None
}

/// reqwest's resolver, through the guard.
#[derive(Debug, Clone)]
pub struct GuardedResolve {
    guard: Guard,
}

impl GuardedResolve {
    pub fn new(guard: Guard) -> Self {
        Self { guard }
    }
}

impl Resolve for GuardedResolve {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = TargetHost::parse_name(name.as_str())
                .map_err(|err| Blocked::new(name.as_str(), BlockReason::Host(err)))?;
            let ips = guard.resolve_name(&host).await?;
            // The port is replaced by the URL's when connecting.
            let addrs = ips.into_iter().map(|ip| SocketAddr::new(ip, 0));
            Ok(Box::new(addrs.collect::<Vec<_>>().into_iter()) as Addrs)
        })
    }
}

/// Decides whether to follow the `hops`-th redirect (1 for the first) of a
/// request, to `next`: at most `max` (and never more than
/// [`MAX_REDIRECTS`]) hops, each to a URL the guard accepts.
pub fn check_redirect(guard: &Guard, next: &Url, hops: usize, max: usize) -> Result<(), Refusal> {
    let max = max.min(MAX_REDIRECTS);
    if hops > max {
        return Err(Refusal::TooManyRedirects(TooManyRedirects { max }));
    }
    guard.check_url(next).map(drop).map_err(Refusal::Blocked)
}

/// The client's redirect policy: [`check_redirect`] on every hop. Names in
/// a hop's URL are resolved (and checked) by [`GuardedResolve`] when the
/// client connects.
pub fn redirect_policy(guard: Guard, max: usize) -> Policy {
    redirect_policy_with(guard, max, None)
}

/// [`redirect_policy`], and `hops` asked about every hop the guard lets
/// through (a job's domain policies).
pub fn redirect_policy_with(guard: Guard, max: usize, hops: Option<Arc<dyn HopPolicy>>) -> Policy {
    Policy::custom(move |attempt| {
        // `previous` holds the original URL and every hop followed so far.
        let count = attempt.previous().len();
        let checked = check_redirect(&guard, attempt.url(), count, max)
            .and_then(|()| check_hop(hops.as_deref(), attempt.url()));
        follow_or_refuse(attempt, checked)
    })
}

tokio::task_local! {
    /// The hop policy of the request being sent in this task, set by
    /// [`send_with_hops`] for as long as the request runs.
    static REQUEST_HOPS: Option<Arc<dyn HopPolicy>>;
}

/// Sends a request (`send`, a client's `send()` future) with `hops`
/// deciding each of its redirects, on a client built with
/// [`per_request_redirect_policy`]. The client follows redirects while the
/// future is polled, in this task, so the policy sees the request's own
/// hops and no other's.
pub async fn send_with_hops<F: Future>(hops: Option<Arc<dyn HopPolicy>>, send: F) -> F::Output {
    REQUEST_HOPS.scope(hops, send).await
}

/// [`redirect_policy`], and the hop policy each request was sent with
/// ([`send_with_hops`]) asked about every hop the guard lets through. A
/// redirect of a request sent without [`send_with_hops`] is refused: no
/// hop goes out unasked.
pub fn per_request_redirect_policy(guard: Guard, max: usize) -> Policy {
    Policy::custom(move |attempt| {
        let count = attempt.previous().len();
        let checked = check_redirect(&guard, attempt.url(), count, max).and_then(|()| {
            REQUEST_HOPS
                .try_with(|hops| check_hop(hops.as_deref(), attempt.url()))
                .unwrap_or_else(|_| {
                    Err(Refusal::Denied(HopDenied(format!(
                        "{}: a redirect of a request sent without its hop policy",
                        attempt.url()
                    ))))
                })
        });
        follow_or_refuse(attempt, checked)
    })
}

fn check_hop(hops: Option<&dyn HopPolicy>, next: &Url) -> Result<(), Refusal> {
    match hops {
        Some(hops) => hops.check(next).map_err(Refusal::Denied),
        None => Ok(()),
    }
}

fn follow_or_refuse(
    attempt: reqwest::redirect::Attempt<'_>,
    checked: Result<(), Refusal>,
) -> reqwest::redirect::Action {
    match checked {
        Ok(()) => attempt.follow(),
        Err(Refusal::TooManyRedirects(err)) => attempt.error(err),
        Err(Refusal::Blocked(err)) => attempt.error(err),
        Err(Refusal::Denied(err)) => attempt.error(err),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use accord_model::EgressPolicy;

    use super::*;
    use crate::address::AllowList;
    use crate::guard::GuardConfig;
    use crate::resolver::StubResolver;

    #[test]
    fn redirects_are_checked() {
        let strict = Guard::with_resolver(GuardConfig::default(), Arc::new(StubResolver::new()));
        let open = Guard::with_resolver(
            GuardConfig {
                policy: EgressPolicy::AllowPrivate,
                allow: AllowList::default(),
                ..GuardConfig::default()
            },
            Arc::new(StubResolver::new()),
        );
        let check =
            |guard: &Guard, url: &str, hops: usize, max: usize, expected: Result<(), &str>| {
                let url = Url::parse(url).unwrap();
                let got = check_redirect(guard, &url, hops, max).map_err(|err| match err {
                    Refusal::TooManyRedirects(err) => err.to_string(),
                    Refusal::Blocked(err) => err.detail().to_string(),
                    Refusal::Denied(err) => err.to_string(),
                });
                assert_eq!(got, expected.map_err(str::to_owned), "{url} after {hops}");
            };
        check(&strict, "http://example.com/next", 1, 10, Ok(()));
        check(&strict, "https://93.184.216.34/", 10, 10, Ok(()));
        check(
            &strict,
            "http://example.com/",
            11,
            10,
            Err("too many redirects (more than 10)"),
        );
        check(
            &strict,
            "http://example.com/",
            11,
            50,
            Err("too many redirects (more than 10)"),
        );
        check(
            &strict,
            "http://example.com/",
            3,
            2,
            Err("too many redirects (more than 2)"),
        );
        check(
            &strict,
            "http://10.0.0.1/",
            1,
            10,
            Err("10.0.0.1 names 10.0.0.1 (private)"),
        );
        check(
            &strict,
            "http://0x7f.1/",
            1,
            10,
            Err("127.0.0.1 names 127.0.0.1 (loopback)"),
        );
        check(
            &strict,
            "http://localhost:8080/",
            1,
            10,
            Err("localhost resolves to 127.0.0.1 (loopback), ::1 (loopback) (2 of 2 answers refused)"),
        );
        check(
            &strict,
            "ws://example.com/",
            1,
            10,
            Err("ws://example.com/: scheme `ws`"),
        );
        check(&open, "http://10.0.0.1/", 1, 10, Ok(()));
        check(
            &open,
            "file:///etc/passwd",
            1,
            10,
            Err("file:///etc/passwd: scheme `file`"),
        );
    }
}
