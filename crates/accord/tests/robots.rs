//! robots.txt shared by every worker, through the real binary: a site's
//! file is fetched once for all workers, whether two workers share one
//! control plane (SQLite) or two replicas share one PostgreSQL database,
//! and whether the workers ask one after the other or at the same time.
//! Counted from the fixture's own request log.
//!
//! Each fixture listens on a loopback address of its own (127.0.0.4x), so
//! it is an origin of its own, reached through an explicit
//! `--allow-target` entry.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use accord_client::AccordClient;
use accord_model::{ErrorKind, Job, JobErrorCode, JobId, JobState};
use accord_test_support::FixtureServer;

use common::{job, serve, wait_finished, worker};

async fn submit(client: &AccordClient, url: &str) -> JobId {
    let spec = job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{url}"}}],"max_attempts":1}}"#
    ));
    client.submit_job(&spec, None).await.unwrap().job.id
}

/// Submits `count` jobs for `/page` of `fixture` (alternating between the
/// clients) and waits for all of them to succeed.
async fn run_pages(clients: &[&AccordClient], fixture: &FixtureServer, count: usize) -> Vec<Job> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        ids.push(submit(clients[n % clients.len()], &fixture.url("/page")).await);
    }
    let mut jobs = Vec::with_capacity(count);
    for id in ids {
        let job = wait_finished(clients[0], id).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        jobs.push(job);
    }
    jobs
}

/// How many jobs each worker ran (its id ends in the name it was given).
fn by_worker(jobs: &[Job]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for job in jobs {
        let id = job.worker_id.as_ref().map(ToString::to_string);
        *counts.entry(id.unwrap_or_default()).or_insert(0) += 1;
    }
    counts
}

async fn assert_refused_by_robots(client: &AccordClient, fixture: &FixtureServer) {
    let id = submit(client, &fixture.url("/robots-private/x")).await;
    let refused = wait_finished(client, id).await;
    assert_eq!(refused.state, JobState::Dead, "{refused:?}");
    let error = refused.last_error.expect("a failed job has an error");
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert_eq!(error.code, Some(JobErrorCode::RobotsDisallowed));
    assert_eq!(fixture.hits("/robots-private"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_of_one_control_plane_fetch_robots_txt_once() {
    let one_by_one = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 41)).await;
    let at_once = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 42)).await;
    let dir = tempfile::tempdir().unwrap();
    let allow = [
        "--allow-target",
        "127.0.0.41/32",
        "--allow-target",
        "127.0.0.42/32",
    ];
    let server = serve(dir.path(), &allow);
    let client = server.client();

    // One after the other: the first worker fetches the file and is then
    // stopped; the second one reads its answer from the control plane and
    // obeys it without asking the site.
    let mut first = worker(dir.path(), server.url(), "robots-a", &allow);
    run_pages(&[&client], &one_by_one, 5).await;
    assert_eq!(one_by_one.hits("/robots.txt"), 1);
    first.interrupt_and_wait().await;
    let _second = worker(dir.path(), server.url(), "robots-b", &allow);
    let jobs = run_pages(&[&client], &one_by_one, 5).await;
    assert!(
        jobs.iter().all(|job| job
            .worker_id
            .as_ref()
            .is_some_and(|id| id.to_string().ends_with("robots-b"))),
        "{:?}",
        by_worker(&jobs)
    );
    assert_refused_by_robots(&client, &one_by_one).await;
    assert_eq!(
        one_by_one.hits("/robots.txt"),
        1,
        "robots.txt was fetched again"
    );

    // At the same time: two workers (eight slots each) start on forty jobs
    // for a site neither has seen; one of them fetches its file.
    let _third = worker(
        dir.path(),
        server.url(),
        "robots-c",
        &[&allow[..], &["--concurrency", "8"]].concat(),
    );
    let jobs = run_pages(&[&client], &at_once, 40).await;
    assert_eq!(at_once.hits("/robots.txt"), 1, "{:?}", by_worker(&jobs));
    assert_refused_by_robots(&client, &at_once).await;
    assert_eq!(at_once.hits("/robots.txt"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_fetch_robots_txt_once() {
    let database = accord_test_support::TestDatabase::create().await;
    let fixture = FixtureServer::start_on(Ipv4Addr::new(127, 0, 0, 43)).await;
    let dir = tempfile::tempdir().unwrap();
    let url = database.url();
    let shared = [
        "--database-url",
        url.as_str(),
        "--allow-target",
        "127.0.0.43/32",
    ];
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let replica_a = serve(&a_dir, &shared);
    let replica_b = serve(&b_dir, &shared);
    let worker_args = ["--allow-target", "127.0.0.43/32", "--concurrency", "8"];
    let _worker_a = worker(dir.path(), replica_a.url(), "robots-pg-a", &worker_args);
    let _worker_b = worker(dir.path(), replica_b.url(), "robots-pg-b", &worker_args);
    let (client_a, client_b) = (replica_a.client(), replica_b.client());

    let jobs = run_pages(&[&client_a, &client_b], &fixture, 40).await;
    assert_eq!(fixture.hits("/robots.txt"), 1, "{:?}", by_worker(&jobs));
    assert_refused_by_robots(&client_b, &fixture).await;
    assert_refused_by_robots(&client_a, &fixture).await;
    assert_eq!(fixture.hits("/robots.txt"), 1);
}
