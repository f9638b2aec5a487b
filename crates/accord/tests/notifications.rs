//! Notifications through the real binary: `accord up` with the SSRF guard
//! on (loopback reached only through `--allow-target 127.0.0.1/32`), the
//! demo site moved by the test, and receivers started on loopback by the
//! test that answer as each test scripts them (an error status, no answer
//! at all, a redirect) and record every request.
//!
//! Signatures are checked with the published algorithm written out here
//! (HMAC-SHA256 over `{id}.{timestamp}.{body}` with the base64 key after
//! `whsec_`), not with Accord's own code.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_client::AccordClient;
use accord_demo::{monitors, DemoSite};
use accord_model::{
    DeliveryState, DeliveryView, MonitorId, NewMonitor, NewTarget, NotifyEvent, RunState,
    ScheduleSpec, Subscription, TargetId, TargetKind,
};
use accord_test_support::SmtpSink;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How a receiver answers one request.
#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    /// Never answers (the sender's timeout ends the attempt).
    Hang,
    /// 302 to this URL.
    Redirect(String),
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    /// The status answered (`None` for a request left hanging).
    answered: Option<u16>,
}

#[derive(Debug, Default)]
struct ReceiverState {
    /// Scripted answers per path, in order; then 200.
    script: HashMap<String, VecDeque<Answer>>,
    received: Vec<Received>,
}

/// An HTTP receiver on loopback.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let answer = {
        let mut state = state.lock().unwrap();
        let answer = state
            .script
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::Status(200));
        let answered = match &answer {
            Answer::Status(status) => Some(*status),
            Answer::Hang => None,
            Answer::Redirect(_) => Some(302),
        };
        state.received.push(Received {
            path,
            headers,
            body,
            answered,
        });
        answer
    };
    match answer {
        Answer::Status(status) => (
            StatusCode::from_u16(status).unwrap(),
            format!("receiver says {status}"),
        )
            .into_response(),
        Answer::Hang => std::future::pending().await,
        Answer::Redirect(to) => {
            (StatusCode::FOUND, [(axum::http::header::LOCATION, to)], "").into_response()
        }
    }
}

impl Receiver {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn script(&self, path: &str, answers: &[Answer]) {
        self.state
            .lock()
            .unwrap()
            .script
            .insert(path.to_owned(), answers.iter().cloned().collect());
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// Standard Webhooks verification, as the README tells receivers to do it.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed))
    );
    signatures.split(' ').any(|signature| signature == expected)
}

/// HMAC-SHA256 (RFC 2104), written out.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// `accord up` (the guard on, loopback only through the allow-list) with
/// retries every 100 to 200 ms and attempts of at most a second, so the
/// retry schedule runs in the test's time.
fn up_guarded(dir: &Path) -> Process {
    up(
        dir,
        &[
            "--notify-retry-base-ms",
            "100",
            "--notify-retry-max-ms",
            "200",
            "--notify-timeout-ms",
            "1000",
            "--notify-poll-ms",
            "20",
            "--public-url",
            "https://accord.example.com",
        ],
    )
}

async fn target(client: &AccordClient, kind: TargetKind, url: &str) -> (TargetId, Option<String>) {
    let created = client
        .create_target(&NewTarget {
            name: format!("{} receiver", kind.as_str()),
            kind,
            url: Some(url.to_owned()),
            email: None,
        })
        .await
        .unwrap();
    (created.target.id, created.secret)
}

/// The demo news page monitor, paused (the test runs it by hand), telling
/// each of `targets` about changes.
async fn news_monitor(client: &AccordClient, site: &DemoSite, targets: &[TargetId]) -> MonitorId {
    let demo = monitors(&site.base_url())
        .into_iter()
        .find(|demo| demo.name == "Demo: news front page")
        .unwrap();
    let new = NewMonitor {
        schedule: ScheduleSpec {
            every: Some("1h".to_owned()),
            cron: None,
            time_zone: None,
        },
        paused: true,
        notify: targets
            .iter()
            .map(|target| Subscription {
                target: *target,
                events: [NotifyEvent::Changed].into_iter().collect(),
            })
            .collect(),
        ..demo.to_new_monitor().unwrap()
    };
    client.create_monitor(&new).await.unwrap().id
}

/// Runs the monitor with the site at `tick` and waits for the outcome.
async fn run_at(client: &AccordClient, site: &DemoSite, id: MonitorId, tick: u64) -> Value {
    site.set_tick(tick);
    let started = client.run_monitor(id).await.unwrap();
    let run = eventually(Duration::from_secs(30), "the run to finish", || async {
        let runs = client.monitor_runs(id, None, Some(10)).await.unwrap().items;
        runs.into_iter()
            .find(|run| run.id == started.id && run.state != RunState::Running)
    })
    .await;
    assert_eq!(run.state, RunState::Succeeded, "{run:?}");
    run.outcome.unwrap()
}

/// A change the monitor notices: a baseline at tick 0, then a new top story.
async fn make_a_change(client: &AccordClient, site: &DemoSite, id: MonitorId) {
    let first = run_at(client, site, id, 0).await;
    assert_eq!(first["summary"]["changed"], false);
    let changed = run_at(client, site, id, 3).await;
    assert_eq!(changed["summary"]["changed"], true, "{changed}");
}

async fn delivered(client: &AccordClient, monitor: MonitorId, target: TargetId) -> DeliveryView {
    eventually(Duration::from_secs(30), "the delivery", || async {
        client
            .monitor_deliveries(monitor, None)
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|d| d.target_id == target && d.state != DeliveryState::Pending)
    })
    .await
}

#[tokio::test]
async fn a_webhook_is_retried_until_it_lands_signed_with_one_id() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let receiver = Receiver::start().await;
    receiver.script("/hook", &[Answer::Status(500), Answer::Hang]);
    let dir = tempfile::tempdir().unwrap();
    let accord = up_guarded(dir.path());
    let client = accord.client();
    let (hook, secret) = target(&client, TargetKind::Webhook, &receiver.url("/hook")).await;
    let secret = secret.expect("a webhook's secret is shown at creation");
    assert!(secret.starts_with("whsec_"));
    let news = news_monitor(&client, &site, &[hook]).await;
    assert_eq!(
        client.get_monitor(news).await.unwrap().notify[0].target,
        hook
    );
    make_a_change(&client, &site, news).await;

    let delivery = delivered(&client, news, hook).await;
    assert_eq!(delivery.state, DeliveryState::Delivered, "{delivery:?}");
    let attempts: Vec<(u32, Option<u16>, bool)> = delivery
        .attempts
        .iter()
        .map(|a| (a.attempt, a.status, a.delivered))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, Some(500), false),
            (2, None, false),
            (3, Some(200), true)
        ]
    );
    assert_eq!(
        delivery.attempts[0].excerpt.as_deref(),
        Some("receiver says 500")
    );
    assert!(delivery.attempts[1]
        .error
        .as_deref()
        .unwrap()
        .contains("did not answer in time"));

    let got = receiver.received("/hook");
    assert_eq!(got.len(), 3);
    // One message, one id, on every attempt; each attempt signed.
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert_eq!(ids, [delivery.webhook_id.as_str(); 3]);
    for request in &got {
        assert!(verify(&secret, &request.headers, &request.body));
        assert!(!verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &request.headers,
            &request.body
        ));
    }
    let landed = got.last().unwrap();
    assert_eq!(landed.answered, Some(200));
    let payload: Value = serde_json::from_slice(&landed.body).unwrap();
    assert_eq!(payload["type"], "monitor.changed");
    assert_eq!(payload["version"], 1);
    assert_eq!(payload["data"]["events"], serde_json::json!(["changed"]));
    assert_eq!(payload["data"]["monitor"]["id"], news.to_string());
    assert_eq!(payload["data"]["summary"]["changed"], true);
    let diff = &payload["data"]["summary"]["diff"];
    assert!(diff["added"].as_u64().unwrap() > 0, "{payload}");
    assert!(!diff["lines"].as_array().unwrap().is_empty(), "{payload}");
    assert_eq!(
        payload["data"]["run"]["link"],
        format!(
            "https://accord.example.com/api/v1/monitors/{news}/runs/{}",
            delivery.run_id.unwrap()
        )
    );

    // Rotating the secret: both signatures during the grace period.
    let rotated = client.rotate_target_secret(hook, None).await.unwrap();
    let new_secret = rotated.secret.unwrap();
    client.test_target(hook).await.unwrap();
    let test = eventually(Duration::from_secs(30), "the test message", || async {
        let got = receiver.received("/hook");
        (got.len() == 4).then(|| got[3].clone())
    })
    .await;
    assert!(verify(&new_secret, &test.headers, &test.body));
    assert!(verify(&secret, &test.headers, &test.body));
    let test_payload: Value = serde_json::from_slice(&test.body).unwrap();
    assert_eq!(test_payload["type"], "test");

    // The CLI shows the same log.
    let output = std::process::Command::new(common::BIN)
        .args([
            "targets",
            "deliveries",
            &hook.to_string(),
            "--output",
            "json",
        ])
        .args(["--server", accord.url(), "--api-key", accord.key()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Vec<DeliveryView> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(listed
        .iter()
        .any(|d| d.id == delivery.id && d.attempts.len() == 3));
}

/// Runs the monitor and waits for the run to end, whatever its state.
async fn run_to_end(client: &AccordClient, id: MonitorId) -> accord_model::MonitorRun {
    let started = client.run_monitor(id).await.unwrap();
    eventually(Duration::from_secs(30), "the run to end", || async {
        let runs = client.monitor_runs(id, None, Some(10)).await.unwrap().items;
        runs.into_iter()
            .find(|run| run.id == started.id && run.state != RunState::Running)
    })
    .await
}

/// The events of every message the monitor's deliveries hold, oldest first.
async fn delivered_events(client: &AccordClient, monitor: MonitorId) -> Vec<Vec<NotifyEvent>> {
    let mut deliveries = client
        .monitor_deliveries(monitor, None)
        .await
        .unwrap()
        .items;
    deliveries.sort_by_key(|d| d.created_at);
    deliveries
        .into_iter()
        .map(|d| d.events.into_iter().collect())
        .collect()
}

/// A smoke check on a site that does not answer at all: the job dies
/// (connection refused on both attempts) and the run records a failed
/// verdict whose `failed` message goes out once; a second dead run sends
/// nothing more; the site coming back sends `recovered`.
#[tokio::test]
async fn a_site_that_is_down_fails_its_smoke_check_once_then_recovers() {
    let receiver = Receiver::start().await;
    // A port nothing listens on, until the test serves the site there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let accord = up_guarded(dir.path());
    let client = accord.client();
    let (hook, _) = target(&client, TargetKind::Webhook, &receiver.url("/hook")).await;
    // A robots.txt that could not be fetched keeps refusing for a minute
    // after the site is back (RFC 9309: unreachable means disallow); this
    // test is about the page itself.
    client
        .create_policy(&accord_model::NewPolicy {
            pattern: "127.0.0.1".to_owned(),
            obey_robots: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    let new = NewMonitor {
        name: "site down".to_owned(),
        workflow: accord_model::WorkflowKind::SmokeCheck,
        url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
        engine: accord_model::Engine::Http,
        input: serde_json::json!({"required_texts": ["All good"]}),
        schedule: ScheduleSpec {
            every: Some("1h".to_owned()),
            cron: None,
            time_zone: None,
        },
        tags: Default::default(),
        paused: true,
        notify: vec![Subscription {
            target: hook,
            events: [NotifyEvent::Failed, NotifyEvent::Recovered]
                .into_iter()
                .collect(),
        }],
    };
    let monitor = client.create_monitor(&new).await.unwrap().id;

    let down = run_to_end(&client, monitor).await;
    assert_eq!(down.state, RunState::Failed, "{down:?}");
    let outcome = down
        .outcome
        .clone()
        .expect("a dead smoke check has a verdict");
    assert_eq!(outcome["summary"]["newly_failed"], true, "{outcome}");
    let load = &outcome["detail"]["checks"][0];
    assert_eq!(load["check"], "load", "{outcome}");
    assert_eq!(load["status"], "failed", "{outcome}");
    assert!(down.error.is_some(), "{down:?}");
    let failed = delivered(&client, monitor, hook).await;
    assert_eq!(failed.state, DeliveryState::Delivered, "{failed:?}");
    assert_eq!(failed.events, [NotifyEvent::Failed].into_iter().collect());
    let body: Value = serde_json::from_slice(&receiver.received("/hook")[0].body).unwrap();
    assert_eq!(body["type"], "monitor.failed", "{body}");
    let checks = body["data"]["summary"].to_string();
    assert!(checks.contains("did not load"), "{body}");
    assert!(checks.contains("Connection refused"), "{body}");

    // Still down: no second `failed`.
    let still = run_to_end(&client, monitor).await;
    assert_eq!(still.state, RunState::Failed, "{still:?}");
    assert_eq!(still.outcome.unwrap()["summary"]["newly_failed"], false);

    // Back up.
    let app = axum::Router::new()
        .fallback(|| async { axum::response::Html("<html><body><p>All good</p></body></html>") });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let up = run_to_end(&client, monitor).await;
    assert_eq!(up.state, RunState::Succeeded, "{up:?}");
    assert_eq!(up.outcome.unwrap()["summary"]["recovered"], true);
    let events = eventually(Duration::from_secs(30), "the recovery message", || async {
        let events = delivered_events(&client, monitor).await;
        (events.len() == 2).then_some(events)
    })
    .await;
    assert_eq!(
        events,
        vec![vec![NotifyEvent::Failed], vec![NotifyEvent::Recovered]]
    );
    let hooks = eventually(Duration::from_secs(30), "both deliveries", || async {
        let hooks = receiver.received("/hook");
        (hooks.len() == 2).then_some(hooks)
    })
    .await;
    let last: Value = serde_json::from_slice(&hooks[1].body).unwrap();
    assert_eq!(last["type"], "monitor.recovered", "{last}");
}

#[tokio::test]
async fn private_targets_are_refused_at_creation_and_through_redirects() {
    let receiver = Receiver::start().await;
    // 127.0.0.2 is loopback, and outside the allow-list.
    let elsewhere = format!("http://127.0.0.2:{}/inside", receiver.addr.port());
    receiver.script("/moved", &[Answer::Redirect(elsewhere)]);
    let dir = tempfile::tempdir().unwrap();
    let accord = up_guarded(dir.path());
    let client = accord.client();

    for url in [
        "http://10.1.2.3/hook",
        "http://127.0.0.2/hook",
        "http://localhost:9/x",
    ] {
        let refused = client
            .create_target(&NewTarget {
                name: "private".to_owned(),
                kind: TargetKind::Webhook,
                url: Some(url.to_owned()),
                email: None,
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Some("target_not_allowed"),
            "{url}: {refused}"
        );
    }
    let bad_event = accord
        .http()
        .post(format!("{}/api/v1/monitors", accord.url()))
        .json(&serde_json::json!({
            "name": "m", "workflow": "page_change", "url": "https://example.com/",
            "schedule": {"every": "1h"},
            "notify": [{"target": TargetId::new(), "events": ["exploded"]}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_event.status(), 422);
    let body: Value = bad_event.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("notify[0].events"),
        "{body}"
    );
    // A target of no workspace of the caller's is refused, naming the field.
    let unknown = accord
        .http()
        .post(format!("{}/api/v1/monitors", accord.url()))
        .json(&serde_json::json!({
            "name": "m", "workflow": "page_change", "url": "https://example.com/",
            "schedule": {"every": "1h"},
            "notify": [{"target": TargetId::new(), "events": ["changed"]}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    let body: Value = unknown.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("notify[0].target"),
        "{body}"
    );

    let (moved, _) = target(&client, TargetKind::Webhook, &receiver.url("/moved")).await;
    let test = client.test_target(moved).await.unwrap();
    let failed = eventually(Duration::from_secs(30), "the refused delivery", || async {
        let page = client.target_deliveries(moved, None).await.unwrap();
        page.items
            .into_iter()
            .find(|d| d.id == test.id && d.state == DeliveryState::Failed)
    })
    .await;
    assert_eq!(failed.attempts.len(), 1, "refused for good, not retried");
    let error = failed.attempts[0].error.as_deref().unwrap();
    // The owner reads the code and the guard's one sentence, never the
    // address the name stood for.
    assert!(
        error.starts_with("target_blocked: refused target ")
            && error.ends_with(": the host is not public or does not resolve"),
        "{error}"
    );
    assert_eq!(receiver.received("/moved").len(), 1);
}

#[tokio::test]
async fn slack_and_discord_get_their_own_formats() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let accord = up_guarded(dir.path());
    let client = accord.client();
    let (slack, secret) = target(&client, TargetKind::Slack, &receiver.url("/slack")).await;
    assert_eq!(secret, None, "only webhooks are signed");
    let (discord, _) = target(&client, TargetKind::Discord, &receiver.url("/discord")).await;
    let news = news_monitor(&client, &site, &[slack, discord]).await;
    make_a_change(&client, &site, news).await;
    delivered(&client, news, slack).await;
    delivered(&client, news, discord).await;

    // Slack: https://api.slack.com/messaging/webhooks and Block Kit.
    let body: Value = serde_json::from_slice(&receiver.received("/slack")[0].body).unwrap();
    assert!(body["text"]
        .as_str()
        .unwrap()
        .contains("Demo: news front page"));
    let blocks = body["blocks"].as_array().unwrap();
    assert!((1..=50).contains(&blocks.len()));
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    for block in blocks {
        let kind = block["type"].as_str().unwrap();
        assert!(["header", "section", "context"].contains(&kind), "{block}");
        if kind == "section" {
            assert_eq!(block["text"]["type"], "mrkdwn");
            assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 3_000);
        }
    }
    assert!(
        blocks.iter().any(|b| b["text"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("```diff"))),
        "the diff is shown: {body}"
    );

    // Discord: https://discord.com/developers/docs/resources/webhook#execute-webhook
    let body: Value = serde_json::from_slice(&receiver.received("/discord")[0].body).unwrap();
    let embeds = body["embeds"].as_array().unwrap();
    assert!((1..=10).contains(&embeds.len()));
    let embed = &embeds[0];
    assert!(embed["title"].as_str().unwrap().chars().count() <= 256);
    assert!(embed["description"].as_str().unwrap().chars().count() <= 4_096);
    assert!(embed["color"].as_u64().unwrap() <= 0xFF_FF_FF);
    let fields = embed["fields"].as_array().unwrap();
    assert!(fields.len() <= 25);
    for field in fields {
        assert!(field["name"].as_str().unwrap().chars().count() <= 256);
        assert!(field["value"].as_str().unwrap().chars().count() <= 1_024);
    }
    assert!(embed["url"]
        .as_str()
        .unwrap()
        .starts_with("https://accord.example.com/api/v1/monitors/"));
}

#[tokio::test]
async fn a_control_plane_killed_before_delivery_delivers_after_restart() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let receiver = Receiver::start().await;
    // The first attempt is left hanging: the run is complete and its
    // message claimed, but no delivery is recorded when the process dies.
    receiver.script("/hook", &[Answer::Hang]);
    let dir = tempfile::tempdir().unwrap();
    let mut accord = up_guarded(dir.path());
    let client = accord.client();
    let (hook, secret) = target(&client, TargetKind::Webhook, &receiver.url("/hook")).await;
    let news = news_monitor(&client, &site, &[hook]).await;
    make_a_change(&client, &site, news).await;
    eventually(Duration::from_secs(30), "the first attempt", || async {
        (!receiver.received("/hook").is_empty()).then_some(())
    })
    .await;
    accord.kill_hard();
    let _ = accord.child.wait();

    let accord = up_guarded(dir.path());
    let client = accord.client();
    let delivery = delivered(&client, news, hook).await;
    assert_eq!(delivery.state, DeliveryState::Delivered);
    let got = receiver.received("/hook");
    // At least once on the wire, with one id: a receiver that drops
    // repeats by webhook-id acts on it exactly once.
    let landed: Vec<&Received> = got.iter().filter(|r| r.answered == Some(200)).collect();
    assert_eq!(landed.len(), 1, "{got:?}");
    assert!(got
        .iter()
        .all(|r| r.headers["webhook-id"] == delivery.webhook_id.as_str()));
    assert!(verify(
        &secret.unwrap(),
        &landed[0].headers,
        &landed[0].body
    ));
    assert_eq!(delivery.attempts.last().unwrap().status, Some(200));
}

/// `accord up` sending email through the SMTP sink (plain SMTP: the sink
/// is on loopback, reached through the allow-list like the receivers).
fn up_with_smtp(dir: &Path, sink: &SmtpSink) -> Process {
    let port = sink.addr().port().to_string();
    up(
        dir,
        &[
            "--notify-retry-base-ms",
            "100",
            "--notify-retry-max-ms",
            "200",
            "--notify-timeout-ms",
            "2000",
            "--notify-poll-ms",
            "20",
            "--public-url",
            "https://accord.example.com",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            &port,
            "--smtp-tls",
            "none",
            "--smtp-from",
            "Accord <accord@example.com>",
        ],
    )
}

async fn email_target(client: &AccordClient, email: &str) -> TargetId {
    client
        .create_target(&NewTarget {
            name: "ops mail".to_owned(),
            kind: TargetKind::Email,
            url: None,
            email: Some(email.to_owned()),
        })
        .await
        .unwrap()
        .target
        .id
}

#[tokio::test]
async fn an_email_reaches_the_smtp_server_with_the_diff_in_text_and_html() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let sink = SmtpSink::start().await.unwrap();
    // The first try is refused for now (451): the message is retried.
    sink.refuse_next(1);
    let dir = tempfile::tempdir().unwrap();
    let accord = up_with_smtp(dir.path(), &sink);
    let client = accord.client();

    // An invalid address names the field.
    let refused = client
        .create_target(&NewTarget {
            name: "bad".to_owned(),
            kind: TargetKind::Email,
            url: None,
            email: Some("ops@example.com, not-an-address".to_owned()),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("validation_failed"), "{refused}");
    assert!(refused.to_string().contains("email"), "{refused}");
    assert!(refused.to_string().contains("recipient 2"), "{refused}");

    let mail = email_target(&client, "ops@example.com, oncall@example.org").await;
    let news = news_monitor(&client, &site, &[mail]).await;
    make_a_change(&client, &site, news).await;
    let delivery = delivered(&client, news, mail).await;
    assert_eq!(delivery.state, DeliveryState::Delivered, "{delivery:?}");
    let attempts: Vec<(Option<u16>, bool)> = delivery
        .attempts
        .iter()
        .map(|a| (a.status, a.delivered))
        .collect();
    assert_eq!(attempts, [(Some(451), false), (Some(250), true)]);

    let received = sink.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let email = &received[0];
    assert_eq!(email.from, "accord@example.com");
    assert_eq!(email.to, ["ops@example.com", "oncall@example.org"]);
    assert_eq!(
        email.header("Subject").as_deref(),
        Some("[Accord] Demo: news front page: changed")
    );
    let message_id = email.header("Message-ID").unwrap();
    assert_eq!(message_id, format!("<{}@example.com>", delivery.webhook_id));
    let run_link = format!(
        "https://accord.example.com/api/v1/monitors/{news}/runs/{}",
        delivery.run_id.unwrap()
    );
    let text = email.part("text/plain").expect("a text part");
    assert!(
        text.starts_with("Demo: news front page: changed\n"),
        "{text}"
    );
    assert!(text.contains("\nDiff:\n"), "{text}");
    assert!(text.contains(&format!("Full result: {run_link}")), "{text}");
    let html = email.part("text/html").expect("an HTML part");
    assert!(
        html.contains("<h2>Demo: news front page: changed</h2>"),
        "{html}"
    );
    assert!(html.contains("<h3>Diff</h3>"), "{html}");
    assert!(html.contains(&format!("<a href=\"{run_link}\">")), "{html}");
    // Every diff line of the text is in the HTML, escaped.
    let diff: Vec<&str> = text
        .split("\nDiff:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|line| !line.is_empty())
        .collect();
    assert!(!diff.is_empty(), "{text}");
    for line in diff {
        let escaped = line
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;");
        assert!(html.contains(&escaped), "{escaped:?} in {html}");
    }

    // A test message goes the same way.
    client.test_target(mail).await.unwrap();
    let test = eventually(Duration::from_secs(30), "the test email", || async {
        sink.received().get(1).cloned()
    })
    .await;
    assert_eq!(
        test.header("Subject").as_deref(),
        Some("[Accord] Accord test message for Accord test message")
    );
}

#[tokio::test]
async fn email_targets_are_refused_without_an_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let accord = up_guarded(dir.path());
    let refused = accord
        .client()
        .create_target(&NewTarget {
            name: "mail".to_owned(),
            kind: TargetKind::Email,
            url: None,
            email: Some("ops@example.com".to_owned()),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("validation_failed"), "{refused}");
    let message = refused.to_string();
    assert!(message.contains("kind"), "{message}");
    assert!(message.contains("--smtp-host"), "{message}");
}

#[tokio::test]
async fn feeds_list_the_last_change_until_the_key_is_revoked() {
    let site = DemoSite::bind_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accord = up_guarded(dir.path());
    let admin = accord.client();
    // A viewer key makes the token; revoking that key ends it.
    let viewer = admin
        .create_key(&accord_model::NewApiKey {
            name: "feed reader".to_owned(),
            role: accord_model::Role::Viewer,
            workspace: None,
            expires_at: None,
            rate_limit: None,
        })
        .await
        .unwrap();
    let reader = client_for(accord.url(), &viewer.token);
    let created = reader.create_feed_token("my reader").await.unwrap();
    assert!(created.token.starts_with("acf_"));
    assert_eq!(
        created.workspace_feed,
        format!("/feeds/{}/workspace.atom", created.token)
    );
    let listed = reader.list_feed_tokens().await.unwrap().items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_id, viewer.key.id);
    assert!(!serde_json::to_string(&listed)
        .unwrap()
        .contains(&created.token));

    // A monitor notifying nobody still has a feed.
    let news = news_monitor(&admin, &site, &[]).await;
    make_a_change(&admin, &site, news).await;
    let runs = admin
        .monitor_runs(news, None, Some(10))
        .await
        .unwrap()
        .items;
    let changed_run = runs.iter().map(|run| run.id).max().unwrap();

    // Read without any key: the token in the path is the credential.
    let anonymous = reqwest::Client::new();
    let answer = anonymous
        .get(format!("{}{}", accord.url(), created.workspace_feed))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let feed = accord_test_support::parse_atom(&answer.text().await.unwrap()).unwrap();
    assert_eq!(feed.title, "Accord: monitors of default");
    assert_eq!(
        feed.links,
        [format!(
            "https://accord.example.com/feeds/{}/workspace.atom",
            created.token
        )]
    );
    // The baseline run reported nothing: one entry, the change.
    assert_eq!(feed.entries.len(), 1, "{feed:?}");
    let entry = &feed.entries[0];
    assert_eq!(
        entry.id,
        format!("urn:accord:monitor:{news}:run:{changed_run}")
    );
    assert_eq!(entry.title, "Demo: news front page: changed");
    assert_eq!(entry.categories, ["changed"]);
    assert_eq!(feed.updated, entry.updated);
    assert!(entry.content.as_deref().unwrap().contains("<h3>Diff</h3>"));

    let monitor_path = created
        .monitor_feed
        .replace("{monitor_id}", &news.to_string());
    let feed =
        accord_test_support::parse_atom(&reader.read_feed(&monitor_path).await.unwrap()).unwrap();
    assert_eq!(feed.id, format!("urn:accord:monitor:{news}:events"));
    assert_eq!(feed.title, "Accord: Demo: news front page");
    assert_eq!(feed.entries.len(), 1);

    // What is not there is 404, alike.
    let not_found = |path: String| {
        let reader = reader.clone();
        async move {
            let err = reader.read_feed(&path).await.unwrap_err();
            assert_eq!(err.code(), Some("feed_not_found"), "{path}: {err}");
        }
    };
    not_found(
        created
            .monitor_feed
            .replace("{monitor_id}", &MonitorId::new().to_string()),
    )
    .await;
    not_found(
        created
            .workspace_feed
            .replace(&created.token[4..], &"x".repeat(43)),
    )
    .await;
    not_found("/feeds/acf_short/workspace.atom".to_owned()).await;

    // The CLI lists the token (never the token itself).
    let output = std::process::Command::new(common::BIN)
        .args(["feeds", "list-tokens", "--output", "json"])
        .args(["--server", accord.url(), "--api-key", &viewer.token])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let cli: Vec<accord_model::FeedTokenView> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(cli, listed);
    assert!(!stdout.contains(&created.token));

    // The key is revoked: its token stops working.
    admin
        .revoke_key(viewer.key.id.as_str(), None)
        .await
        .unwrap();
    not_found(created.workspace_feed.clone()).await;
}

/// Two control planes on one PostgreSQL database both run the delivery
/// loop over one outbox: every message reaches the receiver once, with one
/// attempt, whichever replica sent it.
#[tokio::test]
async fn two_postgres_replicas_deliver_each_message_once() {
    const MESSAGES: usize = 120;
    let database = accord_test_support::TestDatabase::create().await;
    let url = database.url();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--database-url",
        url.as_str(),
        "--notify-poll-ms",
        "10",
        "--notify-timeout-ms",
        "5000",
    ];
    let replicas: Vec<Process> = ["one", "two"]
        .iter()
        .map(|name| {
            let replica_dir = dir.path().join(name);
            std::fs::create_dir_all(&replica_dir).unwrap();
            serve(&replica_dir, &flags)
        })
        .collect();
    let clients: Vec<AccordClient> = replicas.iter().map(Process::client).collect();
    let (hook, _) = target(&clients[0], TargetKind::Webhook, &receiver.url("/hook")).await;
    // Queued through both replicas, in bursts both loops see at once.
    let mut queued = std::collections::BTreeSet::new();
    for i in 0..MESSAGES {
        let sent = clients[i % 2].test_target(hook).await.unwrap();
        queued.insert(sent.webhook_id);
    }
    assert_eq!(queued.len(), MESSAGES);

    let delivered = eventually(Duration::from_secs(60), "every delivery", || async {
        let page = clients[1]
            .target_deliveries(hook, Some(200))
            .await
            .unwrap()
            .items;
        let done: Vec<DeliveryView> = page
            .into_iter()
            .filter(|d| d.state == DeliveryState::Delivered)
            .collect();
        (done.len() == MESSAGES).then_some(done)
    })
    .await;
    for delivery in &delivered {
        assert_eq!(delivery.attempts.len(), 1, "{delivery:?}");
    }
    let received: Vec<String> = receiver
        .received("/hook")
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    let distinct: std::collections::BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(received.len(), MESSAGES, "no message was sent twice");
    assert_eq!(distinct, queued);
}
