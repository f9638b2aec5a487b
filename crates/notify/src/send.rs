//! One delivery attempt over HTTP, through the egress guard: the first URL
//! checked before any connection, names resolved once by the guard (the
//! client dials only vetted addresses), every redirect hop checked, and
//! the peer of the answer checked again. The result is an [`Attempt`]:
//! the status, the latency and a bounded excerpt of the answer, and
//! whether a retry could help.

use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_egress::http_client::{find_refusal, redirect_policy, GuardedResolve, Refusal};
use accord_egress::{AllowList, Blocked, Guard, GuardConfig, Resolver, SystemResolver};
use accord_model::EgressPolicy;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use url::Url;

/// Most bytes of an answer kept in the attempt log.
pub const MAX_EXCERPT_BYTES: usize = 512;
/// Most redirects a delivery follows (each checked by the guard).
pub const MAX_REDIRECTS: usize = 3;

/// How the sender connects.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub egress: EgressPolicy,
    /// Non-public networks that may be reached all the same.
    pub allow_targets: AllowList,
    /// Longest one attempt may take, answer included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub user_agent: String,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            egress: EgressPolicy::PublicOnly,
            allow_targets: AllowList::default(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            user_agent: format!("Accord-Webhooks/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What one attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub status: Option<u16>,
    pub latency: Duration,
    pub delivered: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The start of the answer.
    pub excerpt: Option<String>,
    /// A retry cannot help (the guard refused the target).
    pub permanent: bool,
}

/// Sends requests through the guard. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    guard: Guard,
}

#[derive(Debug, thiserror::Error)]
#[error("build the notification HTTP client: {0}")]
pub struct SenderBuildError(#[from] reqwest::Error);

impl Sender {
    /// A sender whose guard resolves names with the system's resolver.
    pub fn new(config: &SenderConfig) -> Result<Self, SenderBuildError> {
        Self::with_resolver(config, Arc::new(SystemResolver))
    }

    /// A sender whose guard resolves names with `resolver` (a
    /// `StubResolver` whose answers a test sets).
    pub fn with_resolver(
        config: &SenderConfig,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, SenderBuildError> {
        let guard = Guard::with_resolver(
            GuardConfig {
                policy: config.egress,
                allow: config.allow_targets.clone(),
                connect_timeout: config.connect_timeout,
            },
            resolver,
        );
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            // A proxy would connect on our behalf to addresses the guard never sees.
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .dns_resolver(Arc::new(GuardedResolve::new(guard.clone())))
            .redirect(redirect_policy(guard.clone(), MAX_REDIRECTS))
            .build()?;
        Ok(Self { client, guard })
    }

    /// The guard's verdict on a URL from the URL alone.
    pub fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        self.guard.check_url(url).map(drop)
    }

    /// POSTs a JSON `body` with `headers` to `url`: delivered on any 2xx.
    pub async fn post_json(&self, url: &Url, headers: HeaderMap, body: Vec<u8>) -> Attempt {
        let started = Instant::now();
        if let Err(blocked) = self.check_url(url) {
            return refused(started, &blocked);
        }
        let sent = self
            .client
            .post(url.clone())
            .headers(headers)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return failure(started, &err),
        };
        if let Err(blocked) = self
            .guard
            .check_peer(response.url(), response.remote_addr())
        {
            return refused(started, &blocked);
        }
        let status = response.status();
        let excerpt = excerpt(response).await;
        let delivered = status.is_success();
        Attempt {
            status: Some(status.as_u16()),
            latency: started.elapsed(),
            delivered,
            error: (!delivered).then(|| format!("the receiver answered {status}")),
            excerpt,
            permanent: false,
        }
    }
}

/// An attempt the guard refused. The receiver's owner reads the code and
/// the guard's message for users, the same whether the name resolved to a
/// forbidden address or did not resolve (so targets cannot be used to map
/// internal names); the operator's log gets the detail.
fn refused(started: Instant, blocked: &Blocked) -> Attempt {
    tracing::info!(detail = %blocked.detail(), "the egress guard refused a notification target");
    Attempt {
        status: None,
        latency: started.elapsed(),
        delivered: false,
        error: Some(refusal_message(blocked)),
        excerpt: None,
        permanent: true,
    }
}

/// How a refused delivery reads in its attempt log:
/// `target_blocked: <the guard's message>`.
pub fn refusal_message(blocked: &Blocked) -> String {
    format!("{}: {blocked}", blocked.code())
}

fn failure(started: Instant, err: &reqwest::Error) -> Attempt {
    let (error, permanent) = match find_refusal(err) {
        Some(Refusal::Blocked(blocked)) => return refused(started, &blocked),
        Some(Refusal::TooManyRedirects(too_many)) => (too_many.to_string(), true),
        Some(Refusal::Denied(denied)) => (denied.to_string(), true),
        None if err.is_timeout() => ("the receiver did not answer in time".to_owned(), false),
        None if err.is_connect() => ("could not connect to the receiver".to_owned(), false),
        None => (format!("the request failed: {err}"), false),
    };
    Attempt {
        status: None,
        latency: started.elapsed(),
        delivered: false,
        error: Some(error),
        excerpt: None,
        permanent,
    }
}

/// The first bytes of an answer as text, reading no more than needed.
async fn excerpt(response: reqwest::Response) -> Option<String> {
    let mut kept = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = MAX_EXCERPT_BYTES - kept.len();
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if kept.len() >= MAX_EXCERPT_BYTES {
            break;
        }
    }
    if kept.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&kept);
    Some(
        text.chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect(),
    )
}
