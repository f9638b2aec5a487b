//! The outside-in probe: a catalogue of hostile requests and hostile pages
//! thrown at the real binary, on SQLite and on PostgreSQL, as an attacker
//! or an unwilling page owner would. It passes when nothing crashes, no
//! answer is a 5xx, every refusal is the documented JSON error, slow
//! clients lose their connection, and the process is back to idle within a
//! second of each hostile job's end and stops within its grace period.

#[expect(dead_code, reason = "the harness serves several test binaries")]
mod common;

use std::time::Duration;

use accord_model::{JobState, NewJob};
use accord_test_support::{FixtureServer, TestDatabase};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connection bounds of the probed server, short so the probe is quick.
const SERVER_ARGS: &[&str] = &[
    "--header-read-timeout-seconds",
    "5",
    "--body-read-timeout-seconds",
    "2",
    "--idle-timeout-seconds",
    "31",
    "--max-connections",
    "48",
    "--shutdown-grace-seconds",
    "2",
];

#[tokio::test]
async fn hostile_input_on_sqlite() {
    probe(&[]).await;
}

#[tokio::test]
async fn hostile_input_on_postgres() {
    let database = TestDatabase::create().await;
    probe(&["--database-url", &database.url()]).await;
}

async fn probe(store_args: &[&str]) {
    let fixture = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = store_args.to_vec();
    args.extend_from_slice(SERVER_ARGS);
    let mut accord = up(dir.path(), &args);
    let addr = accord.url().trim_start_matches("http://").to_owned();

    raw_requests(&addr, accord.key()).await;
    json_requests(&accord).await;
    slow_clients(&addr, accord.key()).await;
    connection_cap(&addr).await;
    hostile_pages(&accord, &fixture).await;

    // Still alive and healthy after all of it.
    let health = reqwest::get(format!("{}/health", accord.url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        accord.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    stops_within_its_grace_with_a_page_in_flight(&mut accord, &fixture).await;
    let logs = accord.logs();
    assert!(!logs.contains("panicked"), "no panic in the logs:\n{logs}");
}

/// An answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `bytes` on a fresh connection and reads until the server closes it
/// (or `Connection: close` answers end); `None` when it answered nothing.
async fn send_raw(addr: &str, bytes: &[u8]) -> Option<Answer> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // A server that refuses early may close before it has read everything.
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    parse_answer(&out)
}

fn parse_answer(out: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(out);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// A refusal must be a 4xx with the documented body; nothing is ever a 5xx.
#[track_caller]
fn check_documented(what: &str, status: u16, body: &str) {
    assert!(status < 500, "{what}: answered {status}: {body}");
    if status >= 400 {
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|err| {
            panic!("{what}: {status} without a JSON error ({err}): {body:?}")
        });
        let code = json["error"]["code"].as_str().unwrap_or_default();
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && !message.is_empty(),
            "{what}: not the documented error: {body}"
        );
        for leak in [
            "developer",
            "panicked",
            "sqlx",
            "SQLSTATE",
            "Unicode escape",
        ] {
            assert!(!message.contains(leak), "{what}: leaks {leak:?}: {message}");
        }
    }
}

async fn raw_requests(addr: &str, key: &str) {
    let auth = format!("Authorization: Bearer {key}\r\n");
    let job = r#"{"steps":[{"action":"navigate","url":"http://127.0.0.1:9/"}]}"#;
    let post = |headers: &str, body: &[u8]| {
        let mut request = format!(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n{auth}{headers}Connection: close\r\n\r\n"
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    };
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        (
            "invalid header bytes",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "conflicting Content-Length",
            post("Content-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
            Some(400),
        ),
        (
            "Content-Length and chunked",
            post(
                "Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                b"0\r\n\r\n",
            ),
            None,
        ),
        (
            "bad chunk size",
            post("Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"),
            None,
        ),
        (
            "unknown transfer coding",
            post("Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked2\r\n", b"0\r\n\r\n"),
            None,
        ),
        (
            "obsolete line folding",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n".to_vec(),
            None,
        ),
        (
            "space before colon",
            b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(),
            None,
        ),
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), Some(400)),
        ("NUL in request line", b"GET /he\0alth HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), Some(400)),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), None),
        (
            "oversized header",
            format!("GET /health HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n", "a".repeat(200_000)).into_bytes(),
            Some(431),
        ),
        (
            "too many headers",
            format!(
                "GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..300).map(|i| format!("X-{i}: v\r\n")).collect::<String>()
            )
            .into_bytes(),
            Some(431),
        ),
        (
            "long URI",
            format!("GET /api/v1/jobs?x={} HTTP/1.1\r\nHost: x\r\n{auth}\r\n", "a".repeat(100_000))
                .into_bytes(),
            None,
        ),
        (
            "absolute-form URI",
            format!("GET http://169.254.169.254/latest HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
                .into_bytes(),
            None,
        ),
        (
            "NUL in the path",
            format!("GET /api/v1/jobs/%00 HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes(),
            Some(400),
        ),
        (
            "NUL in a query",
            format!("GET /api/v1/jobs?label=a:%00 HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
                .into_bytes(),
            Some(400),
        ),
        (
            "not UTF-8",
            {
                let body: Vec<u8> = job
                    .bytes()
                    .map(|b| if b == b'1' { 0xff } else { b })
                    .collect();
                post(
                    &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()),
                    &body,
                )
            },
            Some(400),
        ),
        (
            "UTF-16 declared",
            post(
                &format!("Content-Type: application/json; charset=utf-16\r\nContent-Length: {}\r\n", job.len()),
                job.as_bytes(),
            ),
            Some(415),
        ),
        (
            "no content type",
            post(&format!("Content-Length: {}\r\n", job.len()), job.as_bytes()),
            Some(415),
        ),
        (
            "escaped NUL in the body",
            {
                let body = job.replace("127.0.0.1:9/", "127.0.0.1:9/\\u0000");
                post(
                    &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()),
                    body.as_bytes(),
                )
            },
            Some(422),
        ),
        (
            "deep JSON",
            {
                let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                post(
                    &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()),
                    body.as_bytes(),
                )
            },
            Some(400),
        ),
        (
            "body over the limit",
            {
                let body = vec![b' '; 3 * 1024 * 1024];
                post(
                    &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()),
                    &body,
                )
            },
            Some(413),
        ),
    ];
    for (what, bytes, expected) in cases {
        match send_raw(addr, &bytes).await {
            Some(answer) => {
                check_documented(what, answer.status, &answer.body);
                if let Some(expected) = expected {
                    assert_eq!(
                        answer.status, expected,
                        "{what}: {}\n{}",
                        answer.head, answer.body
                    );
                }
            }
            // Closing without an answer is a fine way to refuse; but where an
            // answer is documented, it must come.
            None => assert!(expected.is_none(), "{what}: no answer"),
        }
    }
}

async fn json_requests(accord: &Process) {
    let http = accord.http();
    let url = format!("{}/api/v1/jobs", accord.url());
    let nav = r#"{"action":"navigate","url":"http://127.0.0.1:9/"}"#;
    let long = "a".repeat(100_000);
    let deep_is = format!("{}a{}", ":is(".repeat(700), ")".repeat(700));
    let deep_not = format!("{}a{}", ":not(".repeat(1_000), ")".repeat(1_000));
    let bodies: Vec<(&str, String)> = vec![
        (
            "deep :is( selector",
            format!(
                r#"{{"steps":[{nav},{{"action":"extract","fields":{{"x":{{"selector":"{deep_is}"}}}}}}]}}"#
            ),
        ),
        (
            "deep :not( selector",
            format!(r#"{{"steps":[{nav},{{"action":"assert","selector":"{deep_not}"}}]}}"#),
        ),
        (
            "long selector",
            format!(r#"{{"steps":[{nav},{{"action":"assert","selector":"{long}"}}]}}"#),
        ),
        (
            "parser error text",
            format!(r#"{{"steps":[{nav},{{"action":"assert","selector":"a[=x]"}}]}}"#),
        ),
        (
            "long queue",
            format!(r#"{{"queue":"{long}","steps":[{nav}]}}"#),
        ),
        (
            "long label",
            format!(r#"{{"labels":{{"{long}":"v"}},"steps":[{nav}]}}"#),
        ),
        (
            "long field name",
            format!(
                r#"{{"steps":[{nav},{{"action":"extract","fields":{{"{long}":{{"selector":"p"}}}}}}]}}"#
            ),
        ),
        (
            "long assert text",
            format!(r#"{{"steps":[{nav},{{"action":"assert","text":"{long}"}}]}}"#),
        ),
        (
            "long URL",
            format!(r#"{{"steps":[{{"action":"navigate","url":"http://127.0.0.1:9/{long}"}}]}}"#),
        ),
        (
            "many labels",
            format!(
                r#"{{"labels":{{{}}},"steps":[{nav}]}}"#,
                (0..1_000)
                    .map(|i| format!(r#""k{i}":"v""#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (
            "many steps",
            format!(r#"{{"steps":[{}]}}"#, vec![nav; 10_000].join(",")),
        ),
        (
            "NUL in a label key",
            format!(r#"{{"labels":{{"a\u0000":"v"}},"steps":[{nav}]}}"#),
        ),
        (
            "NUL in a field name",
            format!(
                r#"{{"steps":[{nav},{{"action":"extract","fields":{{"a\u0000":{{"selector":"p"}}}}}}]}}"#
            ),
        ),
        (
            "NUL in assert text",
            format!(r#"{{"steps":[{nav},{{"action":"assert","text":"\u0000"}}]}}"#),
        ),
        (
            "lone surrogate",
            format!(r#"{{"labels":{{"a":"\ud800"}},"steps":[{nav}]}}"#),
        ),
        (
            "year 0",
            format!(r#"{{"run_at":"0000-01-01T00:00:00Z","steps":[{nav}]}}"#),
        ),
        (
            "year 10000",
            format!(r#"{{"run_at":"+10000-01-01T00:00:00Z","steps":[{nav}]}}"#),
        ),
        (
            "huge attempts",
            format!(r#"{{"max_attempts":1099511627776,"steps":[{nav}]}}"#),
        ),
        (
            "negative timeout",
            format!(r#"{{"timeout_seconds":-1,"steps":[{nav}]}}"#),
        ),
        (
            "browser step on http",
            format!(r#"{{"steps":[{nav},{{"action":"click","selector":"a"}}]}}"#),
        ),
    ];
    for (what, body) in bodies {
        let response = http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        check_documented(what, status, &text);
        assert!(status >= 400, "{what}: accepted: {text}");
    }
    // Queries and paths.
    for path in [
        "/api/v1/jobs?label=a:%00",
        "/api/v1/jobs?limit=-1",
        "/api/v1/jobs?limit=99999999999999999999",
        "/api/v1/jobs?state=bogus",
        "/api/v1/jobs?before=not-a-uuid",
        "/api/v1/jobs/..%2f..%2fetc",
        "/api/v1/audit?since=0000-01-01T00:00:00Z",
        "/api/v1/jobs/0190b8a0-0000-7000-8000-000000000001/events?after=-5",
    ] {
        let response = http
            .get(format!("{}{path}", accord.url()))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        check_documented(path, status, &response.text().await.unwrap());
    }
    for path in [
        "/api/v1/audit?since=0000-01-01T00:00:00Z",
        "/api/v1/audit?until=%2B10000-01-01T00:00:00Z",
    ] {
        let response = http
            .get(format!("{}{path}", accord.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            400,
            "{path}: a year out of range"
        );
    }
    let long_path = format!("{}/api/v1/jobs/{}", accord.url(), "a".repeat(10_000));
    let response = http.get(long_path).send().await.unwrap();
    let status = response.status().as_u16();
    check_documented("long id", status, &response.text().await.unwrap());
    let long_key = http
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", "k".repeat(10_000))
        .body(format!(r#"{{"steps":[{nav}]}}"#))
        .send()
        .await
        .unwrap();
    let status = long_key.status().as_u16();
    check_documented(
        "long idempotency key",
        status,
        &long_key.text().await.unwrap(),
    );
    assert_eq!(status, 400);
}

async fn slow_clients(addr: &str, key: &str) {
    // Half a request line, then nothing: closed after the header timeout.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /heal").await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), half.read(&mut [0u8; 64])).await;
    assert!(closed.is_ok(), "a half request line keeps its connection");

    // Nothing at all: likewise.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut [0u8; 64])).await;
    assert!(closed.is_ok(), "a silent client keeps its connection");

    // Headers, then a body that stops halfway: 408 after the body timeout.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"steps\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if parse_answer(&out).is_some_and(|a| a.body.ends_with('}')) {
                break;
            }
        }
    })
    .await;
    assert!(answer.is_ok(), "a stalled body keeps its request");
    let answer = parse_answer(&out).expect("an answer to a stalled body");
    assert_eq!(answer.status, 408, "{}", answer.body);
    check_documented("stalled body", answer.status, &answer.body);

    // A slow loris: one header byte at a time, never finishing.
    let mut loris = TcpStream::connect(addr).await.unwrap();
    let dripped = tokio::time::timeout(Duration::from_secs(20), async {
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if loris.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(dripped.is_ok(), "a slow loris keeps its connection");
}

/// Past the connection cap a new connection is answered 503 at once; the
/// held ones free their slots when they time out.
async fn connection_cap(addr: &str) {
    let mut held = Vec::new();
    for _ in 0..48 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let refused = eventually(Duration::from_secs(10), "a refusal at the cap", || async {
        let answer = send_raw(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        (answer.status == 503).then_some(answer)
    })
    .await;
    // The one 5xx a client may see: the server is full, not broken.
    let json: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(json["error"]["code"], "overloaded", "{}", refused.body);
    drop(held);
    eventually(Duration::from_secs(20), "slots free again", || async {
        let answer = send_raw(
            addr,
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await?;
        (answer.status == 200).then_some(())
    })
    .await;
}

/// Hostile pages as jobs: each ends (dead or succeeded), and the
/// process is idle again within a second of its end.
async fn hostile_pages(accord: &Process, fixture: &FixtureServer) {
    let client = accord.client();
    for (path, timeout) in [
        ("/hostile/nested/150000", 3),
        ("/hostile/nested/400000", 3),
        ("/hostile/attributes/30000", 3),
        ("/hostile/wide/600000", 10),
        ("/hostile/scopes/50000", 10),
        ("/hostile/endless", 3),
        ("/hang", 3),
    ] {
        let spec: NewJob = job(&format!(
            r#"{{"max_attempts":1,"timeout_seconds":{timeout},"steps":[
                {{"action":"navigate","url":"{}"}},
                {{"action":"extract","fields":{{"all":{{"selector":"div p, p","all":true}}}}}}]}}"#,
            fixture.url(path)
        ));
        let id = client.submit_job(&spec, None).await.unwrap().job.id;
        // Some fail on a page limit, some time out, some parse within the
        // limits: each ends.
        let done = wait_finished(&client, id).await;
        // Within a second of the job's end, the process is idle: over the
        // next second it uses less than a fifth of a core.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = cpu_over(accord, Duration::from_secs(1)).await;
        assert!(
            used < Duration::from_millis(200),
            "{path}: {used:?} of CPU in the second after the job ended ({:?})",
            done.last_error
        );
    }
}

/// CPU time (user and system) the process used over `window`.
async fn cpu_over(process: &Process, window: Duration) -> Duration {
    let ticks_per_second: u64 = String::from_utf8(
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf CLK_TCK")
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let sample = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", process.child.id())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<u64> = after_name
            .split(' ')
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        fields[0] + fields[1]
    };
    let before = sample();
    tokio::time::sleep(window).await;
    let ticks = sample() - before;
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// A page that would cost minutes is in flight when the stop comes: the
/// process still exits within its grace period.
async fn stops_within_its_grace_with_a_page_in_flight(
    accord: &mut Process,
    fixture: &FixtureServer,
) {
    let client = accord.client();
    let spec: NewJob = job(&format!(
        r#"{{"timeout_seconds":600,"steps":[
            {{"action":"navigate","url":"{}"}},
            {{"action":"extract","fields":{{"p":{{"selector":"p"}}}}}}]}}"#,
        fixture.url("/hostile/attributes/200000")
    ));
    let id = client.submit_job(&spec, None).await.unwrap().job.id;
    wait_state(&client, id, JobState::Running).await;
    // Let the fetch finish and the parse get going.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = tokio::time::timeout(Duration::from_secs(30), accord.interrupt_and_wait())
        .await
        .expect("the process stops within its grace period (2 s) plus a margin");
    assert!(status.success(), "exit status {status}");
}
