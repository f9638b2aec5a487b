//! Domain policies through the real binary: `accord policies` from the
//! command line, a denied host refused at submission (`403
//! policy_denied`), a redirect that lands on a denied host failing its job
//! at run time with code `policy_denied`, and a policy's `allow_cidrs` as
//! the way to one internal host (and that host only).

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use accord_client::ClientError;
use accord_model::{ErrorKind, JobErrorCode, JobState};
use accord_test_support::{FixtureServer, PAGE_H1};
use common::*;

fn accord_cli(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(BIN)
        .args(args)
        .env_remove("ACCORD_API_KEY")
        .output()
        .expect("run accord");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn navigate(url: &str) -> accord_model::NewJob {
    job(&format!(
        r#"{{"steps":[{{"action":"navigate","url":"{url}"}},{{"action":"extract","fields":{{"title":{{"selector":"h1"}}}}}}]}}"#
    ))
}

fn api_message(err: &ClientError) -> (&str, &str) {
    match err {
        ClientError::Api { code, message, .. } => (code, message),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn a_denied_host_is_refused_at_submission_and_the_cli_manages_policies() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let accord = up(dir.path(), &[]);
    let url = accord.url().to_owned();
    let client = accord.client();
    let cli = |args: &[&str]| {
        let mut all = vec!["policies"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &url, "--data-dir", data]);
        accord_cli(&all)
    };

    // Deny by default, from the command line.
    let (ok, out, err) = cli(&["create", "--pattern", "*", "--deny"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("allowed:             false"), "{out}");
    let refused = client
        .submit_job(&navigate(&fixture.url("/page")), None)
        .await
        .unwrap_err();
    assert_eq!(
        api_message(&refused),
        (
            "policy_denied",
            "steps[0]: domain policy `*` denies the host (127.0.0.1)"
        )
    );
    // A bad policy is refused naming the field, and the CLI says so.
    let (ok, _, err) = cli(&[
        "create",
        "--pattern",
        "127.0.0.1",
        "--requests-per-minute",
        "0",
    ]);
    assert!(
        !ok && err.contains("invalid_policy") && err.contains("requests_per_minute"),
        "{err}"
    );

    // Allow the fixture's host, HTTP only: its job runs.
    let (ok, out, err) = cli(&[
        "create",
        "--pattern",
        "127.0.0.1",
        "--engines",
        "http",
        "--requests-per-minute",
        "600",
        "-o",
        "json",
    ]);
    assert!(ok, "{out}{err}");
    let allowed: accord_model::PolicyView = serde_json::from_str(&out).unwrap();
    assert_eq!(allowed.requests_per_minute, Some(600));
    let submitted = client
        .submit_job(&navigate(&fixture.url("/page")), None)
        .await
        .unwrap();
    let done = wait_finished(&client, submitted.job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(
        done.result.unwrap().extracted["title"],
        accord_model::ExtractedValue::One(Some(PAGE_H1.to_owned()))
    );
    // ... but not on the browser.
    let mut browser = navigate(&fixture.url("/page"));
    browser.engine = accord_model::Engine::Browser;
    let refused = client.submit_job(&browser, None).await.unwrap_err();
    assert_eq!(api_message(&refused).0, "policy_denied");
    assert!(
        api_message(&refused)
            .1
            .contains("`127.0.0.1` forbids the browser engine"),
        "{refused}"
    );

    // List, change, delete.
    let (ok, out, err) = cli(&["list"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "a header and two policies, most specific first: {out}"
    );
    assert!(
        lines[1].contains("127.0.0.1") && lines[2].contains(" * "),
        "{out}"
    );
    let id = allowed.id.to_string();
    let (ok, out, err) = cli(&[
        "update",
        &id,
        "--clear",
        "requests_per_minute",
        "--clear",
        "engines",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("requests per minute: -") && out.contains("engines:             any"),
        "{out}"
    );
    let (ok, _, err) = cli(&["delete", &id]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["get", &id]);
    assert!(!ok && err.contains("policy_not_found"), "{err}");
    let refused = client
        .submit_job(&navigate(&fixture.url("/page")), None)
        .await
        .unwrap_err();
    assert_eq!(api_message(&refused).0, "policy_denied");

    // Each refusal is in the audit log, naming the rule (written in the
    // background: wait for the third).
    let audit = eventually(
        std::time::Duration::from_secs(30),
        "three refusals in the audit log",
        || {
            let client = client.clone();
            async move {
                let page = client
                    .audit(&[
                        ("action", "create_job".to_owned()),
                        ("outcome", "forbidden".to_owned()),
                    ])
                    .await
                    .unwrap();
                (page.items.len() >= 3).then_some(page)
            }
        },
    )
    .await;
    assert_eq!(audit.items.len(), 3, "{audit:?}");
    assert!(audit.items.iter().all(|entry| entry
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("domain policy"))));
}

#[tokio::test]
async fn a_redirect_to_a_denied_host_fails_the_job_with_policy_denied() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The second loopback address is allowed by the guard, so only the
    // policy stands between the redirect and it.
    let accord = up(dir.path(), &["--allow-target", "127.0.0.2/32"]);
    let client = accord.client();
    client
        .create_policy(&accord_model::NewPolicy {
            pattern: "127.0.0.2".to_owned(),
            allowed: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    let port = fixture
        .url("/")
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let denied = format!("http%3A%2F%2F127.0.0.2%3A{port}%2Fpage");
    let start = fixture.url(&format!("/redirect?to={denied}"));
    let allowed = fixture.url("/redirect?to=%2Fpage");

    let refused = client.submit_job(&navigate(&start), None).await.unwrap();
    let passed = client.submit_job(&navigate(&allowed), None).await.unwrap();
    let refused = wait_finished(&client, refused.job.id).await;
    let passed = wait_finished(&client, passed.job.id).await;
    assert_eq!(passed.state, JobState::Succeeded, "{passed:?}");

    // Failed for good at its first attempt, with the code and the rule.
    assert_eq!(refused.state, JobState::Dead, "{refused:?}");
    assert_eq!(refused.attempt, 1);
    let error = refused.last_error.expect("a failed job has an error");
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert_eq!(error.code, Some(JobErrorCode::PolicyDenied));
    assert_eq!(error.step, Some(0));
    assert!(
        error.message.contains(&format!(
            "http://127.0.0.2:{port}/page: domain policy `127.0.0.2` denies the host (127.0.0.2)"
        )),
        "{}",
        error.message
    );
    // The refusal at run time is in the audit log too, naming the job
    // (written right after the failure: wait for it).
    let audit = eventually(
        std::time::Duration::from_secs(30),
        "the run-time refusal in the audit log",
        || {
            let client = client.clone();
            async move {
                let page = client
                    .audit(&[("action", "policy_denied".to_owned())])
                    .await
                    .unwrap();
                (!page.items.is_empty()).then_some(page)
            }
        },
    )
    .await;
    assert_eq!(audit.items.len(), 1, "{audit:?}");
    assert_eq!(audit.items[0].target, Some(refused.id.to_string()));
    assert!(audit.items[0]
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("domain policy `127.0.0.2` denies the host")));
}

#[tokio::test]
async fn a_policy_cidr_reaches_an_internal_host_and_no_other() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No --allow-target: the guard refuses loopback unless a policy grants it.
    let accord = Process::start(
        &[
            "up",
            "--no-browser",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--heartbeat-ms",
            "200",
        ],
        dir.path(),
        "up-guarded",
        true,
    )
    .with_admin_key_from(&data);
    let client = accord.client();
    let port = fixture
        .url("/")
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let by_name = format!("http://localhost:{port}/page");

    let refused = client
        .submit_job(&navigate(&by_name), None)
        .await
        .unwrap_err();
    assert_eq!(api_message(&refused).0, "target_not_allowed");

    client
        .create_policy(&accord_model::NewPolicy {
            pattern: "localhost".to_owned(),
            allow_cidrs: vec!["127.0.0.1/32".to_owned(), "::1".to_owned()],
            // The worker's robots.txt fetcher has no policies of its own.
            obey_robots: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    let submitted = client.submit_job(&navigate(&by_name), None).await.unwrap();
    let done = wait_finished(&client, submitted.job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");

    // The same address under another name is still refused.
    let refused = client
        .submit_job(&navigate(&fixture.url("/page")), None)
        .await
        .unwrap_err();
    assert_eq!(api_message(&refused).0, "target_not_allowed", "{refused}");
    // And a redirect from the allowed host to the bare address too.
    let bounce =
        format!("http://localhost:{port}/redirect?to=http%3A%2F%2F127.0.0.1%3A{port}%2Fpage");
    let submitted = client.submit_job(&navigate(&bounce), None).await.unwrap();
    let bounced = wait_finished(&client, submitted.job.id).await;
    assert_eq!(bounced.state, JobState::Dead, "{bounced:?}");
    assert_eq!(
        bounced.last_error.unwrap().code,
        Some(JobErrorCode::TargetBlocked)
    );
}

/// In the browser a job with policies runs behind an egress proxy of its
/// own: a sub-resource on a denied host is never requested, and a
/// redirect to one fails the job with `policy_denied`. Needs Chromium
/// (installed by `scripts/test.sh`); fails, never skips, without it.
#[tokio::test]
async fn in_the_browser_a_denied_host_gets_no_request_and_a_redirect_to_it_fails_the_job() {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // `localhost` answers 127.0.0.1 and ::1: both allowed by the guard, so
    // only the policy stands between a page and it.
    let accord = up_with_browser(dir.path(), &["--allow-target", "::1/128"]);
    let client = accord.client();
    let port = fixture
        .url("/")
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let embedding = |pixel: &str| {
        let src = format!("http%3A%2F%2Flocalhost%3A{port}%2F{pixel}");
        job(&format!(
            r#"{{"engine":"browser","timeout_seconds":60,"steps":[{{"action":"navigate","url":"{}"}},{{"action":"extract","fields":{{"title":{{"selector":"h1"}}}}}}]}}"#,
            fixture.url(&format!("/embed?src={src}"))
        ))
    };
    let run = |spec: accord_model::NewJob| {
        let client = client.clone();
        async move {
            let submitted = client.submit_job(&spec, None).await.unwrap();
            wait_finished(&client, submitted.job.id).await
        }
    };

    // Without a policy the image is fetched.
    let before = run(embedding("pixel-allowed.png")).await;
    assert_eq!(before.state, JobState::Succeeded, "{before:?}");
    assert_eq!(fixture.hits("/pixel-allowed.png"), 1);

    client
        .create_policy(&accord_model::NewPolicy {
            pattern: "localhost".to_owned(),
            allowed: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    // With it, the page still loads through the job's own proxy, and the
    // image on the denied host is never requested.
    let after = run(embedding("pixel-denied.png")).await;
    assert_eq!(after.state, JobState::Succeeded, "{after:?}");
    assert_eq!(
        after.result.unwrap().extracted["title"],
        accord_model::ExtractedValue::One(Some("embed".to_owned()))
    );
    assert_eq!(fixture.hits("/pixel-denied.png"), 0);

    // A redirect to the denied host fails the job for good.
    let redirected = run(job(&format!(
        r#"{{"engine":"browser","timeout_seconds":60,"steps":[{{"action":"navigate","url":"{}"}}]}}"#,
        fixture.url(&format!(
            "/redirect?to=http%3A%2F%2Flocalhost%3A{port}%2Fpage-denied"
        ))
    )))
    .await;
    assert_eq!(redirected.state, JobState::Dead, "{redirected:?}");
    let error = redirected.last_error.unwrap();
    assert_eq!(error.code, Some(JobErrorCode::PolicyDenied), "{error:?}");
    assert!(
        error
            .message
            .contains("domain policy `localhost` denies the host"),
        "{}",
        error.message
    );
    assert_eq!(fixture.hits("/page-denied"), 0);
}
