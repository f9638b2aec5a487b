//! The SSRF corpus (`data/ssrf_corpus.toml` of `accord-test-support`)
//! against notification delivery, in the canary network: each case's URL is
//! first created as a webhook target (the queue's creation-time check, over
//! SQLite, with the fixture's allow-list entry), and what is accepted is
//! delivered by the webhook sender, its guard over the case's stub
//! resolver.
//!
//! A must-block case is refused at creation (an invalid URL, or the guard's
//! verdict from the URL alone), or its delivery fails for good with
//! `target_blocked: ` and the guard's message for users, which reads the
//! same whether the name resolved to a forbidden address or did not
//! resolve, and never names an address the URL does not. Canaries receive
//! nothing. Allowed http cases are delivered to the fixture; allowed https
//! cases reach it (it speaks no TLS) and fail retryably, never refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use accord_model::{ManualClock, NewTarget, TargetAddress, TargetKind, WorkspaceId};
use accord_notify::{Attempt, Sender, SenderConfig};
use accord_queue::{Queue, QueueConfig, QueueError, QueueMetrics};
use accord_store::{SqliteConfig, SqliteStore};
use accord_test_support::{
    fixture_allow_list, ssrf_corpus, uniform_refusal, CanaryNet, Expect, SsrfCase,
};
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use reqwest::header::HeaderMap;

/// What became of one case.
#[derive(Debug)]
enum Outcome {
    /// Refused at creation: not a target URL at all.
    Invalid(String),
    /// Refused at creation by the guard, from the URL alone.
    NotAllowed(String),
    /// Created, then delivered (or not) as the attempt says.
    Sent(Attempt),
}

impl Outcome {
    fn kind(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid at creation",
            Self::NotAllowed(_) => "refused at creation (target_not_allowed)",
            Self::Sent(attempt) if attempt.delivered => "delivered",
            Self::Sent(attempt) if is_refusal(attempt) => "target_blocked at delivery",
            Self::Sent(_) => "failed otherwise",
        }
    }

    fn said(&self) -> String {
        match self {
            Self::Invalid(message) | Self::NotAllowed(message) => message.clone(),
            Self::Sent(attempt) => attempt
                .error
                .clone()
                .unwrap_or_else(|| format!("status {:?}", attempt.status)),
        }
    }
}

fn is_refusal(attempt: &Attempt) -> bool {
    attempt
        .error
        .as_deref()
        .is_some_and(|error| error.starts_with("target_blocked: "))
}

/// Why a refused delivery's message is not what its owner may read.
fn refusal_problem(case: &SsrfCase, attempt: &Attempt) -> Option<String> {
    let error = attempt.error.as_deref().unwrap_or_default();
    if !attempt.permanent {
        return Some(format!("a refusal must be permanent: {error}"));
    }
    // A name the stub answered (or left unanswered) reads the uniform way,
    // naming the host as the guard spells it (`loop.test.` is `loop.test`).
    if !case.dns().is_empty() {
        let uniform = uniform_refusal("HOST");
        let (head, tail) = uniform.split_once("HOST").expect("the host is named");
        let reads_uniform = error
            .strip_prefix("target_blocked: ")
            .is_some_and(|message| message.starts_with(head) && message.ends_with(tail));
        if !reads_uniform {
            return Some(format!("`{error}` is not the uniform refusal"));
        }
    }
    // No answer of the resolver shows, unless the user wrote it.
    let written = case.url(0);
    let leaked: Vec<String> = case
        .dns()
        .values()
        .flatten()
        .flatten()
        .map(ToString::to_string)
        .filter(|ip| error.contains(ip.as_str()) && !written.contains(ip.as_str()))
        .collect();
    (!leaked.is_empty()).then(|| format!("`{error}` names {leaked:?}"))
}

/// Why `outcome` is wrong for `case`, if it is.
fn wrong(case: &SsrfCase, url: &str, outcome: &Outcome) -> Option<String> {
    let https = url.starts_with("https:");
    match (case.expect, outcome) {
        (Expect::Block, Outcome::Invalid(_) | Outcome::NotAllowed(_)) => None,
        (Expect::Block, Outcome::Sent(attempt)) if is_refusal(attempt) => {
            refusal_problem(case, attempt)
        }
        (Expect::Allow, Outcome::Sent(attempt)) if attempt.delivered => None,
        // The fixture speaks no TLS: reached, then failed, never refused.
        (Expect::Allow, Outcome::Sent(attempt)) if https => {
            (attempt.permanent || is_refusal(attempt)).then(|| format!("{attempt:?}"))
        }
        // A target takes only http(s) URLs without credentials.
        (Expect::Allow, Outcome::Invalid(message))
            if message.contains("scheme") || message.contains("user name") =>
        {
            None
        }
        (expect, other) => Some(format!("expected {expect:?}, got {other:?}")),
    }
}

fn sender(case: &SsrfCase) -> Sender {
    let config = SenderConfig {
        allow_targets: fixture_allow_list(),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..SenderConfig::default()
    };
    Sender::with_resolver(&config, Arc::new(case.resolver())).expect("the sender builds")
}

async fn run(queue: &Queue, case: &SsrfCase, url: &str) -> Outcome {
    let new = NewTarget {
        name: case.name.clone(),
        kind: TargetKind::Webhook,
        url: Some(url.to_owned()),
        email: None,
    };
    let target = match queue.target_create(WorkspaceId::DEFAULT, new).await {
        Ok((target, _secret)) => target,
        Err(QueueError::Invalid(invalid)) => return Outcome::Invalid(invalid.to_string()),
        Err(QueueError::TargetNotAllowed(reason)) => return Outcome::NotAllowed(reason),
        Err(other) => panic!("{}: {other}", case.name),
    };
    let TargetAddress::Url(address) = &target.address else {
        panic!("a webhook target has a URL");
    };
    let attempt = sender(case)
        .post_json(address, HeaderMap::new(), br#"{"test":true}"#.to_vec())
        .await;
    Outcome::Sent(attempt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stdout,
    reason = "the run's counts are the test's report (shown with --no-capture)"
)]
async fn corpus_through_target_creation_and_webhook_delivery() {
    let net = CanaryNet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("targets.db")))
        .await
        .unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let config = QueueConfig {
        allow_targets: fixture_allow_list(),
        ..QueueConfig::default()
    };
    let queue = Queue::new(
        Arc::new(store),
        Arc::new(clock),
        config,
        Arc::new(QueueMetrics::new()),
    );

    let cases = ssrf_corpus();
    let is_tls =
        |case: &SsrfCase| case.expect == Expect::Allow && case.url(0).starts_with("https:");
    let (tls, rest): (Vec<SsrfCase>, Vec<SsrfCase>) = cases.iter().cloned().partition(is_tls);
    let (queue_ref, net_ref) = (&queue, &net);
    let mut runs: Vec<(SsrfCase, String, Outcome)> = futures::stream::iter(rest)
        .map(|case| async move {
            let url = case.url(net_ref.port);
            let outcome = run(queue_ref, &case, &url).await;
            (case, url, outcome)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    // One at a time, so each is seen reaching the fixture.
    let mut failures = Vec::new();
    for case in tls {
        let url = case.url(net.port);
        let before = net.fixture_connections();
        let outcome = run(&queue, &case, &url).await;
        if net.fixture_connections() == before {
            failures.push(format!("{}: the fixture saw no connection", case.name));
        }
        runs.push((case, url, outcome));
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut examples: BTreeMap<&str, String> = BTreeMap::new();
    for (case, url, outcome) in &runs {
        *counts.entry(outcome.kind()).or_default() += 1;
        examples
            .entry(outcome.kind())
            .or_insert_with(|| format!("{}: {}", case.name, outcome.said()));
        if let Some(why) = wrong(case, url, outcome) {
            failures.push(format!("{} ({}) {url}: {why}", case.name, case.note));
        }
    }
    println!("notifications, {} cases: {counts:?}", cases.len());
    for (kind, example) in &examples {
        println!("  {kind}, e.g. {example}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(runs.len(), cases.len());
    assert_eq!(
        net.total_canary_hits(),
        0,
        "canaries: {:?}",
        net.canary_hits()
    );
    // Both checks are exercised: some cases are refused from the URL
    // alone, the rest (names, redirects) only at delivery.
    assert!(
        counts["refused at creation (target_not_allowed)"] >= 50,
        "{counts:?}"
    );
    assert!(counts["target_blocked at delivery"] >= 30, "{counts:?}");
    assert!(counts["delivered"] >= 20, "{counts:?}");
}
