//! Name resolution behind the guard: the [`Resolver`] trait, the system
//! resolver used in production, and [`StubResolver`], whose answers the
//! caller sets (tests, including DNS rebinding: a name that answers a public
//! address first and a private one next).
//!
//! A resolver only answers; whether an answer may be reached is the guard's
//! decision. Loopback names (`localhost`) never reach a resolver.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::host::HostName;

/// A name that did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no address")]
    NoAddress,
    #[error("{0}")]
    Failed(String),
}

/// Turns a name into addresses.
#[async_trait::async_trait]
pub trait Resolver: fmt::Debug + Send + Sync + 'static {
    /// Every address the name stands for right now (at least one).
    async fn resolve(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError>;
}

/// The operating system's resolver, through `tokio::net::lookup_host`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError> {
        // The port is irrelevant: the guard pairs the addresses with the
        // URL's own port.
        let answers = tokio::net::lookup_host((name.as_str(), 0))
            .await
            .map_err(|err| ResolveError::Failed(err.to_string()))?;
        let mut ips: Vec<IpAddr> = Vec::new();
        for addr in answers {
            if !ips.contains(&addr.ip()) {
                ips.push(addr.ip());
            }
        }
        if ips.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        Ok(ips)
    }
}

/// A resolver whose answers are set by its owner. Each name holds a
/// sequence of answers: every lookup takes the next one, and the last one
/// repeats (a sequence of one is a plain record). A name without answers
/// does not resolve. Clones share their answers.
#[derive(Debug, Clone, Default)]
pub struct StubResolver {
    names: Arc<Mutex<HashMap<String, Sequence>>>,
}

#[derive(Debug)]
struct Sequence {
    answers: Vec<Vec<IpAddr>>,
    next: usize,
    lookups: usize,
}

impl StubResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// `name` answers `ips` on every lookup.
    pub fn set(&self, name: &str, ips: Vec<IpAddr>) {
        self.set_sequence(name, vec![ips]);
    }

    /// `name` answers each entry of `answers` in turn, then the last one
    /// forever: `[[public], [private]]` is a rebinding attack with a TTL of 0.
    pub fn set_sequence(&self, name: &str, answers: Vec<Vec<IpAddr>>) {
        let sequence = Sequence {
            answers,
            next: 0,
            lookups: 0,
        };
        self.lock().insert(name.to_ascii_lowercase(), sequence);
    }

    /// How many times `name` was looked up.
    pub fn lookups(&self, name: &str) -> usize {
        self.lock()
            .get(&name.to_ascii_lowercase())
            .map_or(0, |sequence| sequence.lookups)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sequence>> {
        // A panic elsewhere cannot leave the map half-written: every update
        // is a single insert or counter bump.
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Resolver for StubResolver {
    async fn resolve(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError> {
        let mut names = self.lock();
        let Some(sequence) = names.get_mut(name.as_str()) else {
            return Err(ResolveError::Failed("no such name".to_owned()));
        };
        sequence.lookups += 1;
        let Some(last) = sequence.answers.len().checked_sub(1) else {
            return Err(ResolveError::NoAddress);
        };
        let answer = sequence.answers[sequence.next.min(last)].clone();
        sequence.next += 1;
        if answer.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::TargetHost;

    #[tokio::test]
    async fn stub_answers_in_sequence_then_repeats_the_last() {
        let stub = StubResolver::new();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        stub.set_sequence(
            "Rebind.test",
            vec![vec![ip("93.184.216.34")], vec![ip("127.0.0.1")]],
        );
        stub.set("empty.test", vec![]);
        let name = TargetHost::parse_name("rebind.test").unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(stub.resolve(&name).await);
        }
        assert_eq!(
            got,
            vec![
                Ok(vec![ip("93.184.216.34")]),
                Ok(vec![ip("127.0.0.1")]),
                Ok(vec![ip("127.0.0.1")]),
            ]
        );
        assert_eq!(stub.lookups("rebind.test"), 3);
        let empty = TargetHost::parse_name("empty.test").unwrap();
        assert_eq!(stub.resolve(&empty).await, Err(ResolveError::NoAddress));
        let unknown = TargetHost::parse_name("unknown.test").unwrap();
        assert_eq!(
            stub.resolve(&unknown).await,
            Err(ResolveError::Failed("no such name".to_owned()))
        );
    }

    #[tokio::test]
    async fn system_resolver_answers_localhost_from_the_hosts_file() {
        // /etc/hosts, not the network: the only lookup a test may make.
        let name = TargetHost::parse_name("localhost").unwrap();
        let ips = SystemResolver.resolve(&name).await.unwrap();
        assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
    }
}
