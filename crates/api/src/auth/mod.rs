//! Who is calling and what they may do: API keys checked on every route
//! that is not public, roles and workspaces enforced from one route table,
//! per-key rate limits, and the audit record of what was done; feed routes
//! take a feed token in their path instead of a key.
//!
//! Does not decide what a route does once it is allowed: handlers read the
//! caller ([`Caller`]) and act within its workspace.

mod caller;
mod feed;
mod guard;
mod limits;
mod policy;
mod token;

pub use caller::{Caller, Workspace};
pub use feed::{hash_feed_token, new_feed_token, FeedReader};
pub(crate) use guard::guard;
pub use guard::{AuditDetail, AuditTarget};
pub use limits::RoleLimits;
pub(crate) use policy::{access as access_of, Access, RouteTable};
pub use token::{hash_secret, new_token};
