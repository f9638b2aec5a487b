//! `EgressPolicy`: which addresses the jobs of this deployment may reach.
//! One value, set once by the operator, passed to the queue (which refuses
//! literal non-public targets at submission) and to the engine (which
//! checks every address it connects to).
//!
//! Deliberately only the switch: the address table is `classify_ip`
//! (`target.rs`), the checks live with the queue and the engine.

use serde::{Deserialize, Serialize};

/// Which targets jobs may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EgressPolicy {
    /// Public addresses only: loopback, private, link-local, metadata and
    /// the other non-public ranges are refused. The production setting.
    #[default]
    PublicOnly,
    /// Any address, private ones included: for tests and local demos only,
    /// since a job could then reach anything on the worker's network.
    AllowPrivate,
}

impl EgressPolicy {
    /// `AllowPrivate` when `allow` (the operator's switch), else `PublicOnly`.
    pub fn from_allow_private(allow: bool) -> Self {
        if allow {
            Self::AllowPrivate
        } else {
            Self::PublicOnly
        }
    }

    pub fn allows_private(self) -> bool {
        matches!(self, Self::AllowPrivate)
    }
}
