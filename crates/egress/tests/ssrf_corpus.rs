//! The SSRF corpus (`data/ssrf_corpus.toml` of `accord-test-support`)
//! against the guard alone, then against the egress proxy with canaries
//! listening on loopback: every
//! must-block case is refused, no canary receives a connection, and the
//! allowed controls reach the fixture through its allow-list entry.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use accord_egress::http_client::check_redirect;
use accord_egress::{Blocked, Guard, Refusal};
use accord_test_support::{refusal_problem, ssrf_corpus as corpus, Expect, SsrfCase as Case};
use accord_test_support::{FIXTURE_BODY, FIXTURE_IP};
use common::{Got, Recorder};
use url::Url;

/// What the guard made of a URL.
#[derive(Debug)]
enum Verdict {
    /// Allowed, to these addresses.
    Allowed(Vec<SocketAddr>),
    Blocked(Blocked),
    /// Not a URL at all: nothing can be sent to it.
    Unparsable,
}

async fn judge(guard: &Guard, url: &str, first_hop: bool) -> Verdict {
    let url = match Url::parse(url) {
        Ok(url) => url,
        Err(_) => return Verdict::Unparsable,
    };
    let checked = if first_hop {
        guard.check_page_url(&url)
    } else {
        match check_redirect(guard, &url, 1, 10) {
            Ok(()) => guard.check_url(&url),
            Err(Refusal::Blocked(blocked)) => Err(blocked),
            Err(Refusal::TooManyRedirects(err)) => panic!("{err}"),
            Err(Refusal::Denied(err)) => panic!("no hop policy here, yet: {err}"),
        }
    };
    let authority = match checked {
        Ok(authority) => authority,
        Err(blocked) => return Verdict::Blocked(blocked),
    };
    match guard.resolve(&authority).await {
        Ok(vetted) => Verdict::Allowed(vetted.addrs().to_vec()),
        Err(blocked) => Verdict::Blocked(blocked),
    }
}

/// Why a verdict is wrong for a case, if it is.
fn wrong(case: &Case, verdict: &Verdict) -> Option<String> {
    match (case.expect, verdict) {
        (Expect::Allow, Verdict::Allowed(addrs)) => {
            let fixture: IpAddr = FIXTURE_IP.parse().unwrap();
            let stray: Vec<_> = addrs.iter().filter(|addr| addr.ip() != fixture).collect();
            (!stray.is_empty()).then(|| format!("allowed, but to {stray:?}"))
        }
        (Expect::Allow, other) => Some(format!("expected allow, got {other:?}")),
        (Expect::Block, Verdict::Allowed(addrs)) => Some(format!("allowed to {addrs:?}")),
        (Expect::Block, Verdict::Unparsable) => None,
        (Expect::Block, Verdict::Blocked(blocked)) => refusal_problem(blocked),
    }
}

#[tokio::test]
async fn corpus_against_the_guard() {
    let cases = corpus();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let port = 8080;
    let mut failures = Vec::new();
    let mut blocked = 0;
    for case in &cases {
        let guard = case.guard();
        let mut verdict = judge(&guard, &case.url(port), true).await;
        if let Some(target) = case.redirect_target(port) {
            // The page that redirects is allowed; the hop is what is judged.
            if !matches!(verdict, Verdict::Allowed(_)) {
                failures.push(format!("{}: the redirecting page: {verdict:?}", case.name));
                continue;
            }
            verdict = judge(&guard, &target, false).await;
        }
        if matches!(verdict, Verdict::Blocked(_) | Verdict::Unparsable) {
            blocked += 1;
        }
        if let Some(why) = wrong(case, &verdict) {
            failures.push(format!("{} ({}): {why}", case.name, case.note));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let allowed = cases
        .iter()
        .filter(|case| case.expect == Expect::Allow)
        .count();
    assert_eq!(blocked + allowed, cases.len());
}

/// What a case must look like at the far side of the proxy.
fn wrong_through_proxy(case: &Case, got: &Got, hook_lines: &[String]) -> Option<String> {
    match case.expect {
        Expect::Allow => (got.status != 200 || got.body != FIXTURE_BODY)
            .then(|| format!("expected the fixture, got {got:?}")),
        Expect::Block => {
            let refused_by_guard = got.status == 403
                && got.body.starts_with("target_blocked: ")
                && hook_lines.iter().any(|line| line.contains(": blocked: "));
            // A host that is a URL for the URL parser but no host for the
            // guard (`localhost..`) is a bad request, refused before the hook.
            let refused_by_parser = got.status == 400
                && got.body.contains("is not a valid host")
                && hook_lines.is_empty();
            (!refused_by_guard && !refused_by_parser)
                .then(|| format!("expected a refusal, got {got:?}; hook: {hook_lines:?}"))
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Forwarded,
    Tunnelled,
}

#[tokio::test]
async fn corpus_through_the_proxy() {
    let net = common::start_net().await;
    let cases = corpus();
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut never_sendable = Vec::new();
    for case in &cases {
        let url_text = case.url(net.port);
        let Ok(url) = Url::parse(&url_text) else {
            never_sendable.push(case.name.clone());
            continue;
        };
        let modes: &[Mode] = match url.scheme() {
            "http" => &[Mode::Forwarded, Mode::Tunnelled],
            "https" | "ws" | "wss" => &[Mode::Tunnelled],
            // Other schemes never reach a proxy; the guard test covers them.
            _ => {
                never_sendable.push(case.name.clone());
                continue;
            }
        };
        for mode in modes {
            let before = net.total_canary_hits();
            // A fresh resolver per run: rebinding sequences start over.
            let hook = Arc::new(Recorder::default());
            let proxy = common::start_proxy(case.guard(), hook.clone()).await;
            let got = match mode {
                Mode::Forwarded => common::get_forwarded(&proxy, &url_text).await,
                Mode::Tunnelled => common::get_tunnelled(&proxy, &url).await,
            };
            proxy.shutdown().await;
            runs += 1;
            if let Some(why) = wrong_through_proxy(case, &got, &hook.lines()) {
                failures.push(format!("{} {mode:?} ({}): {why}", case.name, case.note));
            }
            if net.total_canary_hits() != before {
                failures.push(format!("{} {mode:?}: a canary was reached", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        net.total_canary_hits(),
        0,
        "canaries: {:?}",
        net.canary_hits()
    );
    // The allowed controls really went through.
    assert!(
        net.fixture_paths()
            .iter()
            .filter(|path| *path == "/")
            .count()
            >= 25
    );
    // Every case that could be sent was, in each way a browser would.
    // What no browser can send through a proxy (other schemes, hosts the
    // URL parser refuses) must be a block case: the guard test judged it.
    let unsent_allows: Vec<&String> = cases
        .iter()
        .filter(|case| case.expect == Expect::Allow && never_sendable.contains(&case.name))
        .map(|case| &case.name)
        .collect();
    assert!(unsent_allows.is_empty(), "{unsent_allows:?}");
    assert!(
        runs > 2 * never_sendable.len(),
        "{runs} runs, {never_sendable:?}"
    );
}
