//! A job's own egress proxy, seen from the job.
//!
//! Every job of an engine that has the worker's guard runs its context
//! behind a proxy of its own (started by `engine`), whose hook is
//! [`JobHook`]: it refuses hosts the job's domain policies deny, and it
//! remembers what the guard refused for this job. That is how a page
//! whose load the proxy refused fails with `target_blocked` and the
//! guard's message, as on the HTTP engine, instead of passing as a `403`
//! page (plain http: the proxy answers the browser) or as a broken tunnel
//! (https and WebSockets: Chromium only says `ERR_TUNNEL_CONNECTION_FAILED`).
//! A proxy shared by the browser's jobs could not say whose request it
//! refused.
//!
//! Deliberately not here: the proxy itself (`accord-egress`), and deciding
//! domain policies (the job's [`HopPolicy`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use accord_egress::proxy::{HookVerdict, ProxyOutcome, ProxyRequest, RequestKind};
use accord_egress::{Blocked, Guard, HopPolicy, ProxyHook};
use url::Url;

/// What a job's context goes through.
#[derive(Debug, Clone)]
pub(super) struct JobProxy {
    /// The proxy's address, for the context's `proxyServer`.
    pub server: String,
    /// What the proxy reports about this job's requests.
    pub hook: Arc<JobHook>,
    /// The proxy's guard, to refuse what a URL alone tells before the
    /// browser sees it (as the HTTP engine does).
    pub guard: Guard,
}

/// The hook of one job's proxy.
#[derive(Debug)]
pub(super) struct JobHook {
    hops: Option<Arc<dyn HopPolicy>>,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// The first request the job's policies denied.
    denied: Option<String>,
    /// Every request the guard refused, in order.
    refused: Vec<Refused>,
}

/// A request the guard refused.
#[derive(Debug, Clone)]
struct Refused {
    kind: RequestKind,
    /// The whole URL, for a forwarded request.
    url: Option<Url>,
    blocked: Blocked,
}

impl JobHook {
    pub fn new(hops: Option<Arc<dyn HopPolicy>>) -> Self {
        Self {
            hops,
            seen: Mutex::new(Seen::default()),
        }
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        // Every update is a single push or assignment: a panic elsewhere
        // cannot leave it half-written.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn first_denial(&self) -> Option<String> {
        self.seen().denied.clone()
    }

    /// How many refusals there were so far: a mark to ask
    /// [`JobHook::refused_document`] and [`JobHook::refused_tunnel`] about
    /// what came after.
    pub fn mark(&self) -> usize {
        self.seen().refused.len()
    }

    /// The guard's refusal of the document a load ended on: the proxy
    /// answers a refused http request with `403`, which the browser shows
    /// as the page. Only a refusal of that very URL (after `mark`) counts,
    /// so a site's own `403` stays a `403`.
    pub fn refused_document(&self, mark: usize, status: u16, url: &str) -> Option<Blocked> {
        if status != 403 {
            return None;
        }
        let mut url = Url::parse(url).ok()?;
        url.set_fragment(None);
        self.seen().refused[mark..]
            .iter()
            .find(|refused| {
                refused.kind == RequestKind::Forward && refused.url.as_ref() == Some(&url)
            })
            .map(|refused| refused.blocked.clone())
    }

    /// The first tunnel the guard refused after `mark`: why a load that
    /// broke on its tunnel broke.
    pub fn refused_tunnel(&self, mark: usize) -> Option<Blocked> {
        self.seen().refused[mark..]
            .iter()
            .find(|refused| refused.kind == RequestKind::Connect)
            .map(|refused| refused.blocked.clone())
    }
}

impl ProxyHook for JobHook {
    fn check(&self, request: &ProxyRequest<'_>) -> HookVerdict {
        let Some(hops) = &self.hops else {
            return HookVerdict::Allow;
        };
        // A tunnel shows only its host: the policy is per host anyway.
        let url = match (request.kind, request.url) {
            (RequestKind::Forward, Some(url)) => Some(url.clone()),
            _ => Url::parse(&format!("https://{}/", request.authority)).ok(),
        };
        let Some(url) = url else {
            return HookVerdict::Deny(format!("{}: not a host", request.authority));
        };
        match hops.check(&url) {
            Ok(()) => HookVerdict::Allow,
            Err(denied) => {
                let reason = denied.to_string();
                self.seen().denied.get_or_insert_with(|| reason.clone());
                HookVerdict::Deny(reason)
            }
        }
    }

    fn record(&self, request: &ProxyRequest<'_>, outcome: &ProxyOutcome<'_>) {
        if let ProxyOutcome::Blocked(blocked) = outcome {
            let url = request.url.map(|url| {
                let mut url = url.clone();
                url.set_fragment(None);
                url
            });
            self.seen().refused.push(Refused {
                kind: request.kind,
                url,
                blocked: (*blocked).clone(),
            });
        }
    }
}
