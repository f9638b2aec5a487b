//! Who is calling and what they may do: API keys checked on every route
//! that is not public, roles and workspaces enforced from one route table,
//! per-key rate limits, and the audit record of what was done.
//!
//! Does not decide what a route does once it is allowed: handlers read the
//! caller ([`Caller`]) and act within its workspace.

mod caller;
mod guard;
mod limits;
mod policy;
mod token;

pub use caller::{Caller, Workspace};
pub(crate) use guard::guard;
pub use guard::{AuditDetail, AuditTarget};
pub use limits::RoleLimits;
pub(crate) use policy::{access as access_of, Access, RouteTable};
pub use token::{hash_secret, new_token};
