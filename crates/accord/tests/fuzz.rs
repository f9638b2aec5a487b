//! Schema-driven fuzzing of the whole API: schemathesis reads `/openapi.json`,
//! sends requests the document allows and requests it forbids, and checks
//! every answer against the document. The API passes when no request gets a
//! 5xx, an undocumented status, content type or header, or a body that breaks
//! its schema, and no forbidden request is accepted.
//!
//! schemathesis comes from PyPI: `./scripts/test.sh` installs the pinned
//! version into `target/schemathesis-venv` and exports `ACCORD_SCHEMATHESIS`.
//! Without it this test fails; it never skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_accord");

/// The version `scripts/lib.sh` installs, with the libraries it generates
/// cases with pinned too: the test cases follow from them and the seed.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

#[test]
fn api_answers_every_generated_request_as_documented() {
    let st = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let config = write_schemathesis_config(dir.path(), &server);
    // Revoking keys runs alone and last: its stateful tests may revoke the
    // fuzzer's own key, after which every other operation would only see 401.
    for selection in [
        ["--exclude-operation-id", "revoke_key"],
        ["--include-operation-id", "revoke_key"],
    ] {
        run_schemathesis(&st, dir.path(), &config, &server, &selection);
    }
}

/// The `st` command: `ACCORD_SCHEMATHESIS`, else where `./scripts/test.sh`
/// installs it.
#[expect(
    clippy::disallowed_methods,
    reason = "the test harness, not library code, locates its tools"
)]
fn schemathesis() -> PathBuf {
    let st = std::env::var_os("ACCORD_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/schemathesis-venv/bin/st")
        });
    let version = Command::new(&st).arg("--version").output();
    let found = match &version {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).into(),
        Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
        Err(err) => err.to_string(),
    };
    assert!(
        found.trim() == format!("st, version {SCHEMATHESIS_VERSION}"),
        "schemathesis {SCHEMATHESIS_VERSION} is needed at {} ({}). Run ./scripts/test.sh, \
         which installs it, or set ACCORD_SCHEMATHESIS to the `st` command of that version",
        st.display(),
        found.trim()
    );
    st
}

/// `accord serve` on a fresh SQLite database, with an admin and a worker key
/// made offline. No worker runs: generated jobs are never fetched, so the
/// fuzz reaches nothing beyond loopback. Private targets stay refused, as
/// in production.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
    admin_key: String,
    worker_key: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let data = dir.join("data");
        let key = |role: &str| {
            let path = dir.join(format!("{role}.key"));
            let output = Command::new(BIN)
                .args([
                    "keys",
                    "create",
                    "--offline",
                    "--role",
                    role,
                    "--name",
                    "fuzz",
                ])
                .arg("--save-to")
                .arg(&path)
                .arg("--data-dir")
                .arg(&data)
                .output()
                .expect("run accord keys create");
            assert!(
                output.status.success(),
                "accord keys create --role {role}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::fs::read_to_string(&path)
                .expect("read key file")
                .trim()
                .to_owned()
        };
        let (admin_key, worker_key) = (key("admin"), key("worker"));

        // Rate limits would answer the fuzzer's bursts, and its requests
        // with bad keys, with 429; they have tests of their own.
        let config = dir.join("accord.toml");
        let mut text = String::new();
        for role in ["admin", "operator", "viewer", "worker", "failed_auth"] {
            text.push_str(&format!(
                "[server.rate_limits.{role}]\nburst = 1000000\nper_second = 1000000.0\n"
            ));
        }
        std::fs::write(&config, text).expect("write config");

        let log = dir.join("serve.log");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create log file"))
            .spawn()
            .expect("start accord serve");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((_, url)) = line.split_once("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "accord serve did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Server {
            child,
            url,
            log,
            admin_key,
            worker_key,
        }
    }

    /// The server log's ERROR lines: an internal error is logged there with its cause.
    fn errors(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(" ERROR "))
            .collect();
        lines[lines.len().saturating_sub(100)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every run shares (schemathesis.toml). Each choice is explained in
/// the file itself, so a failure's reader finds it next to the settings.
fn write_schemathesis_config(dir: &Path, server: &Server) -> PathBuf {
    let text = format!(
        r#"# A fixed seed, one worker (requests in a fixed order) and a bounded number
# of cases per operation make the run repeatable and keep it near a minute.
seed = 1
workers = 1
request-timeout = 10

[generation]
# Valid and invalid requests: no route may answer 5xx to either.
mode = "all"
max-examples = 100
# A fresh case database each run: no replay of an earlier run's failures.
database = "none"

[headers]
Authorization = "Bearer {admin}"

# The worker protocol takes a worker key; an admin key is refused there (403).
[[operations]]
include-path-regex = "^/internal/v1/worker/"
headers = {{ Authorization = "Bearer {worker}" }}

# A claim waits up to 30 s for a job of its queues before answering.
[[operations]]
include-operation-id = "claim"
request-timeout = 40

# A job's event stream stays open until the job finishes, and no worker runs
# here: read the first event, or give up after a short wait.
[[operations]]
include-operation-id = "stream_job_events"
max-stream-events = 1
request-timeout = 2
"#,
        admin = server.admin_key,
        worker = server.worker_key,
    );
    let path = dir.join("schemathesis.toml");
    std::fs::write(&path, text).expect("write schemathesis config");
    path
}

/// Every check of this schemathesis version but two:
/// - `positive_data_acceptance` expects every request the document allows
///   to succeed, but the API also enforces rules a JSON Schema cannot state:
///   across fields (the first step is `navigate`, `initial_delay_ms` at most
///   `max_delay_ms`), CSS selector syntax, times relative to now
///   (`expires_at`), and serde refusing `1.0` where JSON Schema's `integer`
///   admits it. Those answers are documented 422s.
/// - `max_response_time` asserts a duration: a claim waits up to 30 s by
///   design, and on a busy machine any limit would make this test flaky.
const CHECKS: [&str; 13] = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
];

fn run_schemathesis(st: &Path, dir: &Path, config: &Path, server: &Server, selection: &[&str]) {
    let openapi = format!("{}/openapi.json", server.url);
    let mut command = Command::new(st);
    command
        .arg("--config-file")
        .arg(config)
        .args(["run", &openapi, "--no-color"])
        .args(["--checks", &CHECKS.join(",")])
        .args(selection)
        // Its case database and cache go to the temporary directory.
        .current_dir(dir);
    let started = Instant::now();
    let output = command.output().expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis {selection:?} found problems ({:?}):\n{report}\n{}\n\
         server errors:\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr),
        server.errors()
    );
}
