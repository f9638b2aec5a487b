//! One request through the proxy: `CONNECT` opens a tunnel to the vetted
//! address, an absolute-form `http://` request is forwarded to it. Either
//! way the hook speaks first, then the guard resolves once and the proxy
//! dials what it checked; a refusal is a `403` whose body carries the code
//! and the user's message, and the operator's detail goes to the log.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper_util::rt::TokioIo;
use url::Url;

use super::hook::{HookVerdict, ProxyOutcome, ProxyRequest, RequestKind};
use super::server::Shared;
use super::tunnel::tunnel;
use crate::blocked::Blocked;
use crate::guard::{ConnectError, Connected};
use crate::host::Authority;

pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The code in the body of a `403` the hook asked for.
const POLICY_DENIED: &str = "policy_denied";

/// The upstream connection of the last forwarded request of one browser
/// connection, kept for the next request to the same authority. Requests on
/// one HTTP/1.1 connection come one at a time, so the lock is never
/// contended; it is held only to take or put back the sender.
#[derive(Debug, Clone, Default)]
pub(crate) struct Upstream(Arc<Mutex<Option<Kept>>>);

#[derive(Debug)]
struct Kept {
    authority: Authority,
    addr: SocketAddr,
    sender: client::SendRequest<Incoming>,
}

impl Upstream {
    /// The kept connection, if it goes to `authority` and still works.
    async fn take(
        &self,
        authority: &Authority,
    ) -> Option<(SocketAddr, client::SendRequest<Incoming>)> {
        let kept = self.lock().take()?;
        if kept.authority != *authority {
            return None;
        }
        let mut sender = kept.sender;
        // Waits for the previous response body to finish; fails if the
        // target closed the connection meanwhile.
        sender.ready().await.ok()?;
        Some((kept.addr, sender))
    }

    fn keep(&self, authority: Authority, addr: SocketAddr, sender: client::SendRequest<Incoming>) {
        *self.lock() = Some(Kept {
            authority,
            addr,
            sender,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        // A panic while holding the lock leaves at worst a dropped sender.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    upstream: Upstream,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let response = if request.method() == Method::CONNECT {
        connect(&shared, request).await
    } else {
        forward(&shared, &upstream, request).await
    };
    Ok(response)
}

fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<ProxyBody> {
    let body = Full::new(text.into())
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn connect(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    let Some(target) = request.uri().authority().map(|a| a.as_str().to_owned()) else {
        return plain(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let authority = match Authority::parse(&target) {
        Ok(authority) => authority,
        Err(err) => return plain(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let info = ProxyRequest {
        kind: RequestKind::Connect,
        authority: &authority,
        url: None,
    };
    let connected = match open(shared, &info).await {
        Ok(connected) => connected,
        Err(refusal) => return refusal,
    };
    shared
        .hook
        .record(&info, &ProxyOutcome::Tunnelled(connected.addr));
    let idle = shared.config.idle_timeout;
    let stop = shared.stop.clone();
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                tokio::select! {
                    () = tunnel(TokioIo::new(upgraded), connected.stream, idle) => {}
                    () = stop.cancelled() => {}
                }
            }
            Err(err) => tracing::debug!(error = %err, "CONNECT was not upgraded"),
        }
    });
    Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// Asks the hook, then the guard, then connects to the vetted address; a
/// refusal comes back as the response to send.
async fn open(shared: &Shared, info: &ProxyRequest<'_>) -> Result<Connected, Response<ProxyBody>> {
    if let HookVerdict::Deny(reason) = shared.hook.check(info) {
        return Err(denied(shared, info, &reason));
    }
    connect_checked(shared, info).await
}

fn denied(shared: &Shared, info: &ProxyRequest<'_>, reason: &str) -> Response<ProxyBody> {
    tracing::warn!(target = %info.authority, reason = %reason, "egress proxy denied a request by policy");
    shared.hook.record(info, &ProxyOutcome::Denied(reason));
    let body = format!("{POLICY_DENIED}: the request was denied by policy");
    plain(StatusCode::FORBIDDEN, body)
}

/// Resolves once through the guard and connects to the vetted address.
async fn connect_checked(
    shared: &Shared,
    info: &ProxyRequest<'_>,
) -> Result<Connected, Response<ProxyBody>> {
    match shared.guard.connect(info.authority).await {
        Ok(connected) => Ok(connected),
        Err(ConnectError::Blocked(blocked)) => Err(blocked_response(shared, info, &blocked)),
        Err(err @ ConnectError::Unreachable { .. }) => {
            let detail = err.to_string();
            tracing::info!(target = %info.authority, error = %detail, "egress proxy could not reach a target");
            shared.hook.record(info, &ProxyOutcome::Failed(&detail));
            Err(plain(StatusCode::BAD_GATEWAY, detail))
        }
    }
}

fn blocked_response(
    shared: &Shared,
    info: &ProxyRequest<'_>,
    blocked: &Blocked,
) -> Response<ProxyBody> {
    tracing::warn!(target = %info.authority, detail = %blocked.detail(), "egress proxy refused a target");
    shared.hook.record(info, &ProxyOutcome::Blocked(blocked));
    plain(
        StatusCode::FORBIDDEN,
        format!("{}: {blocked}", Blocked::CODE),
    )
}

async fn forward(
    shared: &Shared,
    upstream: &Upstream,
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    if request.uri().scheme().is_none() {
        return plain(
            StatusCode::BAD_REQUEST,
            "this is a proxy: send absolute-form http:// requests, or CONNECT",
        );
    }
    let url = match Url::parse(&request.uri().to_string()) {
        Ok(url) => url,
        Err(err) => return plain(StatusCode::BAD_REQUEST, format!("invalid URL: {err}")),
    };
    if url.scheme() != "http" {
        return plain(
            StatusCode::BAD_REQUEST,
            "only http:// requests are forwarded; https goes through CONNECT",
        );
    }
    let authority = match Authority::of_url(&url) {
        Ok(authority) => authority,
        Err(err) => return plain(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let info = ProxyRequest {
        kind: RequestKind::Forward,
        authority: &authority,
        url: Some(&url),
    };
    let wants_upgrade = request.headers().contains_key(UPGRADE);
    // The hook decides every request, kept connection or not.
    if let HookVerdict::Deny(reason) = shared.hook.check(&info) {
        return denied(shared, &info, &reason);
    }
    let kept = if wants_upgrade {
        None
    } else {
        upstream.take(&authority).await
    };
    let (addr, mut sender) = match kept {
        Some(kept) => kept,
        None => {
            let connected = match connect_checked(shared, &info).await {
                Ok(connected) => connected,
                Err(refusal) => return refusal,
            };
            let addr = connected.addr;
            let (sender, connection) = match client::handshake(TokioIo::new(connected.stream)).await
            {
                Ok(handshake) => handshake,
                Err(err) => return failed(shared, &info, err.to_string()),
            };
            let stop = shared.stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    done = connection.with_upgrades() => {
                        if let Err(err) = done {
                            tracing::debug!(error = %err, "forwarded connection ended with an error");
                        }
                    }
                    () = stop.cancelled() => {}
                }
            });
            (addr, sender)
        }
    };
    let browser_side = wants_upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers, wants_upgrade);
    // The target sees an origin-form request for the host the URL names,
    // whatever Host header the client sent.
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    parts.uri = match path.parse::<Uri>() {
        Ok(uri) => uri,
        Err(err) => return plain(StatusCode::BAD_REQUEST, format!("invalid path: {err}")),
    };
    parts.version = Version::HTTP_11;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    match HeaderValue::from_str(&host) {
        Ok(host) => parts.headers.insert(HOST, host),
        Err(_) => return plain(StatusCode::BAD_REQUEST, "invalid host"),
    };
    let sent = tokio::time::timeout(
        shared.config.response_timeout,
        sender.send_request(Request::from_parts(parts, body)),
    )
    .await;
    let mut response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => return failed(shared, &info, err.to_string()),
        Err(_elapsed) => {
            let detail = format!("no response within {:?}", shared.config.response_timeout);
            tracing::info!(target = %authority, "egress proxy gave up waiting for a response");
            shared.hook.record(&info, &ProxyOutcome::Failed(&detail));
            return plain(StatusCode::GATEWAY_TIMEOUT, detail);
        }
    };
    let status = response.status();
    if !wants_upgrade {
        upstream.keep(authority.clone(), addr, sender);
    }
    shared.hook.record(
        &info,
        &ProxyOutcome::Forwarded {
            addr,
            status: status.as_u16(),
        },
    );
    let upgraded = status == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(browser_side)) = (upgraded, browser_side) {
        let target_side = hyper::upgrade::on(&mut response);
        let idle = shared.config.idle_timeout;
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            match tokio::try_join!(browser_side, target_side) {
                Ok((browser, target)) => {
                    tokio::select! {
                        () = tunnel(TokioIo::new(browser), TokioIo::new(target), idle) => {}
                        () = stop.cancelled() => {}
                    }
                }
                Err(err) => tracing::debug!(error = %err, "upgrade through the proxy failed"),
            }
        });
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgraded);
    Response::from_parts(parts, body.boxed())
}

fn failed(shared: &Shared, info: &ProxyRequest<'_>, detail: String) -> Response<ProxyBody> {
    tracing::info!(target = %info.authority, error = %detail, "egress proxy request failed");
    shared.hook.record(info, &ProxyOutcome::Failed(&detail));
    plain(StatusCode::BAD_GATEWAY, detail)
}

/// Removes the headers that describe one hop (RFC 9110 section 7.6.1),
/// and those the `Connection` header names; an upgrade keeps its
/// `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if !(keep_upgrade && name == UPGRADE) {
            headers.remove(name);
        }
    }
    for name in [
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(CONNECTION);
        headers.remove(UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_on_their_hop() {
        let check = |pairs: &[(&str, &str)], keep_upgrade: bool, expected: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            strip_hop_by_hop(&mut headers, keep_upgrade);
            let mut got: Vec<(String, String)> = headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                .collect();
            got.sort();
            let want: Vec<(String, String)> = expected
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect();
            assert_eq!(got, want);
        };
        check(
            &[
                ("accept", "*/*"),
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "1"),
                ("proxy-authorization", "Basic Zm9v"),
                ("proxy-connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("upgrade", "websocket"),
            ],
            false,
            &[("accept", "*/*")],
        );
        check(
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-key", "abc"),
            ],
            true,
            &[
                ("connection", "upgrade"),
                ("sec-websocket-key", "abc"),
                ("upgrade", "websocket"),
            ],
        );
    }
}
