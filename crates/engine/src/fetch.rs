//! Fetching one URL for a step, through the SSRF guard: the request, its
//! redirects and the body up to a size cap, within a timeout, with every
//! failure classified where it arises (network trouble, timeouts, 429 and
//! 5xx are retryable; refused targets, redirect loops, oversized bodies and
//! the other error statuses a step cannot use are permanent). The
//! exchange is recorded into the captures that want it.
//!
//! Deliberately does not parse what it fetched (the page steps do) nor
//! decide what a status means for a page (the caller's [`Accept`] says).

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_model::TargetUrl;
use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode};
use url::Url;

use crate::capture::{ActiveCapture, Exchange, Header};
use crate::{EngineBuildError, EngineConfig, StepFailure};
use accord_egress::http_client::{
    find_refusal, per_request_redirect_policy, send_with_hops, GuardedResolve, Refusal,
};
use accord_egress::{Blocked, Guard, GuardConfig, HopPolicy, Resolver};

use crate::JobEgress;

/// The HTTP client of an engine and the guard around it. Cheap to clone;
/// clones share one connection pool.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    guard: Guard,
    /// A job's domain policies, asked about every URL fetched (its
    /// redirects too); only on a fetcher made for one job.
    hops: Option<Arc<dyn HopPolicy>>,
    /// Sent on every request (the one request header we set), so captures
    /// can say so.
    user_agent: HeaderValue,
}

/// Which statuses a fetch hands back rather than failing on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    /// A page: anything but 429 and 5xx (which are retryable failures),
    /// or even those when the step keeps error pages.
    Page { error_status: bool },
    /// A file: only 2xx. 429 and 5xx fail retryably, the rest permanently.
    File,
}

impl Accept {
    fn takes(self, status: StatusCode) -> bool {
        match self {
            Self::Page { error_status } => {
                error_status
                    || !(status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
            }
            Self::File => status.is_success(),
        }
    }
}

/// How one fetch is bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchRules {
    pub(crate) accept: Accept,
    /// Largest body kept; a bigger one fails the step.
    pub(crate) max_body_bytes: u64,
    /// Longest the whole fetch (request, redirects, body) may take.
    pub(crate) timeout: Duration,
}

/// A response a step can use.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: u16,
    pub(crate) final_url: Url,
    /// The `Content-Type` header, when it is sane text.
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) elapsed: Duration,
}

/// Longest `Content-Type` kept for an artifact.
const MAX_CONTENT_TYPE_LEN: usize = 255;

impl Fetcher {
    /// A fetcher whose guard resolves names with `resolver`.
    pub(crate) fn new(
        config: &EngineConfig,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, EngineBuildError> {
        let guard = Guard::with_resolver(
            GuardConfig {
                policy: config.egress,
                allow: config.allow_targets.clone(),
                connect_timeout: config.connect_timeout,
            },
            resolver,
        );
        Self::build(config, guard, None)
    }

    /// A fetcher for one job: its policies decide every hop, and when they
    /// grant networks to some hosts its guard admits those too. Only then
    /// does it get a client of its own, because reqwest's resolver is per
    /// client (and pooled connections vetted by that guard must not serve
    /// another job's hosts); otherwise it shares this fetcher's client,
    /// whose redirect policy asks each request's own hops.
    pub(crate) fn for_job(
        &self,
        config: &EngineConfig,
        egress: &JobEgress,
    ) -> Result<Self, EngineBuildError> {
        match &egress.hosts {
            Some(hosts) => Self::build(
                config,
                self.guard.with_host_allow(hosts.clone()),
                egress.hops.clone(),
            ),
            None => Ok(Self {
                hops: egress.hops.clone(),
                ..self.clone()
            }),
        }
    }

    fn build(
        config: &EngineConfig,
        guard: Guard,
        hops: Option<Arc<dyn HopPolicy>>,
    ) -> Result<Self, EngineBuildError> {
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| EngineBuildError::UserAgent(config.user_agent.clone()))?;
        let client = reqwest::Client::builder()
            .user_agent(user_agent.clone())
            // A proxy would connect on our behalf to addresses the guard never sees.
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            // Names resolve once, through the guard: the client dials only
            // the addresses it vetted.
            .dns_resolver(Arc::new(GuardedResolve::new(guard.clone())))
            // Every hop is checked by the guard, then by the hops of the
            // request's own job (see `fetch`).
            .redirect(per_request_redirect_policy(
                guard.clone(),
                config.max_redirects,
            ))
            .build()
            .map_err(EngineBuildError::Client)?;
        Ok(Self {
            client,
            guard,
            hops,
            user_agent,
        })
    }

    /// GETs `url` under `rules`, recording the exchange into every capture
    /// in `captures` that wants it (also when the status fails the step).
    pub(crate) async fn fetch(
        &self,
        url: &TargetUrl,
        rules: FetchRules,
        captures: &mut [ActiveCapture],
    ) -> Result<Fetched, StepFailure> {
        let url = url.as_url();
        self.guard.check_url(url).inspect_err(|blocked| {
            tracing::info!(detail = %blocked.detail(), "the SSRF guard refused a target");
        })?;
        if let Some(hops) = &self.hops {
            hops.check(url)
                .map_err(|denied| StepFailure::PolicyDenied(denied.to_string()))?;
        }
        let started = Instant::now();
        let work = async {
            let response = send_with_hops(self.hops.clone(), self.client.get(url.clone()).send())
                .await
                .map_err(|err| self.send_failure(url, err))?;
            self.guard
                .check_peer(response.url(), response.remote_addr())?;
            let status = response.status();
            if status.is_redirection() {
                check_unfollowed_redirect(&self.guard, &response)?;
            }
            let final_url = response.url().clone();
            let content_type = content_type(response.headers());
            let response_retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let wanting: Vec<usize> = captures
                .iter()
                .enumerate()
                .filter(|(_, capture)| capture.wants(url.as_str(), Some(final_url.as_str())))
                .map(|(at, _)| at)
                .collect();
            // Built before the body is read, which consumes the response.
            let exchange = (!wanting.is_empty())
                .then(|| self.exchange(url, status, &final_url, response.headers()));
            if !rules.accept.takes(status) {
                if let Some(exchange) = &exchange {
                    // The evidence of the failure: as much body as a capture keeps.
                    let cap = wanting
                        .iter()
                        .map(|&at| u64::from(captures[at].capture.max_body_bytes))
                        .max()
                        .unwrap_or(0);
                    let (prefix, more) = read_prefix(response, cap).await;
                    for &at in &wanting {
                        captures[at].record(exchange, Some((&prefix, more)));
                    }
                }
                return Err(StepFailure::ErrorStatus {
                    status: status.as_u16(),
                    url: final_url.to_string(),
                    retry_after: retry_after(response_retry_after),
                });
            }
            let body = read_body(response, rules.max_body_bytes).await?;
            if let Some(exchange) = &exchange {
                for &at in &wanting {
                    captures[at].record(exchange, Some((&body, false)));
                }
            }
            Ok(Fetched {
                status: status.as_u16(),
                content_type,
                final_url,
                body,
                elapsed: started.elapsed(),
            })
        };
        match tokio::time::timeout(rules.timeout, work).await {
            Ok(fetched) => fetched,
            Err(_elapsed) => Err(StepFailure::Timeout {
                after: rules.timeout,
                url: url.to_string(),
            }),
        }
    }

    /// The exchange as a capture records it (its body is added per capture).
    fn exchange(
        &self,
        url: &Url,
        status: StatusCode,
        final_url: &Url,
        headers: &HeaderMap,
    ) -> Exchange {
        Exchange {
            method: "GET".to_owned(),
            url: url.to_string(),
            request_headers: Header::filter([("user-agent", self.user_agent.as_bytes())]),
            status: status.as_u16(),
            response_url: (final_url != url).then(|| final_url.to_string()),
            response_headers: Header::filter(
                headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_bytes())),
            ),
            body: None,
        }
    }

    /// Classifies a failed request: refusals by the guard and redirect loops
    /// are permanent and travel as the error's source; the rest is network
    /// trouble worth retrying (DNS failures, refused or reset connections).
    fn send_failure(&self, url: &Url, err: reqwest::Error) -> StepFailure {
        match find_refusal(&err) {
            Some(Refusal::Blocked(blocked)) => {
                tracing::info!(detail = %blocked.detail(), "the SSRF guard refused a target");
                return StepFailure::Refused(blocked);
            }
            Some(Refusal::TooManyRedirects(too_many)) => {
                return StepFailure::TooManyRedirects {
                    max: too_many.max,
                    url: url.to_string(),
                };
            }
            Some(Refusal::Denied(denied)) => {
                tracing::info!(reason = %denied, "a domain policy refused a redirect");
                return StepFailure::PolicyDenied(denied.to_string());
            }
            None => {}
        }
        StepFailure::Network {
            url: url.to_string(),
            detail: describe(err),
        }
    }
}

/// The `Content-Type` header when it is short printable text.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?.trim();
    (!value.is_empty() && value.len() <= MAX_CONTENT_TYPE_LEN).then(|| value.to_owned())
}

/// Refuses a redirect response the client did not follow because its target
/// is not an http(s) URL (the client only hands http-like targets to the
/// redirect policy). Other unfollowed redirects are simply the response.
fn check_unfollowed_redirect(guard: &Guard, response: &Response) -> Result<(), Blocked> {
    let target = response
        .headers()
        .get(LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| response.url().join(location).ok());
    match target {
        Some(target) => guard.check_url(&target).map(drop),
        None => Ok(()),
    }
}

/// Reads the body, failing as soon as it would pass `limit` bytes.
async fn read_body(mut response: Response, limit: u64) -> Result<Bytes, StepFailure> {
    let too_large = |response: &Response| StepFailure::BodyTooLarge {
        limit,
        url: response.url().to_string(),
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > limit {
        return Err(too_large(&response));
    }
    // Trust the announced length only as far as the limit for preallocation,
    // and preallocate no more than a page's worth: a file's chunks follow.
    let mut body =
        BytesMut::with_capacity(usize::try_from(announced.min(16 * 1024 * 1024)).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(|err| StepFailure::Network {
        url: response.url().to_string(),
        detail: describe(err),
    })? {
        if u64::try_from(body.len() + chunk.len()).unwrap_or(u64::MAX) > limit {
            return Err(too_large(&response));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The first `limit` bytes of the body, and whether there was more. A body
/// that breaks off is kept as far as it came.
async fn read_prefix(mut response: Response, limit: u64) -> (Vec<u8>, bool) {
    let mut prefix = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(prefix.len());
        if chunk.len() > room {
            prefix.extend_from_slice(&chunk[..room]);
            return (prefix, true);
        }
        prefix.extend_from_slice(&chunk);
    }
    (prefix, false)
}

/// A reqwest error and its causes as one line, without the URL (the step's
/// message names it already).
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

/// A `Retry-After` value (delta-seconds or an HTTP date) as a wait from
/// now; `None` when it is absent, malformed or already past.
pub(crate) fn retry_after(value: Option<String>) -> Option<Duration> {
    let value = value?;
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    wait.to_std().ok().filter(|wait| !wait.is_zero())
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(Some("2".into())), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(Some(" 120 ".into())),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(None), None);
        assert_eq!(retry_after(Some("soon".into())), None);
        assert_eq!(retry_after(Some("-5".into())), None);
        assert_eq!(
            retry_after(Some("Sun, 06 Nov 1994 08:49:37 GMT".into())),
            None
        );
        let later = (chrono::Utc::now() + chrono::TimeDelta::seconds(90)).to_rfc2822();
        let wait = retry_after(Some(later)).expect("a future date");
        assert!((85..=90).contains(&wait.as_secs()), "{wait:?}");
    }
}
