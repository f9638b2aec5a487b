//! [`Blocked`]: the guard's refusal, with two faces.
//!
//! Its `Display` is the message a user sees on the job. For every refusal
//! that depends on DNS or addresses it reads the same (`the host is not
//! public or does not resolve`), whether the name resolved to a forbidden
//! address, resolved to nothing, or named a forbidden address literally, so
//! no user can map internal names to addresses through Accord's errors.
//! [`Blocked::detail`] is the operator's side: what the name resolved to and
//! why that was refused, for logs only.

use std::fmt;

use accord_model::ErrorKind;

use crate::address::RefusedAddress;
use crate::host::HostError;

/// A target the guard refused. Always a permanent failure, code
/// [`Blocked::CODE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The host as the URL names it (never its userinfo), or the whole URL
    /// when its scheme is refused.
    target: String,
    reason: BlockReason,
}

/// Why a target was refused; shown to operators, never to users.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockReason {
    /// A scheme the guard never fetches.
    Scheme {
        scheme: String,
        allowed: &'static str,
    },
    /// The host does not parse.
    Host(HostError),
    /// The URL names a forbidden address literally.
    Literal(RefusedAddress),
    /// At least one answer for the name is forbidden (`of` answers in all).
    Resolved {
        refused: Vec<RefusedAddress>,
        of: usize,
    },
    /// The name did not resolve.
    Unresolved(String),
    /// A connection ended up at a forbidden address.
    Peer(RefusedAddress),
    /// A response did not say where it came from, so it cannot be trusted.
    UnknownPeer,
}

impl Blocked {
    /// The stable machine code of every refusal.
    pub const CODE: &'static str = "target_blocked";

    pub(crate) fn new(target: impl Into<String>, reason: BlockReason) -> Self {
        Self {
            target: target.into(),
            reason,
        }
    }

    /// The stable machine code, [`Blocked::CODE`].
    pub fn code(&self) -> &'static str {
        Self::CODE
    }

    /// A refused target stays refused: never worth another attempt.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Permanent
    }

    /// The host (or, for a refused scheme, the URL) that was refused.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn reason(&self) -> &BlockReason {
        &self.reason
    }

    /// What the operator's log may say: addresses, classes, resolver errors.
    pub fn detail(&self) -> Detail<'_> {
        Detail(self)
    }
}

impl std::error::Error for Blocked {}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            BlockReason::Scheme { scheme, allowed } => write!(
                f,
                "refused {}: scheme `{scheme}` is not allowed; only {allowed} are",
                self.target
            ),
            BlockReason::Host(err) => write!(f, "refused {}: {err}", self.target),
            BlockReason::Literal(_)
            | BlockReason::Resolved { .. }
            | BlockReason::Unresolved(_)
            | BlockReason::Peer(_)
            | BlockReason::UnknownPeer => write!(
                f,
                "refused target {}: the host is not public or does not resolve",
                self.target
            ),
        }
    }
}

/// The operator's view of a [`Blocked`]; see [`Blocked::detail`].
#[derive(Debug, Clone, Copy)]
pub struct Detail<'a>(&'a Blocked);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = &self.0.target;
        match &self.0.reason {
            BlockReason::Scheme { scheme, .. } => write!(f, "{target}: scheme `{scheme}`"),
            BlockReason::Host(err) => write!(f, "{target}: {err}"),
            BlockReason::Literal(address) => write!(f, "{target} names {address}"),
            BlockReason::Resolved { refused, of } => {
                write!(f, "{target} resolves to ")?;
                for (i, address) in refused.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{address}")?;
                }
                let refused = refused.len();
                write!(f, " ({refused} of {of} answers refused)")
            }
            BlockReason::Unresolved(err) => write!(f, "{target} does not resolve: {err}"),
            BlockReason::Peer(address) => write!(f, "{target}: connected to {address}"),
            BlockReason::UnknownPeer => write!(f, "{target}: the peer address is unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::classify_ip;

    fn refused(ip: &str) -> RefusedAddress {
        let ip = ip.parse().unwrap();
        RefusedAddress {
            ip,
            class: classify_ip(ip),
        }
    }

    /// The user's message and the operator's detail of one refusal.
    fn check(blocked: Blocked, user: &str, operator: &str) {
        assert_eq!(blocked.to_string(), user);
        assert_eq!(blocked.detail().to_string(), operator);
        assert_eq!(blocked.code(), "target_blocked");
        assert_eq!(blocked.kind(), ErrorKind::Permanent);
    }

    #[test]
    fn users_cannot_tell_forbidden_from_unresolved() {
        let same = "refused target intranet.corp: the host is not public or does not resolve";
        check(
            Blocked::new(
                "intranet.corp",
                BlockReason::Resolved {
                    refused: vec![refused("10.0.0.5")],
                    of: 2,
                },
            ),
            same,
            "intranet.corp resolves to 10.0.0.5 (private) (1 of 2 answers refused)",
        );
        check(
            Blocked::new(
                "intranet.corp",
                BlockReason::Unresolved("no address".to_owned()),
            ),
            same,
            "intranet.corp does not resolve: no address",
        );
        check(
            Blocked::new("intranet.corp", BlockReason::Peer(refused("127.0.0.1"))),
            same,
            "intranet.corp: connected to 127.0.0.1 (loopback)",
        );
        check(
            Blocked::new("10.0.0.1", BlockReason::Literal(refused("10.0.0.1"))),
            "refused target 10.0.0.1: the host is not public or does not resolve",
            "10.0.0.1 names 10.0.0.1 (private)",
        );
        check(
            Blocked::new(
                "file:///etc/passwd",
                BlockReason::Scheme {
                    scheme: "file".to_owned(),
                    allowed: "http and https",
                },
            ),
            "refused file:///etc/passwd: scheme `file` is not allowed; only http and https are",
            "file:///etc/passwd: scheme `file`",
        );
    }
}
