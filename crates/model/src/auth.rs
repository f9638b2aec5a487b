//! Who may do what: workspaces, API keys and their roles, the token format,
//! the permissions each role grants, and audit log entries.
//!
//! Parsing and checking only. Generating secrets and hashing them happens in
//! the API crate; storing them in the store crate.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{IdError, WorkspaceId};

/// What a key may do. Roles do not nest with `worker`: a worker key speaks
/// only the worker protocol, and no other key may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything an operator may do, plus keys, the audit log and (in the
    /// default workspace) workspaces and instance metrics.
    Admin,
    /// Jobs: submit, cancel, retry, and read everything a viewer reads.
    Operator,
    /// Read only (in the default workspace, metrics and status too).
    Viewer,
    /// Only the worker protocol (claim, heartbeat, complete, fail, release).
    Worker,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Worker => "worker",
        }
    }

    /// Whether this role grants the permission (workspace aside).
    pub fn grants(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => !matches!(permission, P::WorkerProtocol),
            Role::Operator => matches!(permission, P::JobsRead | P::JobsWrite | P::InstanceRead),
            Role::Viewer => matches!(permission, P::JobsRead | P::InstanceRead),
            Role::Worker => matches!(permission, P::WorkerProtocol),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| IdError::Invalid {
                kind: "role",
                reason: format!("{s:?} is not one of admin, operator, viewer, worker"),
            })
    }
}

/// What a route requires. Each route of the API maps to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Read jobs, their events and queue statistics of the key's workspace.
    JobsRead,
    /// Submit, cancel and requeue jobs.
    JobsWrite,
    /// Claim and report jobs (worker processes).
    WorkerProtocol,
    /// Create, list and revoke the workspace's API keys.
    KeysManage,
    /// Read the workspace's audit log.
    AuditRead,
    /// List workspaces (a workspace admin sees its own).
    WorkspacesRead,
    /// Create workspaces; instance-wide, so only admins of the default workspace.
    WorkspacesManage,
    /// Metrics and operational status across workspaces; admins of the default workspace.
    InstanceRead,
}

impl Permission {
    /// Permissions that reach beyond one workspace: only keys of the
    /// default workspace may hold them.
    pub fn is_instance_wide(self) -> bool {
        matches!(
            self,
            Permission::WorkspacesManage | Permission::InstanceRead
        )
    }
}

/// Which workspaces' jobs a worker key may claim and report: a worker key
/// of the default workspace serves every workspace (the shared pool), any
/// other serves only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerScope {
    AllWorkspaces,
    Workspace(WorkspaceId),
}

impl WorkerScope {
    pub fn for_workspace(workspace: WorkspaceId) -> Self {
        if workspace == WorkspaceId::DEFAULT {
            WorkerScope::AllWorkspaces
        } else {
            WorkerScope::Workspace(workspace)
        }
    }

    /// The one workspace, or `None` for all.
    pub fn workspace(self) -> Option<WorkspaceId> {
        match self {
            WorkerScope::AllWorkspaces => None,
            WorkerScope::Workspace(id) => Some(id),
        }
    }
}

/// The public part of an API key: 16 characters of `[a-z0-9]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z0-9]{16}$", example = "k3x9q2m4v8w1z7ab")]
pub struct ApiKeyId(String);

impl ApiKeyId {
    pub const LEN: usize = 16;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ApiKeyId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == Self::LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Invalid {
                kind: "API key id",
                reason: format!("{s:?} is not {} characters of a-z and 0-9", ApiKeyId::LEN),
            })
        }
    }
}

impl TryFrom<String> for ApiKeyId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ApiKeyId> for String {
    fn from(id: ApiKeyId) -> Self {
        id.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole API key as presented by a client: `acc_<id>_<secret>`. Its
/// `Debug` output hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: ApiKeyId,
    secret: String,
}

impl ApiToken {
    pub const PREFIX: &'static str = "acc_";
    pub const SECRET_LEN: usize = 43;

    /// Builds a token from a freshly generated id and secret.
    pub fn new(id: ApiKeyId, secret: String) -> Result<Self, IdError> {
        check_secret(&secret)?;
        Ok(Self { id, secret })
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The full text to hand to the user, once.
    pub fn reveal(&self) -> String {
        format!("{}{}_{}", Self::PREFIX, self.id, self.secret)
    }
}

fn check_secret(secret: &str) -> Result<(), IdError> {
    if secret.len() == ApiToken::SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(IdError::Invalid {
            kind: "API key",
            reason: "malformed secret".to_owned(),
        })
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}{}_<redacted>)", Self::PREFIX, self.id)
    }
}

impl FromStr for ApiToken {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || IdError::Invalid {
            kind: "API key",
            reason: "expected acc_<id>_<secret>".to_owned(),
        };
        let rest = s.strip_prefix(Self::PREFIX).ok_or_else(malformed)?;
        let (id, secret) = rest.split_once('_').ok_or_else(malformed)?;
        let id = id.parse().map_err(|_| malformed())?;
        check_secret(secret).map_err(|_| malformed())?;
        Ok(Self {
            id,
            secret: secret.to_owned(),
        })
    }
}

/// A workspace: the unit of isolation. Every job, key and audit entry
/// belongs to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/workspaces`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// 1 to 64 characters of `[A-Za-z0-9._-]`, unique.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
}

/// Checks a workspace name: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn check_workspace_name(name: &str) -> Result<(), IdError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdError::Invalid {
            kind: "workspace name",
            reason: format!("{name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'"),
        })
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// 1 to 1,000,000.
    pub burst: u32,
    /// Tokens added per second; more than 0, at most 1,000,000.
    pub per_second: f64,
}

impl RateLimit {
    pub fn check(&self) -> Result<(), String> {
        if !(1..=1_000_000).contains(&self.burst) {
            return Err("rate_limit.burst must be between 1 and 1000000".to_owned());
        }
        if !(self.per_second > 0.0 && self.per_second <= 1_000_000.0) {
            return Err("rate_limit.per_second must be above 0 and at most 1000000".to_owned());
        }
        Ok(())
    }
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub role: Role,
    /// This key's own rate limit; absent means the role's default.
    pub rate_limit: Option<RateLimit>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key may be used at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// `POST /api/v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What the key is for, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub role: Role,
    /// The workspace the key acts in (its id or name). Default: the
    /// caller's workspace. Only admins of the default workspace may name another.
    #[serde(default)]
    pub workspace: Option<String>,
    /// When the key stops working.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Overrides the role's default rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// The answer to `POST /api/v1/keys`: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// `acc_<id>_<secret>`; send as `Authorization: Bearer …`. Store it now:
    /// only its hash is kept.
    pub token: String,
}

/// A page of keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKey>,
}

/// A page of workspaces.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceList {
    pub items: Vec<Workspace>,
}

/// How a recorded call ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// 2xx.
    Success,
    /// No key, a bad, revoked or expired key (401).
    Unauthenticated,
    /// A valid key without the permission (403).
    Forbidden,
    /// Refused by the rate limit (429).
    RateLimited,
    /// Any other 4xx: the request was invalid or its target missing.
    Rejected,
    /// 5xx.
    Failed,
}

impl AuditOutcome {
    pub const ALL: [AuditOutcome; 6] = [
        AuditOutcome::Success,
        AuditOutcome::Unauthenticated,
        AuditOutcome::Forbidden,
        AuditOutcome::RateLimited,
        AuditOutcome::Rejected,
        AuditOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Unauthenticated => "unauthenticated",
            AuditOutcome::Forbidden => "forbidden",
            AuditOutcome::RateLimited => "rate_limited",
            AuditOutcome::Rejected => "rejected",
            AuditOutcome::Failed => "failed",
        }
    }

    pub fn from_status(status: u16) -> Self {
        match status {
            200..=399 => AuditOutcome::Success,
            401 => AuditOutcome::Unauthenticated,
            403 => AuditOutcome::Forbidden,
            429 => AuditOutcome::RateLimited,
            400..=499 => AuditOutcome::Rejected,
            _ => AuditOutcome::Failed,
        }
    }
}

impl FromStr for AuditOutcome {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditOutcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == s)
            .ok_or_else(|| IdError::Invalid {
                kind: "audit outcome",
                reason: format!("{s:?} is not a known outcome"),
            })
    }
}

/// One audit record, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub workspace_id: WorkspaceId,
    pub at: DateTime<Utc>,
    /// The key that made the call; absent when no valid key was presented.
    pub key_id: Option<ApiKeyId>,
    pub role: Option<Role>,
    /// The operation, e.g. `create_job` (the OpenAPI operation id), or
    /// `authenticate` for a refused key on an unknown route.
    pub action: String,
    /// The method and path template, e.g. `POST /api/v1/jobs/{id}/cancel`.
    pub route: String,
    /// The id the call acted on, when there is one.
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub status: u16,
    pub client_addr: Option<String>,
    /// Why it was refused, for failures; never a secret.
    pub detail: Option<String>,
}

/// An audit record as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Increases with time; use as `before` to page back.
    pub id: i64,
    pub workspace_id: WorkspaceId,
    pub at: DateTime<Utc>,
    pub key_id: Option<ApiKeyId>,
    pub role: Option<Role>,
    pub action: String,
    pub route: String,
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub status: u16,
    pub client_addr: Option<String>,
    pub detail: Option<String>,
}

/// A page of audit entries, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_hide_their_secret() {
        let secret = "a".repeat(ApiToken::SECRET_LEN);
        let text = format!("acc_0123456789abcdef_{secret}");
        let token: ApiToken = text.parse().unwrap();
        assert_eq!(token.id.as_str(), "0123456789abcdef");
        assert_eq!(token.secret(), secret);
        assert_eq!(token.reveal(), text);
        assert!(!format!("{token:?}").contains(&secret));
        for bad in [
            "",
            "acc_",
            "acc_0123456789abcdef",
            "acc_0123456789abcdef_",
            "acc_0123456789ABCDEF_aaaa",
            &format!("xyz_0123456789abcdef_{secret}"),
            &format!("acc_0123456789abcdef_{secret}x"),
            &format!("acc_0123456789abcde_{secret}"),
            &format!(
                "acc_0123456789abcdef_{}!",
                "a".repeat(ApiToken::SECRET_LEN - 1)
            ),
        ] {
            assert!(bad.parse::<ApiToken>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn roles_grant_what_the_matrix_says() {
        use Permission as P;
        let all = [
            P::JobsRead,
            P::JobsWrite,
            P::WorkerProtocol,
            P::KeysManage,
            P::AuditRead,
            P::WorkspacesRead,
            P::WorkspacesManage,
            P::InstanceRead,
        ];
        let granted = |role: Role| -> Vec<P> {
            all.into_iter()
                .filter(|permission| role.grants(*permission))
                .collect()
        };
        assert_eq!(granted(Role::Worker), vec![P::WorkerProtocol]);
        assert_eq!(granted(Role::Viewer), vec![P::JobsRead, P::InstanceRead]);
        assert_eq!(
            granted(Role::Operator),
            vec![P::JobsRead, P::JobsWrite, P::InstanceRead]
        );
        assert_eq!(granted(Role::Admin).len(), all.len() - 1);
        assert!(!Role::Admin.grants(P::WorkerProtocol));
    }

    #[test]
    fn outcomes_follow_the_status() {
        assert_eq!(AuditOutcome::from_status(201), AuditOutcome::Success);
        assert_eq!(
            AuditOutcome::from_status(401),
            AuditOutcome::Unauthenticated
        );
        assert_eq!(AuditOutcome::from_status(403), AuditOutcome::Forbidden);
        assert_eq!(AuditOutcome::from_status(404), AuditOutcome::Rejected);
        assert_eq!(AuditOutcome::from_status(429), AuditOutcome::RateLimited);
        assert_eq!(AuditOutcome::from_status(503), AuditOutcome::Failed);
        for outcome in AuditOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<AuditOutcome>().unwrap(), outcome);
        }
    }

    #[test]
    fn workspace_names() {
        assert!(check_workspace_name("team-a.prod_1").is_ok());
        for bad in ["", "a b", "ü", &"x".repeat(65)] {
            assert!(check_workspace_name(bad).is_err(), "{bad:?}");
        }
    }
}
