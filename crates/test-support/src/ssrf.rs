//! The SSRF corpus (`data/ssrf_corpus.toml`) as data every egress test
//! shares: the guard and proxy tests in `accord-egress`, the HTTP and
//! browser engines in `accord-engine`, the notification sender in
//! `accord-notify`. Each runs the same cases in the
//! [`CanaryNet`](crate::CanaryNet), with stub resolvers it controls and the
//! fixture reached only through its allow-list entry.
//!
//! What a refusal must look like is decided here once
//! ([`refusal_problem`]): code `target_blocked`, and the same sentence
//! whether the name resolved to a forbidden address or did not resolve.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use accord_egress::{AllowList, BlockReason, Blocked, Guard, GuardConfig, StubResolver};
use accord_model::EgressPolicy;
use serde::Deserialize;

use crate::canary::{FIXTURE_IP, FIXTURE_NAME};

/// The corpus, as kept in the repository.
const CORPUS: &str = include_str!("../data/ssrf_corpus.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<SsrfCase>,
}

/// What a case must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Refused, and nothing reaches a canary.
    Block,
    /// Reaches the fixture (through its allow-list entry).
    Allow,
}

/// The answer the fixture gives a case's first request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    pub status: u16,
    pub to: String,
}

/// One case of the corpus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsrfCase {
    pub name: String,
    url: String,
    pub expect: Expect,
    pub note: String,
    /// Name to lookups, each lookup a list of answers.
    #[serde(default)]
    dns: BTreeMap<String, Vec<Vec<IpAddr>>>,
    pub redirect: Option<Redirect>,
}

/// Every case of the corpus, in file order.
pub fn ssrf_corpus() -> Vec<SsrfCase> {
    let corpus: Corpus = toml::from_str(CORPUS).expect("the SSRF corpus parses");
    corpus.case
}

impl SsrfCase {
    /// The URL to request, with the port filled in; a redirect case points
    /// at the fixture's redirect page with the status and target.
    pub fn url(&self, port: u16) -> String {
        let url = self.url.replace("{port}", &port.to_string());
        match &self.redirect {
            Some(redirect) => {
                let to = redirect.to.replace("{port}", &port.to_string());
                let query: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("status", &redirect.status.to_string())
                    .append_pair("to", &to)
                    .finish();
                format!("{url}?{query}")
            }
            None => url,
        }
    }

    /// Where the redirect points, port filled in.
    pub fn redirect_target(&self, port: u16) -> Option<String> {
        let redirect = self.redirect.as_ref()?;
        Some(redirect.to.replace("{port}", &port.to_string()))
    }

    /// The stub DNS answers of this case: name to lookups (more than one
    /// lookup is rebinding with a TTL of 0).
    pub fn dns(&self) -> &BTreeMap<String, Vec<Vec<IpAddr>>> {
        &self.dns
    }

    /// Whether this case's answers change from one lookup to the next.
    pub fn rebinds(&self) -> bool {
        self.dns.values().any(|lookups| lookups.len() > 1)
    }

    /// Whether this case's answers can share one resolver with `other`'s:
    /// no name answers differently, and no rebinding name is shared (its
    /// sequence would be consumed by both).
    pub fn dns_compatible(&self, other: &SsrfCase) -> bool {
        self.dns
            .iter()
            .all(|(name, lookups)| match other.dns.get(name) {
                None => true,
                Some(theirs) => lookups.len() == 1 && theirs == lookups,
            })
    }

    /// Adds this case's answers (and the fixture's name) to `stub`.
    pub fn install(&self, stub: &StubResolver) {
        stub.set(FIXTURE_NAME, vec![FIXTURE_IP.parse().expect("an address")]);
        for (name, lookups) in &self.dns {
            stub.set_sequence(name, lookups.clone());
        }
    }

    /// A fresh resolver with this case's answers and the fixture's name.
    pub fn resolver(&self) -> StubResolver {
        let stub = StubResolver::new();
        self.install(&stub);
        stub
    }

    /// The guard every case runs under: public only, plus the fixture.
    pub fn guard(&self) -> Guard {
        Guard::with_resolver(guard_config(), Arc::new(self.resolver()))
    }
}

/// Public only, plus the fixture's allow-list entry: never the guard
/// turned off.
pub fn guard_config() -> GuardConfig {
    GuardConfig {
        policy: EgressPolicy::PublicOnly,
        allow: fixture_allow_list(),
        connect_timeout: Duration::from_secs(2),
    }
}

/// The one allow-list entry the tests reach the fixture through.
pub fn fixture_allow_list() -> AllowList {
    AllowList::parse([FIXTURE_IP]).expect("the fixture's address parses")
}

/// What the user reads for every refusal that depends on DNS or addresses.
pub fn uniform_refusal(target: &str) -> String {
    format!("refused target {target}: the host is not public or does not resolve")
}

/// Why `blocked` is not what a user may be shown, if it is not: its code is
/// `target_blocked`, and whatever the address or the lookup said, the
/// message is the uniform one (only bad schemes and hosts say more).
pub fn refusal_problem(blocked: &Blocked) -> Option<String> {
    if blocked.code() != "target_blocked" {
        return Some(format!("code {} instead of target_blocked", blocked.code()));
    }
    let says_more = matches!(
        blocked.reason(),
        BlockReason::Scheme { .. } | BlockReason::Host(_)
    );
    (!says_more && blocked.to_string() != uniform_refusal(blocked.target()))
        .then(|| format!("message `{blocked}` is not the uniform one"))
}

/// Groups cases into batches that can share one resolver (see
/// [`SsrfCase::dns_compatible`]), keeping their order within a batch.
pub fn dns_batches(cases: &[SsrfCase]) -> Vec<Vec<SsrfCase>> {
    let mut batches: Vec<Vec<SsrfCase>> = Vec::new();
    for case in cases {
        let home = batches
            .iter_mut()
            .find(|batch| batch.iter().all(|other| case.dns_compatible(other)));
        match home {
            Some(batch) => batch.push(case.clone()),
            None => batches.push(vec![case.clone()]),
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_has_enough_cases_and_each_name_once() {
        let cases = ssrf_corpus();
        assert!(cases.len() >= 150, "only {} cases", cases.len());
        let mut names: Vec<&str> = cases.iter().map(|case| case.name.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a case name is used twice");
    }

    #[test]
    fn batches_never_share_a_rebinding_name_or_disagree_on_an_answer() {
        let cases = ssrf_corpus();
        let batches = dns_batches(&cases);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), cases.len());
        for batch in &batches {
            for (at, case) in batch.iter().enumerate() {
                for other in &batch[at + 1..] {
                    assert!(case.dns_compatible(other), "{} {}", case.name, other.name);
                }
            }
        }
        let rebinding = cases.iter().filter(|case| case.rebinds()).count();
        assert!(rebinding >= 3, "{rebinding}");
        assert!(batches.len() <= rebinding + 1, "{} batches", batches.len());
    }
}
