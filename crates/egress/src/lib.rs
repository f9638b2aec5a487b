//! Accord's one way out: every connection a worker makes to a target goes
//! through this crate.
//!
//! - [`address`]: which addresses are not public (the model's table) and the
//!   operator's explicit exceptions ([`AllowList`]);
//! - [`host`]: every spelling of a host turned into what a browser would
//!   connect to;
//! - [`guard`]: [`Guard`], which resolves a host once, refuses it if any
//!   answer may not be reached, and dials only what it checked; its
//!   refusal is [`Blocked`] (code `target_blocked`, one message for users,
//!   the detail for operators);
//! - [`http_client`]: the guard as reqwest's resolver and redirect policy;
//! - [`proxy`]: the loopback forward proxy Chromium is launched behind, and
//!   [`chromium_args`], the flags that leave the browser no other way out;
//! - [`robots`]: robots.txt (RFC 9309) as pure cache policy, and
//!   [`RobotsGate`], which fetches it through the guard and keeps answers,
//!   shared with other workers through a [`RobotsShare`];
//! - [`breaker`]: the per-domain circuit breaker as a pure state machine;
//! - [`politeness`]: one domain's rate, concurrency cap, least gap,
//!   `Retry-After` pause and breaker, as a pure state machine.
//!
//! Deliberately not here: deciding domain policies (they plug in as a
//! job's [`HostAllow`] and [`HopPolicy`], and the proxy's [`ProxyHook`]), shared rate limits and where breaker and
//! robots.txt state is kept across workers (the control plane or Redis), the
//! database, and job logic. This crate never touches the store.

pub mod address;
mod blocked;
pub mod breaker;
mod chromium;
pub mod guard;
pub mod host;
pub mod http_client;
pub mod politeness;
pub mod proxy;
mod resolver;
pub mod robots;
mod robots_gate;

pub use address::{AllowList, CidrError};
pub use blocked::{BlockReason, Blocked, Detail};
pub use chromium::{chromium_args, chromium_command_line};
pub use guard::{ConnectError, Connected, Guard, GuardConfig, HostAllow, Vetted};
pub use host::{Authority, HostError, HostName, TargetHost};
pub use http_client::{
    send_with_hops, GuardedResolve, HopDenied, HopPolicy, Refusal, TooManyRedirects, MAX_REDIRECTS,
};
pub use politeness::{Decision as PoliteDecision, DomainLimits, DomainState, Finish, WaitReason};
pub use proxy::{Admission, AllowAll, EgressProxy, ProxyConfig, ProxyHandle, ProxyHook};
pub use resolver::{ResolveError, Resolver, StubResolver, SystemResolver};
pub use robots_gate::{RobotsGate, RobotsGateConfig, RobotsGateError, RobotsShare, ShareError};
