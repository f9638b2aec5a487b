//! The robots.txt gate against a real server on loopback (reached through
//! an allow-list entry and a stub resolver, never with the guard off): what
//! each kind of answer means, one fetch per site however many jobs ask, the
//! user agent it sends, and a file the guard refuses.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_egress::robots::{Disallowed, RobotsConfig, RobotsDecision};
use accord_egress::{AllowList, Guard, GuardConfig, RobotsGate, RobotsGateConfig, StubResolver};
use accord_model::{EgressPolicy, ManualClock};
use bytes::Bytes;
use chrono::{TimeDelta, TimeZone, Utc};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use url::Url;

/// The server's address; the allow-list names it and nothing else.
const SERVER_IP: &str = "127.0.0.20";
const USER_AGENT: &str = "Accord/test (+https://accord.test/contact)";

/// Requests the server saw: (host, path, user agent).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

struct Site {
    port: u16,
    seen: Seen,
}

impl Site {
    fn robots_fetches(&self, host: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, path, _)| h == host && path.starts_with("/robots"))
            .count()
    }
}

/// What each host's robots.txt is.
fn answer(host: &str, path: &str) -> Response<Full<Bytes>> {
    let text = |status: u16, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let redirect = |to: String| {
        Response::builder()
            .status(302)
            .header("location", to)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let hop = path
        .strip_prefix("/robots-hop/")
        .and_then(|n| n.parse::<u32>().ok());
    match (host, hop) {
        ("rules.test", _) => text(
            200,
            b"User-agent: *\nDisallow: /private\n\nUser-agent: accord\nDisallow: /no-accord\nCrawl-delay: 2\n"
                .to_vec(),
        ),
        ("missing.test", _) => text(404, b"not here".to_vec()),
        ("forbidden.test", _) => text(403, b"no".to_vec()),
        ("down.test", _) => text(503, b"down".to_vec()),
        ("busy.test", _) => text(429, b"slow down".to_vec()),
        // Five redirects are followed; the file at the end disallows all.
        ("five.test", None) => redirect("/robots-hop/1".into()),
        ("five.test", Some(n)) if n < 5 => redirect(format!("/robots-hop/{}", n + 1)),
        ("five.test", Some(_)) => text(200, b"User-agent: *\nDisallow: /\n".to_vec()),
        // Six are too many: the file is unavailable, everything allowed.
        ("six.test", None) => redirect("/robots-hop/1".into()),
        ("six.test", Some(n)) if n < 6 => redirect(format!("/robots-hop/{}", n + 1)),
        ("six.test", Some(_)) => text(200, b"User-agent: *\nDisallow: /\n".to_vec()),
        ("big.test", _) => {
            // 600 KiB: a rule at the start, comments, and a rule past the
            // 512 KiB that are read.
            let mut body = b"User-agent: *\nDisallow: /early\n".to_vec();
            while body.len() < 600 * 1024 {
                body.extend_from_slice(b"# padding padding padding padding padding padding\n");
            }
            body.extend_from_slice(b"Disallow: /late\n");
            text(200, body)
        }
        ("garbage.test", _) => text(
            200,
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("private.test", _) => redirect("http://10.1.2.3/robots.txt".into()),
        _ => text(404, Vec::new()),
    }
}

async fn start_site() -> Site {
    let listener = TcpListener::bind((SERVER_IP, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let host = header("host");
                        let host = host.split(':').next().unwrap_or_default().to_owned();
                        let path = request.uri().path().to_owned();
                        log.lock().unwrap().push((
                            host.clone(),
                            path.clone(),
                            header("user-agent"),
                        ));
                        if host == "slow.test" {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        Ok::<_, Infallible>(answer(&host, &path))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Site { port, seen }
}

const HOSTS: [&str; 12] = [
    "rules.test",
    "missing.test",
    "forbidden.test",
    "down.test",
    "busy.test",
    "five.test",
    "six.test",
    "big.test",
    "garbage.test",
    "slow.test",
    "private.test",
    "other.test",
];

fn gate(clock: &ManualClock) -> RobotsGate {
    let stub = StubResolver::new();
    let ip: IpAddr = SERVER_IP.parse().unwrap();
    for host in HOSTS {
        stub.set(host, vec![ip]);
    }
    let guard = Guard::with_resolver(
        GuardConfig {
            policy: EgressPolicy::PublicOnly,
            allow: AllowList::default().with(ip),
            ..GuardConfig::default()
        },
        Arc::new(stub),
    );
    let config = RobotsGateConfig {
        robots: RobotsConfig::new("accord"),
        user_agent: USER_AGENT.to_owned(),
        timeout: Duration::from_secs(1),
    };
    RobotsGate::new(config, guard, Arc::new(clock.clone())).unwrap()
}

fn url(site: &Site, host: &str, path: &str) -> Url {
    Url::parse(&format!("http://{host}:{}{path}", site.port)).unwrap()
}

/// A decision in a few words, for tables of cases.
fn brief(decision: &RobotsDecision) -> String {
    match decision {
        RobotsDecision::Allowed { min_gap: None } => "allowed".into(),
        RobotsDecision::Allowed { min_gap: Some(gap) } => {
            format!("allowed, {} ms apart", gap.num_milliseconds())
        }
        RobotsDecision::Disallowed(Disallowed::ByRules) => "disallowed".into(),
        RobotsDecision::Disallowed(Disallowed::Unreachable(reason)) => {
            format!("unreachable: {reason}")
        }
    }
}

fn clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap())
}

#[tokio::test]
async fn each_kind_of_answer_means_what_the_rfc_says() {
    let site = start_site().await;
    let clock = clock();
    let gate = gate(&clock);
    let cases: BTreeMap<(&str, &str), &str> = BTreeMap::from([
        (("rules.test", "/"), "allowed, 2000 ms apart"),
        (("rules.test", "/private/x"), "allowed, 2000 ms apart"),
        (("rules.test", "/no-accord/x"), "disallowed"),
        (("missing.test", "/any"), "allowed"),
        (("forbidden.test", "/any"), "allowed"),
        (
            ("down.test", "/any"),
            "unreachable: robots.txt answered 503",
        ),
        (
            ("busy.test", "/any"),
            "unreachable: robots.txt answered 429",
        ),
        (("five.test", "/any"), "disallowed"),
        (("six.test", "/any"), "allowed"),
        (("big.test", "/early"), "disallowed"),
        (("big.test", "/late"), "allowed"),
        (("garbage.test", "/any"), "allowed"),
        (
            ("slow.test", "/any"),
            "unreachable: robots.txt could not be fetched: timed out after 1 s",
        ),
        // The guard refuses the redirect; the page's own fetch is refused
        // by the same guard, with its one message.
        (("private.test", "/any"), "allowed"),
    ]);
    let mut got = BTreeMap::new();
    for (host, path) in cases.keys() {
        let decision = gate.check(&url(&site, host, path)).await;
        got.insert((*host, *path), brief(&decision));
    }
    let expected: BTreeMap<_, _> = cases
        .into_iter()
        .map(|(case, what)| (case, what.to_owned()))
        .collect();
    assert_eq!(got, expected);
    // Every fetch named Accord.
    let agents: Vec<String> = site
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, agent)| agent.clone())
        .filter(|agent| agent != USER_AGENT)
        .collect();
    assert_eq!(agents, Vec::<String>::new());
    // `rules.test` was asked three times and fetched once.
    assert_eq!(site.robots_fetches("rules.test"), 1);
    // Five hops followed, the sixth not.
    assert_eq!(site.robots_fetches("five.test"), 6);
    assert_eq!(site.robots_fetches("six.test"), 6);
}

#[tokio::test]
async fn many_jobs_for_one_site_fetch_its_robots_txt_once() {
    let site = start_site().await;
    let clock = clock();
    let gate = gate(&clock);
    let checks = (0..50).map(|i| {
        let gate = gate.clone();
        let url = url(&site, "rules.test", &format!("/page/{i}"));
        tokio::spawn(async move { gate.check(&url).await })
    });
    for check in checks {
        assert!(matches!(
            check.await.unwrap(),
            RobotsDecision::Allowed { .. }
        ));
    }
    assert_eq!(site.robots_fetches("rules.test"), 1);
    assert_eq!(gate.len(), 1);
}

#[tokio::test]
async fn answers_are_fetched_again_when_they_run_out() {
    let site = start_site().await;
    let clock = clock();
    let gate = gate(&clock);
    let rules = url(&site, "rules.test", "/no-accord/x");
    let down = url(&site, "down.test", "/x");
    gate.check(&rules).await;
    gate.check(&down).await;
    // An unreachable site is tried again within minutes...
    clock.advance(TimeDelta::minutes(6));
    gate.check(&rules).await;
    gate.check(&down).await;
    assert_eq!(site.robots_fetches("rules.test"), 1);
    assert_eq!(site.robots_fetches("down.test"), 2);
    // ...a real answer holds for a day.
    clock.advance(TimeDelta::hours(24));
    assert_eq!(brief(&gate.check(&rules).await), "disallowed");
    assert_eq!(site.robots_fetches("rules.test"), 2);
}

#[tokio::test]
async fn a_site_the_guard_refuses_is_never_asked_for_robots_txt() {
    let site = start_site().await;
    let clock = clock();
    let gate = gate(&clock);
    // Loopback outside the allow-list: refused before any connection.
    let refused = Url::parse(&format!("http://127.0.0.1:{}/x", site.port)).unwrap();
    assert_eq!(brief(&gate.check(&refused).await), "allowed");
    let unresolved = Url::parse("http://nowhere.test/x").unwrap();
    assert_eq!(brief(&gate.check(&unresolved).await), "allowed");
    assert_eq!(site.seen.lock().unwrap().len(), 0);
    // What the guard refused is not kept: nothing to share.
    assert!(gate.is_empty());
}
