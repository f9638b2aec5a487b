//! Domain policies: per workspace, what jobs may do to which hosts.
//!
//! A [`DomainPolicy`] matches an exact host (`example.com`, or an IP
//! literal), every subdomain of one (`*.example.com`), or every host (`*`,
//! the workspace default). For a host the most specific matching policy
//! applies whole ([`effective_policy`]): an exact host beats any wildcard, a
//! longer wildcard beats a shorter one, `*` comes last, and with no match at
//! all everything is allowed ([`EffectivePolicy::unrestricted`]). A
//! workspace denies by default with a `*` policy that says
//! `"allowed": false`, then allows chosen hosts with policies of their own.
//!
//! A policy says whether the host may be visited, which engines and step
//! kinds a job may use on it, whether its robots.txt is obeyed, which
//! non-public networks it may resolve to (the one way to reach an internal
//! site), politeness numbers (requests per minute, concurrent requests,
//! minimum gap) that the shared rate limiter reads through
//! [`effective_policy`], and whether a job waits or fails while its host's
//! circuit breaker is open ([`OnOpenBreaker`]).
//!
//! Deliberately pure: the store keeps policies, the queue checks them at
//! submission ([`PolicySet::check_job`]), the worker again at run time
//! (the claim carries the workspace's [`PolicySet`]), and nothing here
//! does IO or enforces rates.
//!
//! - `pattern`: [`DomainPattern`] (which hosts), [`Cidr`], [`StepKind`];
//! - `rules`: [`PolicyRules`] as stored, [`PolicySet`] as a claim carries
//!   it, [`effective_policy`] and the checks that refuse with a
//!   [`PolicyDenial`];
//! - `request`: the API's [`NewPolicy`], [`PolicyPatch`] and [`PolicyView`],
//!   validated into the above with errors that name the field.

mod pattern;
mod request;
mod rules;

pub use pattern::{Cidr, DomainPattern, PolicyId, StepKind};
pub use request::{NewPolicy, PolicyList, PolicyPatch, PolicyView};
pub use rules::{
    effective_policy, sort_by_specificity, DomainPolicy, EffectivePolicy, OnOpenBreaker,
    PolicyDenial, PolicyEntry, PolicyRules, PolicySet,
};

/// Most policies one workspace holds (every claim carries them all).
pub const MAX_POLICIES: usize = 200;
/// Most extra CIDRs one policy allows.
pub const MAX_POLICY_CIDRS: usize = 32;
/// Highest `requests_per_minute` (1000 a second).
pub const MAX_REQUESTS_PER_MINUTE: u32 = 60_000;
/// Highest `max_concurrent`.
pub const MAX_CONCURRENT: u32 = 1_000;
/// Longest `min_gap_ms`: an hour.
pub const MAX_MIN_GAP_MS: u32 = 3_600_000;
/// Longest domain pattern, in bytes (a DNS name is at most 253).
pub const MAX_PATTERN_BYTES: usize = 255;
