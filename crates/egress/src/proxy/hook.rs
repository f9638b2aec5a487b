//! The per-proxy hook: sees every request before the guard does, may deny
//! it, and hears what became of it. A later domain policy denies a
//! sub-resource here; a worker counts and reports requests here.

use std::fmt;
use std::net::SocketAddr;

use url::Url;

use crate::blocked::Blocked;
use crate::host::Authority;

/// How the browser asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `CONNECT host:port`: https, wss or ws (Chromium tunnels WebSockets).
    Connect,
    /// An absolute-form `http://` request, forwarded.
    Forward,
}

/// A request the proxy was asked to carry.
#[derive(Debug, Clone, Copy)]
pub struct ProxyRequest<'a> {
    pub kind: RequestKind,
    pub authority: &'a Authority,
    /// The full URL, for forwarded requests (a tunnel's URL is encrypted).
    pub url: Option<&'a Url>,
}

/// What the hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    Allow,
    /// Refuse with `403`; the reason goes to the log and the hook's report,
    /// never to the page.
    Deny(String),
}

/// What became of a request.
#[derive(Debug, Clone, Copy)]
pub enum ProxyOutcome<'a> {
    /// A tunnel was opened to this address.
    Tunnelled(SocketAddr),
    /// The request was forwarded to this address and answered this status.
    Forwarded { addr: SocketAddr, status: u16 },
    /// The hook denied it.
    Denied(&'a str),
    /// The guard refused it.
    Blocked(&'a Blocked),
    /// The target could not be reached or did not answer.
    Failed(&'a str),
}

/// Decides and hears about the requests of one proxy.
pub trait ProxyHook: fmt::Debug + Send + Sync + 'static {
    /// Called before the guard resolves anything.
    fn check(&self, request: &ProxyRequest<'_>) -> HookVerdict;

    /// Called once per request with its outcome.
    fn record(&self, request: &ProxyRequest<'_>, outcome: &ProxyOutcome<'_>);
}

/// The hook of a proxy without domain policies: allows everything the guard
/// allows and records nothing (the proxy logs refusals itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl ProxyHook for AllowAll {
    fn check(&self, _request: &ProxyRequest<'_>) -> HookVerdict {
        HookVerdict::Allow
    }

    fn record(&self, _request: &ProxyRequest<'_>, _outcome: &ProxyOutcome<'_>) {}
}
