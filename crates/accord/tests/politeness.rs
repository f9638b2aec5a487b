//! Per-domain politeness through the real binary: `Retry-After` pauses one
//! domain while another keeps being served, a concurrency cap and a least
//! gap hold across two workers of two replicas on PostgreSQL with Redis,
//! and a circuit breaker opens, lets one probe through and closes; a
//! domain policy that says `"on_open_breaker": "fail"` fails jobs for an
//! open breaker at once with `domain_unavailable` instead.
//!
//! Every figure is read from the fixtures' own request logs. Each fixture
//! listens on a loopback address of its own (127.0.0.3x), so it is a domain
//! of its own, reached through an explicit `--allow-target` entry.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use accord_client::AccordClient;
use accord_model::{
    BreakerReason, BreakerStatus, ErrorKind, JobErrorCode, JobId, JobState, NewPolicy,
};
use accord_test_support::{FixtureServer, LoggedRequest};

use common::{eventually, job, serve, up, wait_finished, worker};

async fn submit(client: &AccordClient, url: &str, max_attempts: u32) -> JobId {
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{url}"}}],"max_attempts":{max_attempts},"timeout_seconds":30}}"#
    ));
    client.submit_job(&spec, None).await.unwrap().job.id
}

/// The most requests the fixture was handling at once.
fn most_at_once(requests: &[LoggedRequest]) -> usize {
    let mut edges: Vec<(std::time::Instant, i32)> = requests
        .iter()
        .flat_map(|r| [(r.started, 1), (r.ended, -1)])
        .collect();
    // At equal instants an end comes before a start.
    edges.sort_by_key(|&(at, delta)| (at, delta));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pauses_one_domain_while_another_is_served() {
    let paused = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 31)).await;
    let busy = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 32)).await;
    let dir = tempfile::tempdir().unwrap();
    let server = up(
        dir.path(),
        &[
            "--allow-target",
            "127.0.0.31/32",
            "--allow-target",
            "127.0.0.32/32",
        ],
    );
    let client = server.client();

    // The first answer is 429 with `Retry-After: 4`. The job may run once
    // only: waiting for the site must not use up that attempt.
    let first = submit(&client, &paused.url("/retry-after/e2e/1/4"), 1).await;
    eventually(Duration::from_secs(30), "the 429", || async {
        (paused.hits("/retry-after/") == 1).then_some(())
    })
    .await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(submit(&client, &paused.url("/page"), 1).await);
    }
    for _ in 0..20 {
        others.push(submit(&client, &busy.url("/page"), 1).await);
    }
    for id in std::iter::once(first).chain(others) {
        let job = wait_finished(&client, id).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }

    let refused = paused.requests("/retry-after/")[0].clone();
    let resumed = refused.ended + Duration::from_secs(4);
    // Nothing reached the paused domain until its Retry-After was over
    // (the pause is counted from when the worker heard of it, a little
    // after the fixture's answer: the 100 ms of slack is that gap).
    let paused_log: Vec<LoggedRequest> = paused
        .requests("/")
        .into_iter()
        .filter(|r| r.path != "/robots.txt" && r.started > refused.started)
        .collect();
    assert_eq!(paused_log.len(), 4, "the retried job and three others");
    for request in &paused_log {
        assert!(
            request.started + Duration::from_millis(100) >= resumed,
            "{} reached the paused domain {:?} before its Retry-After was over",
            request.path,
            resumed - request.started
        );
    }
    // Meanwhile the other domain was served.
    let busy_log = busy.requests("/page");
    assert_eq!(busy_log.len(), 20);
    assert!(
        busy_log.iter().any(|r| r.started < resumed),
        "the other domain was served while the first one was paused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_cap_and_least_gap_hold_across_workers_and_replicas() {
    const JOBS: usize = 500;
    const CAP: usize = 3;
    const GAP: Duration = Duration::from_millis(60);
    let database = accord_test_support::TestDatabase::create().await;
    let fixture = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 33)).await;
    let dir = tempfile::tempdir().unwrap();
    let url = database.url();
    let redis = accord_test_support::shared_redis_url();
    let gap_ms = GAP.as_millis().to_string();
    let shared = [
        "--database-url",
        url.as_str(),
        "--redis-url",
        redis.as_str(),
        "--allow-target",
        "127.0.0.33/32",
        "--domain-max-concurrent",
        "3",
        "--domain-min-gap-ms",
        gap_ms.as_str(),
    ];
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let replica_a = serve(&a_dir, &shared);
    let replica_b = serve(&b_dir, &shared);
    let worker_args = ["--allow-target", "127.0.0.33/32", "--concurrency", "8"];
    let _worker_a = worker(dir.path(), replica_a.url(), "polite-a", &worker_args);
    let _worker_b = worker(dir.path(), replica_b.url(), "polite-b", &worker_args);

    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{}"}}],"max_attempts":1}}"#,
        fixture.url("/slow/200")
    ));
    let (client_a, client_b) = (replica_a.client(), replica_b.client());
    let mut ids = Vec::with_capacity(JOBS);
    for batch in 0..JOBS / 50 {
        let client = if batch % 2 == 0 { &client_a } else { &client_b };
        let jobs = client.submit_jobs(vec![spec.clone(); 50]).await.unwrap();
        ids.extend(jobs.into_iter().map(|job| job.id));
    }
    eventually(Duration::from_secs(240), "every job to finish", || async {
        (fixture.hits("/slow/") >= JOBS).then_some(())
    })
    .await;
    for id in ids {
        let job = wait_finished(&client_a, id).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }

    let log = fixture.requests("/slow/");
    assert_eq!(log.len(), JOBS, "each job fetched its page once");
    let most = most_at_once(&log);
    assert!(
        most <= CAP,
        "{most} requests at once, over the cap of {CAP}"
    );
    // Permits are granted at least GAP apart on Redis's clock; a request
    // reaches the fixture's handler a moment after its permit, and that
    // moment varies on a busy 2-core machine (20 ms and more while the
    // whole suite runs), so one pair of arrivals can be closer than GAP
    // without any permit being. What the fixture can tell is the shape:
    // with the gap enforced, arrivals closer than GAP are rare and only
    // by the jitter; without it, three slots freeing at random times put
    // about half of all consecutive arrivals under 50 ms of each other.
    let gaps: Vec<Duration> = log
        .windows(2)
        .map(|pair| pair[1].started - pair[0].started)
        .collect();
    let jitter = Duration::from_millis(15);
    let close = gaps.iter().filter(|gap| **gap + jitter < GAP).count();
    let mut sorted = gaps.clone();
    sorted.sort();
    assert!(
        close * 10 <= gaps.len(),
        "{close} of {} consecutive requests started more than {jitter:?} under the least gap \
         of {GAP:?} apart (closest {:?}, median {:?})",
        gaps.len(),
        sorted[0],
        sorted[sorted.len() / 2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opens_probes_once_and_closes() {
    let fixture = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 34)).await;
    let dir = tempfile::tempdir().unwrap();
    let server = up(
        dir.path(),
        &[
            "--allow-target",
            "127.0.0.34/32",
            "--domain-breaker-failures",
            "3",
            "--domain-breaker-open-ms",
            "2000",
        ],
    );
    let client = server.client();

    // Three failures in a row open the breaker.
    let mut failing = Vec::new();
    for _ in 0..3 {
        failing.push(submit(&client, &fixture.url("/status/503"), 1).await);
    }
    for id in failing {
        assert_eq!(wait_finished(&client, id).await.state, JobState::Dead);
    }
    // Jobs for the domain now wait; after the breaker's time one probe
    // goes alone, and when it succeeds the rest follow.
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(submit(&client, &fixture.url("/page"), 1).await);
    }
    for id in waiting {
        let job = wait_finished(&client, id).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }

    let failures = fixture.requests("/status/503");
    assert_eq!(failures.len(), 3);
    let opened = failures.iter().map(|r| r.ended).max().unwrap();
    let after = fixture.requests("/page");
    assert_eq!(after.len(), 4);
    let probe = &after[0];
    assert!(
        probe.started >= opened + Duration::from_millis(1_900),
        "the probe went {:?} after the breaker opened, before its 2 s were up",
        probe.started - opened
    );
    for request in &after[1..] {
        assert!(
            request.started >= probe.ended,
            "a request started while the probe was out"
        );
    }

    // The domain's view tells the story: opened after 3 failures, half-open
    // for the probe, closed when it succeeded; newest first, in time order.
    let view: accord_model::DomainSummary = server
        .http()
        .get(format!("{}/api/v1/domains/127.0.0.34", server.url()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let story: Vec<(BreakerStatus, BreakerReason, Option<u32>)> = view
        .breaker_history
        .iter()
        .map(|t| (t.to, t.reason, t.failures))
        .collect();
    assert_eq!(
        story,
        [
            (BreakerStatus::Closed, BreakerReason::ProbeSucceeded, None),
            (BreakerStatus::HalfOpen, BreakerReason::ProbeDue, None),
            (BreakerStatus::Open, BreakerReason::FailuresInARow, Some(3)),
        ]
    );
    let times: Vec<_> = view.breaker_history.iter().map(|t| t.at).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let open_for = times[1] - times[2];
    assert!(
        open_for >= chrono::TimeDelta::milliseconds(1_900),
        "half-open {open_for} after opening"
    );
    assert_eq!(view.breaker, BreakerStatus::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_fails_jobs_at_once_when_the_policy_says_so() {
    let failing = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 35)).await;
    let waiting = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 36)).await;
    let dir = tempfile::tempdir().unwrap();
    let server = up(
        dir.path(),
        &[
            "--allow-target",
            "127.0.0.35/32",
            "--allow-target",
            "127.0.0.36/32",
            "--domain-breaker-failures",
            "2",
            "--domain-breaker-open-ms",
            "600000",
        ],
    );
    let client = server.client();
    // A bad value is refused naming the field.
    let bad = client
        .create_policy(&NewPolicy {
            pattern: "127.0.0.35".to_owned(),
            on_open_breaker: Some("give_up".to_owned()),
            ..NewPolicy::default()
        })
        .await
        .expect_err("an unknown choice");
    assert!(bad.to_string().contains("on_open_breaker"), "{bad}");
    let policy = client
        .create_policy(&NewPolicy {
            pattern: "127.0.0.35".to_owned(),
            on_open_breaker: Some("fail".to_owned()),
            ..NewPolicy::default()
        })
        .await
        .unwrap();
    assert_eq!(policy.on_open_breaker, accord_model::OnOpenBreaker::Fail);

    // Two failures in a row open each domain's breaker for ten minutes.
    for fixture in [&failing, &waiting] {
        for _ in 0..2 {
            let id = submit(&client, &fixture.url("/status/503"), 1).await;
            assert_eq!(wait_finished(&client, id).await.state, JobState::Dead);
        }
    }
    // The policy's domain fails its next job at once, for good, saying
    // which domain and when it is probed again; the fixture never sees it.
    let fails = submit(&client, &failing.url("/page"), 3).await;
    let job = wait_finished(&client, fails).await;
    assert_eq!(job.state, JobState::Dead, "{job:?}");
    assert_eq!(job.attempt, 1, "no attempt is retried: {job:?}");
    let error = job.last_error.expect("an error");
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert_eq!(error.code, Some(JobErrorCode::DomainUnavailable));
    assert!(
        error
            .message
            .starts_with("domain 127.0.0.35 is unavailable: its circuit breaker is open"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("probes again at 20"),
        "{}",
        error.message
    );
    assert!(failing.requests("/page").is_empty());
    // The other domain has no such policy: its job waits (deferred, no
    // attempt used) rather than failing.
    let waits = submit(&client, &waiting.url("/page"), 1).await;
    let deferred = eventually(
        Duration::from_secs(30),
        "the job to be deferred",
        || async {
            let kinds = common::event_kinds(&client, waits).await;
            kinds.iter().any(|kind| kind == "released").then_some(kinds)
        },
    )
    .await;
    let job = client.get_job(waits).await.unwrap();
    assert!(!job.state.is_terminal(), "{job:?} after {deferred:?}");
    assert!(waiting.requests("/page").is_empty());
}
