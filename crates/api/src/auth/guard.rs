//! The guard every API route passes through: find the route's rule,
//! authenticate the key, check role and workspace, take a rate-limit token,
//! run the handler, and record the call in the audit log.

use std::net::{IpAddr, SocketAddr};

use accord_model::{ApiToken, AuditOutcome, NewAuditEntry, Permission};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::caller::Caller;
use super::limits::{bucket, set_headers};
use super::policy::{Access, Route};
use super::token::secret_matches;
use crate::{ApiError, ApiState};

/// Set by handlers on their response to name what they created (a new
/// job's id, say), for the audit log.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// Set on an error response whose audit entry should say more than its
/// status (which policy refused what).
#[derive(Debug, Clone)]
pub struct AuditDetail(pub String);

pub(crate) async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| state.routes.get(request.method(), path.as_str()));
    let Some(route) = route else {
        // Every served route is in the table; this is a bug, so refuse.
        tracing::error!(path = %request.uri().path(), "no access rule for a served route");
        return ApiError::Forbidden("this route has no access rule".to_owned()).into_response();
    };
    let permission = match route.access {
        Access::Requires(permission) => permission,
        Access::Public => return next.run(request).await,
        Access::FeedToken => return super::feed::feed_guard(&state, request, next).await,
    };
    let call = Call {
        route,
        client: client_addr(&request),
        target: path_target(&request, route),
    };

    let caller = match authenticate(&state, request.headers()).await {
        Ok(caller) => caller,
        Err(refusal) => return refuse_unauthenticated(&state, &call, refusal).await,
    };
    if !caller.may(permission) {
        let err = ApiError::Forbidden(forbidden_reason(&caller, permission));
        state
            .audit
            .record(call.entry(&state, Some(&caller), 403, Some(err.to_string())))
            .await;
        return err.into_response();
    }

    let decision = state
        .cluster
        .limiter()
        .check(&format!("key:{}", caller.key_id), bucket(caller.rate_limit))
        .await;
    if !decision.allowed {
        let mut response = ApiError::RateLimited(decision.retry_after).into_response();
        set_headers(response.headers_mut(), &decision);
        return response;
    }

    state.audit.used(&caller.key_id, state.queue.now());
    let mut request = request;
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    set_headers(response.headers_mut(), &decision);
    if route.audited {
        let created = response
            .extensions()
            .get::<AuditTarget>()
            .map(|target| target.0.clone());
        let status = response.status().as_u16();
        let detail = match response.extensions().get::<AuditDetail>() {
            Some(detail) => Some(format!("{}: {}", response.status(), detail.0)),
            None => (status >= 400).then(|| response.status().to_string()),
        };
        let mut entry = call.entry(&state, Some(&caller), status, detail);
        entry.target = entry.target.or(created);
        state.audit.record(entry).await;
    }
    response
}

/// What the audit log needs of a request, taken before it is consumed.
struct Call<'a> {
    route: &'a Route,
    client: Option<IpAddr>,
    target: Option<String>,
}

impl Call<'_> {
    fn entry(
        &self,
        state: &ApiState,
        caller: Option<&Caller>,
        status: u16,
        detail: Option<String>,
    ) -> NewAuditEntry {
        NewAuditEntry {
            workspace_id: caller.map_or(accord_model::WorkspaceId::DEFAULT, |c| c.workspace),
            at: state.queue.now(),
            key_id: caller.map(|c| c.key_id.clone()),
            role: caller.map(|c| c.role),
            action: self.route.operation_id.clone(),
            route: self.route.label.clone(),
            target: self.target.clone(),
            outcome: AuditOutcome::from_status(status),
            status,
            client_addr: self.client.map(|ip| ip.to_string()),
            detail,
        }
    }
}

/// Why a request could not be authenticated. A key that exists but is
/// revoked or expired belongs to a workspace, which is where its failure is recorded.
struct Refusal {
    error: ApiError,
    workspace: Option<accord_model::WorkspaceId>,
    key_id: Option<accord_model::ApiKeyId>,
}

impl Refusal {
    fn anonymous(message: &str) -> Self {
        Self {
            error: ApiError::Unauthenticated(message.to_owned()),
            workspace: None,
            key_id: None,
        }
    }
}

async fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        Refusal::anonymous("missing API key: send Authorization: Bearer acc_<id>_<secret>")
    })?;
    let text = header
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
        .ok_or_else(|| {
            Refusal::anonymous("the Authorization header must be `Bearer acc_<id>_<secret>`")
        })?;
    let token: ApiToken = text
        .parse()
        .map_err(|_| Refusal::anonymous("malformed API key: expected acc_<id>_<secret>"))?;
    let stored = match state.store.api_key_get(&token.id).await {
        Ok(stored) => stored,
        Err(err) if err.is_unavailable() => {
            return Err(Refusal {
                error: ApiError::Unavailable,
                workspace: None,
                key_id: None,
            })
        }
        Err(err) => {
            tracing::error!(error = %err, "looking up an API key failed");
            return Err(Refusal {
                error: ApiError::Internal,
                workspace: None,
                key_id: None,
            });
        }
    };
    // An unknown id and a wrong secret answer alike, so ids cannot be probed.
    let Some(stored) = stored.filter(|stored| secret_matches(&token, &stored.secret_hash)) else {
        return Err(Refusal::anonymous("invalid API key"));
    };
    let key = stored.key;
    let now = state.queue.now();
    let refused = |message: &str| Refusal {
        error: ApiError::Unauthenticated(message.to_owned()),
        workspace: Some(key.workspace_id),
        key_id: Some(key.id.clone()),
    };
    if key.revoked_at.is_some() {
        return Err(refused("this API key has been revoked"));
    }
    if key.expires_at.is_some_and(|expiry| now >= expiry) {
        return Err(refused("this API key has expired"));
    }
    Ok(Caller {
        rate_limit: state.config.rate_limits.for_key(&key),
        key_id: key.id,
        workspace: key.workspace_id,
        role: key.role,
    })
}

/// Records and answers a failed authentication. Failures count against the
/// client address's own bucket; once that is empty the client gets 429 and
/// its attempts stop filling the audit log.
async fn refuse_unauthenticated(state: &ApiState, call: &Call<'_>, refusal: Refusal) -> Response {
    if !matches!(refusal.error, ApiError::Unauthenticated(_)) {
        return refusal.error.into_response();
    }
    if let Some(limited) = count_failure(state, call.client).await {
        return limited;
    }
    let mut entry = call.entry(state, None, 401, Some(refusal.error.to_string()));
    if let Some(workspace) = refusal.workspace {
        entry.workspace_id = workspace;
    }
    entry.key_id = refusal.key_id;
    state.audit.record(entry).await;
    let mut response = refusal.error.into_response();
    response.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Bearer realm=\"accord\""),
    );
    response
}

/// Counts a failed authentication against the client address's bucket:
/// the 429 to answer once it is empty.
pub(super) async fn count_failure(state: &ApiState, client: Option<IpAddr>) -> Option<Response> {
    let address = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let decision = state
        .cluster
        .limiter()
        .check(
            &format!("auth-failures:{address}"),
            bucket(state.config.rate_limits.failed_auth),
        )
        .await;
    if decision.allowed {
        return None;
    }
    let mut response = ApiError::RateLimited(decision.retry_after).into_response();
    set_headers(response.headers_mut(), &decision);
    Some(response)
}

fn forbidden_reason(caller: &Caller, permission: Permission) -> String {
    if caller.role.grants(permission) {
        format!("this needs a {} key of the default workspace", caller.role)
    } else {
        format!("a {} key may not do this", caller.role)
    }
}

pub(super) fn client_addr(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// The `{id}` of the path, if the route has one.
fn path_target(request: &Request, route: &Route) -> Option<String> {
    if !route.label.contains("{id}") || request.method() == Method::GET {
        return None;
    }
    let template: Vec<&str> = route.label.split_once(' ')?.1.split('/').collect();
    let actual: Vec<&str> = request.uri().path().split('/').collect();
    template
        .iter()
        .zip(actual)
        .find(|(segment, _)| **segment == "{id}")
        .map(|(_, value)| value.chars().take(100).collect())
}
