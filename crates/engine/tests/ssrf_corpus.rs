//! The SSRF corpus (`data/ssrf_corpus.toml` of `accord-test-support`) end
//! to end through both engines, run as a job's `navigate` step is run, in
//! the canary network: a fixture reached only through its allow-list entry
//! and canaries on 127.0.0.1-9 and [::1] that must receive nothing.
//!
//! - The HTTP engine: one engine per case, its guard over the case's stub
//!   resolver, every case at once.
//! - The browser engine: one pool and one browser behind its egress proxy,
//!   each job behind its own proxy (as the worker runs them), the guard's
//!   resolver switched between batches of cases whose DNS answers agree
//!   (a rebinding name is never shared), the cases of a batch at once.
//!   WebSocket cases are opened by a page's script (no job navigates to
//!   `ws:`), and must fail to open unless allowed.
//!
//! Every must-block case fails with `target_blocked` and the guard's
//! message, the same whether the name resolved to a forbidden address or
//! did not resolve; or its URL is one no job can carry (another scheme,
//! credentials). Allowed http cases load the fixture's page; allowed https
//! cases reach the fixture (which speaks no TLS, so the load then fails,
//! but not with `target_blocked`).

#[expect(dead_code, reason = "this binary uses only the Chromium finder")]
mod chromium;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use accord_egress::{
    AllowAll, EgressProxy, Guard, HostName, ProxyConfig, ResolveError, Resolver, StubResolver,
};
use accord_engine::browser::{BrowserConfig, BrowserEngine, BrowserProxy};
use accord_engine::{EngineConfig, Executor, HttpEngine, RunFailure, RunOutput, StepFailure};
use accord_model::{ExtractedValue, JobError, JobErrorCode, JobSpec, TargetUrl, TargetUrlError};
use accord_test_support::{
    dns_batches, fixture_allow_list, guard_config, refusal_problem, ssrf_corpus, CanaryNet, Expect,
    SsrfCase,
};
use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The title of the fixture's page at `/`.
const PAGE_TITLE: &str = "fixture page";

/// What became of one case.
#[derive(Debug)]
enum Outcome {
    /// No job can carry this URL: the model refuses it at submission.
    NoJob(TargetUrlError),
    /// The job loaded the fixture's page.
    Fixture,
    /// The job failed with the guard's refusal (`problem`: what is wrong
    /// with how it reads, if anything).
    Refused {
        message: String,
        problem: Option<String>,
    },
    /// The job failed otherwise.
    Failed(JobError),
    /// The job succeeded on a page that is not the fixture's.
    Other(String),
    /// A page's WebSocket: whether it opened.
    Socket { opened: bool, said: String },
}

/// Runs a job's outcome into an [`Outcome`].
fn outcome(run: Result<RunOutput, RunFailure>) -> Outcome {
    match run {
        Ok(output) => {
            let title = output.result.extracted.get("title");
            if title == Some(&ExtractedValue::One(Some(PAGE_TITLE.to_owned()))) {
                Outcome::Fixture
            } else {
                Outcome::Other(format!("{:?}", output.result))
            }
        }
        Err(failure) => {
            let problem = match failure.error.failure() {
                StepFailure::Refused(blocked) => Some(refusal_problem(blocked)),
                _ => None,
            };
            let error = JobError::from(failure.error);
            match problem {
                Some(problem) if error.code == Some(JobErrorCode::TargetBlocked) => {
                    Outcome::Refused {
                        message: error.message,
                        problem,
                    }
                }
                _ => Outcome::Failed(error),
            }
        }
    }
}

/// Why `outcome` is wrong for `case`, if it is.
fn wrong(case: &SsrfCase, url: &str, outcome: &Outcome) -> Option<String> {
    let https = url.starts_with("https:");
    match (case.expect, outcome) {
        (Expect::Block, Outcome::NoJob(_)) => None,
        (Expect::Block, Outcome::Refused { problem, .. }) => problem.clone(),
        (Expect::Block, Outcome::Socket { opened: false, .. }) => None,
        (Expect::Allow, Outcome::Fixture) => None,
        (Expect::Allow, Outcome::Socket { opened: true, .. }) => None,
        // A job carries only http(s) URLs without credentials.
        (
            Expect::Allow,
            Outcome::NoJob(TargetUrlError::Credentials | TargetUrlError::Scheme(_)),
        ) => None,
        // The fixture speaks no TLS: reached, then failed, never refused.
        (Expect::Allow, Outcome::Failed(error)) if https => {
            (error.code.is_some()).then(|| format!("expected a TLS failure, got {}", error.message))
        }
        // ... unless the browser tried again after the failed handshake and
        // the name had rebound to a forbidden address by then: that second
        // tunnel is refused, rightly (the first reached the fixture, which
        // `https_allowed` checks).
        (Expect::Allow, Outcome::Refused { problem: None, .. }) if https && case.rebinds() => None,
        (expect, other) => Some(format!("expected {expect:?}, got {other:?}")),
    }
}

/// The fixture's page at `/`, with a title the jobs extract.
fn serve_pages(net: &CanaryNet) {
    net.serve_page(
        "/",
        format!("<html><head><title>{PAGE_TITLE}</title></head><body>fixture</body></html>"),
    );
    // Opens a WebSocket to the URL in its query and writes what happened.
    net.serve_page(
        "/socket-probe",
        r#"<html><body><p id="outcome"></p><script>
const done = (what) => {
  const p = document.getElementById('outcome');
  if (!p.textContent) { p.textContent = what; p.className = 'done'; }
};
try {
  const socket = new WebSocket(new URLSearchParams(location.search).get('u'));
  socket.onopen = () => done('opened');
  socket.onerror = () => done('failed');
  socket.onclose = () => done('failed');
} catch (error) {
  done('failed: ' + error.name);
}
</script></body></html>"#
            .to_owned(),
    );
}

fn navigate_job(engine: &str, url: &TargetUrl) -> JobSpec {
    serde_json::from_value(json!({
        "engine": engine,
        "timeout_seconds": 30,
        "steps": [
            {"action": "navigate", "url": url},
            {"action": "extract", "fields": {"title": {"selector": "title"}}},
        ],
    }))
    .expect("a valid job")
}

impl Outcome {
    /// What a user or an operator would read about it.
    fn said(&self) -> String {
        match self {
            Self::NoJob(err) => err.to_string(),
            Self::Fixture => PAGE_TITLE.to_owned(),
            Self::Refused { message, .. } => message.clone(),
            Self::Failed(error) => error.message.clone(),
            Self::Other(result) => result.clone(),
            Self::Socket { said, .. } => said.clone(),
        }
    }
}

/// What the run of every case came to: failures, and counts by outcome
/// with one example each.
#[derive(Debug, Default)]
struct Tally {
    failures: Vec<String>,
    counts: BTreeMap<&'static str, usize>,
    examples: BTreeMap<&'static str, String>,
}

impl Tally {
    fn add(&mut self, case: &SsrfCase, url: &str, outcome: &Outcome) {
        let kind = match outcome {
            Outcome::NoJob(_) => "no job can carry the URL",
            Outcome::Fixture => "loaded the fixture",
            Outcome::Refused { .. } => "target_blocked",
            Outcome::Failed(_) => "failed otherwise",
            Outcome::Other(_) => "loaded another page",
            Outcome::Socket { opened: true, .. } => "socket opened",
            Outcome::Socket { opened: false, .. } => "socket refused",
        };
        *self.counts.entry(kind).or_default() += 1;
        self.examples
            .entry(kind)
            .or_insert_with(|| format!("{}: {}", case.name, outcome.said()));
        if let Some(why) = wrong(case, url, outcome) {
            self.failures
                .push(format!("{} ({}) {url}: {why}", case.name, case.note));
        }
    }

    #[expect(
        clippy::print_stdout,
        reason = "the run's counts are the test's report (shown with --no-capture)"
    )]
    fn check(&self, engine: &str, net: &CanaryNet, cases: usize) {
        println!("{engine} engine, {cases} cases: {:?}", self.counts);
        for (kind, example) in &self.examples {
            println!("  {kind}, e.g. {example}");
        }
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n"));
        assert_eq!(self.counts.values().sum::<usize>(), cases);
        assert_eq!(
            net.total_canary_hits(),
            0,
            "canaries: {:?}",
            net.canary_hits()
        );
        assert!(self.counts["target_blocked"] >= 100, "{:?}", self.counts);
        assert!(self.counts["loaded the fixture"] >= 20, "{:?}", self.counts);
    }
}

/// Runs https allow cases one at a time, checking that each reached the
/// fixture.
async fn https_allowed<F, Fut>(net: &CanaryNet, cases: &[SsrfCase], tally: &mut Tally, run: F)
where
    F: Fn(SsrfCase, TargetUrl) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    for case in cases {
        let url = case.url(net.port);
        let before = net.fixture_connections();
        let outcome = match TargetUrl::parse(&url) {
            Ok(target) => run(case.clone(), target).await,
            Err(err) => Outcome::NoJob(err),
        };
        if net.fixture_connections() == before {
            tally
                .failures
                .push(format!("{}: the fixture saw no connection", case.name));
        }
        tally.add(case, &url, &outcome);
    }
}

fn is_https_allow(case: &SsrfCase) -> bool {
    case.expect == Expect::Allow && case.url(0).starts_with("https:")
}

fn is_socket(case: &SsrfCase) -> bool {
    let url = case.url(0);
    url.starts_with("ws:") || url.starts_with("wss:")
}

fn http_engine(resolver: StubResolver) -> HttpEngine {
    let config = EngineConfig {
        allow_targets: fixture_allow_list(),
        connect_timeout: Duration::from_secs(2),
        navigate_timeout: Duration::from_secs(10),
        ..EngineConfig::default()
    };
    HttpEngine::with_resolver(config, Arc::new(resolver)).expect("the engine builds")
}

async fn run_http(case: SsrfCase, url: TargetUrl) -> Outcome {
    let engine = http_engine(case.resolver());
    let job = navigate_job("http", &url);
    outcome(engine.run(&job, &CancellationToken::new()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_through_the_http_engine() {
    let net = CanaryNet::start().await;
    serve_pages(&net);
    let cases = ssrf_corpus();
    let (tls, rest): (Vec<SsrfCase>, Vec<SsrfCase>) =
        cases.iter().cloned().partition(is_https_allow);
    let mut tally = Tally::default();
    let net_ref = &net;
    let runs: Vec<(SsrfCase, String, Outcome)> = futures::stream::iter(rest)
        .map(|case| async move {
            let net = net_ref;
            let url = case.url(net.port);
            let outcome = match TargetUrl::parse(&url) {
                Ok(target) => run_http(case.clone(), target).await,
                Err(err) => Outcome::NoJob(err),
            };
            (case, url, outcome)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (case, url, outcome) in &runs {
        tally.add(case, url, outcome);
    }
    https_allowed(&net, &tls, &mut tally, run_http).await;
    tally.check("http", &net, cases.len());
}

/// The guard's resolver, switched between batches of cases.
#[derive(Debug, Default)]
struct Switched(Mutex<StubResolver>);

impl Switched {
    fn set(&self, stub: StubResolver) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = stub;
    }
}

#[async_trait::async_trait]
impl Resolver for Switched {
    async fn resolve(&self, name: &HostName) -> Result<Vec<std::net::IpAddr>, ResolveError> {
        let stub = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        stub.resolve(name).await
    }
}

/// One case in the browser: a `navigate` job, or for a WebSocket case a
/// page that opens it.
async fn run_browser(engine: &BrowserEngine, net: &CanaryNet, case: &SsrfCase) -> Outcome {
    let url = case.url(net.port);
    if is_socket(case) {
        let probe: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("u", &url)
            .finish();
        let page = net.fixture_url(&format!("/socket-probe?{probe}"));
        let job: JobSpec = serde_json::from_value(json!({
            "engine": "browser",
            "timeout_seconds": 30,
            "steps": [
                {"action": "navigate", "url": page},
                {"action": "wait_for", "selector": "#outcome.done", "timeout_ms": 10_000},
                {"action": "extract", "fields": {"outcome": {"selector": "#outcome"}}},
            ],
        }))
        .expect("a valid job");
        return match engine.run(&job, &CancellationToken::new()).await {
            Ok(output) => {
                let said = format!("{:?}", output.result.extracted.get("outcome"));
                Outcome::Socket {
                    opened: said.contains("\"opened\""),
                    said,
                }
            }
            Err(failure) => Outcome::Failed(JobError::from(failure.error)),
        };
    }
    match TargetUrl::parse(&url) {
        Ok(target) => {
            let job = navigate_job("browser", &target);
            outcome(engine.run(&job, &CancellationToken::new()).await)
        }
        Err(err) => Outcome::NoJob(err),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_through_the_browser_engine() {
    let net = CanaryNet::start().await;
    serve_pages(&net);
    let resolver = Arc::new(Switched::default());
    let guard = Guard::with_resolver(guard_config(), resolver.clone());
    // The browser's own proxy, as the worker starts it: the way out of
    // last resort behind every job's proxy.
    let proxy = EgressProxy::start(guard.clone(), Arc::new(AllowAll), ProxyConfig::default())
        .await
        .unwrap();
    proxy.admit_process_tree(std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let config = BrowserConfig {
        slots: 4,
        work_dir: dir.path().to_owned(),
        navigate_timeout: Duration::from_secs(10),
        element_timeout: Duration::from_secs(5),
        proxy: Some(BrowserProxy {
            server: format!("http://{}", proxy.addr()),
        }),
        ..BrowserConfig::default()
    };
    let engine = BrowserEngine::start(chromium::chromium().await, config).with_job_proxies(guard);

    let cases = ssrf_corpus();
    let (tls, rest): (Vec<SsrfCase>, Vec<SsrfCase>) =
        cases.iter().cloned().partition(is_https_allow);
    let mut tally = Tally::default();
    let batches = dns_batches(&rest);
    for batch in &batches {
        let stub = StubResolver::new();
        for case in batch {
            case.install(&stub);
        }
        resolver.set(stub);
        let runs: Vec<(&SsrfCase, Outcome)> = futures::stream::iter(batch)
            .map(|case| {
                let (engine, net) = (&engine, &net);
                async move { (case, run_browser(engine, net, case).await) }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        for (case, outcome) in &runs {
            tally.add(case, &case.url(net.port), outcome);
        }
    }
    let (engine_ref, resolver_ref, net_ref) = (&engine, &resolver, &net);
    https_allowed(&net, &tls, &mut tally, |case, _url| async move {
        resolver_ref.set(case.resolver());
        run_browser(engine_ref, net_ref, &case).await
    })
    .await;
    engine.shutdown().await;
    proxy.shutdown().await;
    tally.check("browser", &net, cases.len());
    assert!(tally.counts["socket opened"] >= 1, "{:?}", tally.counts);
    assert!(tally.counts["socket refused"] >= 2, "{:?}", tally.counts);
}
