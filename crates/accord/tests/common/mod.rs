//! Harness for end-to-end tests: runs the real `accord` binary as child
//! processes on loopback, with their own data directories, and talks to them
//! through the typed client. Waiting is bounded (a hang guard, never a
//! performance assertion).

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use accord_client::AccordClient;
use accord_model::{Job, JobId, JobState, NewJob};

pub const BIN: &str = env!("CARGO_BIN_EXE_accord");

/// A running `accord` process, killed when dropped.
pub struct Process {
    pub child: Child,
    pub url: Option<String>,
    pub log: PathBuf,
    /// An admin key of the server's default workspace, for [`Process::client`].
    pub admin_key: Option<String>,
    /// A worker key of the server's default workspace, for [`Process::worker_client`].
    pub worker_key: Option<String>,
    /// Every line the process wrote to standard output so far.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `accord <args>`; when `wait_for_url`, waits for the
    /// "listening on" line and records the URL.
    pub fn start(args: &[&str], dir: &Path, name: &str, wait_for_url: bool) -> Process {
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("create log file");
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start accord");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        std::thread::spawn({
            let lines = lines.clone();
            move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(index) = line.find("listening on ") {
                        let _ = tx.send(line[index + "listening on ".len()..].trim().to_owned());
                    }
                    lines.lock().unwrap().push(line);
                }
            }
        });
        let url = wait_for_url.then(|| {
            rx.recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!(
                        "accord {args:?} did not start; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )
                })
        });
        Process {
            child,
            url,
            log,
            admin_key: None,
            worker_key: None,
            stdout: lines,
        }
    }

    /// What the process wrote to standard output so far.
    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// Standard output once a line containing `needle` has arrived (bounded: a hang guard).
    pub fn stdout_until(&self, needle: &str) -> String {
        for _ in 0..600 {
            let text = self.stdout_text();
            if text.contains(needle) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {needle:?} on standard output: {}", self.stdout_text());
    }

    pub fn url(&self) -> &str {
        self.url.as_deref().expect("a server process")
    }

    /// A client with the server's admin key.
    pub fn client(&self) -> AccordClient {
        let key = self
            .admin_key
            .as_deref()
            .expect("a server with an admin key");
        client_for(self.url(), key)
    }

    /// A client with the server's worker key, to speak the worker protocol by hand.
    pub fn worker_client(&self) -> AccordClient {
        let key = self
            .worker_key
            .as_deref()
            .expect("a server with a worker key");
        client_for(self.url(), key)
    }

    /// The admin key (`acc_…`) this server's client uses.
    pub fn key(&self) -> &str {
        self.admin_key
            .as_deref()
            .expect("a server with an admin key")
    }

    /// A plain HTTP client sending the admin key, for raw wire checks.
    pub fn http(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.key()).parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .pool_idle_timeout(Duration::from_secs(1))
            .build()
            .unwrap()
    }

    /// Reads the admin and worker keys `accord up` saved in its data directory.
    pub fn with_admin_key_from(mut self, data_dir: &Path) -> Process {
        let read = |file: &str| {
            let key = std::fs::read_to_string(data_dir.join(file))
                .unwrap_or_else(|err| panic!("accord up saved {file}: {err}"));
            Some(key.trim().to_owned())
        };
        self.admin_key = read("admin.key");
        self.worker_key = read("worker.key");
        self
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill_hard(&mut self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGKILL)
            .expect("send SIGKILL");
        self.child.wait().expect("reap child");
    }

    /// SIGINT (Ctrl-C), then wait for a graceful exit (without blocking the
    /// test's runtime, which also serves the fixture).
    pub async fn interrupt_and_wait(&mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "accord did not exit within 30 s of SIGINT; log:\n{}",
            self.logs()
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client for `url` sending `key`.
pub fn client_for(url: &str, key: &str) -> AccordClient {
    AccordClient::new(url)
        .expect("client")
        .with_api_key(key)
        .expect("valid key")
}

/// A config file lifting every role's rate limit out of the way: tests
/// poll quickly, and the rate limiter has tests of its own.
fn test_config(dir: &Path) -> PathBuf {
    let path = dir.join("accord-test.toml");
    let mut text = String::new();
    for role in ["admin", "operator", "viewer", "worker", "failed_auth"] {
        text.push_str(&format!(
            "[server.rate_limits.{role}]\nburst = 1000000\nper_second = 1000000.0\n"
        ));
    }
    std::fs::write(&path, text).expect("write test config");
    path
}

/// The admin and worker keys of a database, made offline with
/// `accord keys create --offline` and saved as `admin.key` and
/// `worker.key` in `dir` (reused when already there).
pub struct TestKeys {
    pub admin: String,
    pub worker: String,
}

pub fn provision_keys(dir: &Path, store_args: &[&str]) -> TestKeys {
    let key = |role: &str| -> String {
        let path = dir.join(format!("{role}.key"));
        if !path.exists() {
            let mut args = vec![
                "keys",
                "create",
                "--offline",
                "--role",
                role,
                "--name",
                "e2e",
                "--rate-burst",
                "1000000",
                "--rate-per-second",
                "1000000",
                "--save-to",
                path.to_str().unwrap(),
            ];
            args.extend_from_slice(store_args);
            let output = Command::new(BIN)
                .args(&args)
                .output()
                .expect("run accord keys create");
            assert!(
                output.status.success(),
                "accord {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::fs::read_to_string(&path)
            .expect("read key file")
            .trim()
            .to_owned()
    };
    TestKeys {
        admin: key("admin"),
        worker: key("worker"),
    }
}

/// `accord up` on a fresh data directory, with loopback targets allowed
/// (the fixture lives on loopback) and short timers, taking HTTP jobs only
/// (a test that needs the browser uses [`up_with_browser`]). Its client
/// uses the admin key `accord up` made and saved.
pub fn up(dir: &Path, extra: &[&str]) -> Process {
    let mut args = vec!["--no-browser"];
    args.extend_from_slice(extra);
    up_with_browser(dir, &args)
}

/// Like [`up`], with the worker's browser engine (Chromium found on PATH).
pub fn up_with_browser(dir: &Path, extra: &[&str]) -> Process {
    let data = dir.join("data");
    let config = test_config(dir);
    let mut args = vec![
        "up",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--allow-target",
        "127.0.0.1/32",
        "--heartbeat-ms",
        "200",
        "--maintenance-interval-ms",
        "100",
    ];
    args.extend_from_slice(extra);
    Process::start(&args, dir, "up", true).with_admin_key_from(&data)
}

/// `accord serve` with short leases so lease expiry is quick to observe,
/// after making its keys (on the `--database-url` in `extra`, or its data directory).
pub fn serve(dir: &Path, extra: &[&str]) -> Process {
    let data = dir.join("data");
    let store_args: Vec<&str> = match extra.iter().position(|arg| *arg == "--database-url") {
        Some(at) => vec!["--database-url", extra[at + 1]],
        None => vec!["--data-dir", data.to_str().unwrap()],
    };
    let keys = provision_keys(dir, &store_args);
    let config = test_config(dir);
    let mut args = vec![
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--allow-target",
        "127.0.0.1/32",
        "--maintenance-interval-ms",
        "100",
    ];
    args.extend_from_slice(extra);
    let mut process = Process::start(&args, dir, "serve", true);
    process.admin_key = Some(keys.admin);
    process.worker_key = Some(keys.worker);
    process
}

/// The worker key made for a server started in `dir` or in one of its
/// sub-directories (replicas of one database share keys).
fn worker_key_near(dir: &Path) -> PathBuf {
    let here = dir.join("worker.key");
    if here.exists() {
        return here;
    }
    std::fs::read_dir(dir)
        .expect("read test directory")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("worker.key"))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no worker.key in or under {}", dir.display()))
}

/// `accord worker` against a server, with the worker key made for it.
pub fn worker(dir: &Path, server: &str, name: &str, extra: &[&str]) -> Process {
    let key = worker_key_near(dir);
    let mut args = vec![
        "worker",
        "--server",
        server,
        "--api-key-file",
        key.to_str().unwrap(),
        "--worker-id",
        name,
        "--allow-target",
        "127.0.0.1/32",
        "--heartbeat-ms",
        "200",
        "--no-browser",
    ];
    args.extend_from_slice(extra);
    Process::start(&args, dir, name, false)
}

pub fn job(json: &str) -> NewJob {
    serde_json::from_str(json).unwrap_or_else(|err| panic!("test job {json}: {err}"))
}

/// Polls until `check` gives `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the job is in `state` and returns it.
pub async fn wait_state(client: &AccordClient, id: JobId, state: JobState) -> Job {
    eventually(
        Duration::from_secs(60),
        &format!("job {id} to be {state}"),
        || async {
            let job = client.get_job(id).await.expect("get job");
            (job.state == state).then_some(job)
        },
    )
    .await
}

/// Waits until the job reaches a terminal state and returns it.
pub async fn wait_finished(client: &AccordClient, id: JobId) -> Job {
    eventually(
        Duration::from_secs(60),
        &format!("job {id} to finish"),
        || async {
            let job = client.get_job(id).await.expect("get job");
            job.state.is_terminal().then_some(job)
        },
    )
    .await
}

pub async fn event_kinds(client: &AccordClient, id: JobId) -> Vec<String> {
    let page = client.job_events(id, None).await.expect("events");
    page.items
        .iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect()
}

/// Waits until `name` runs job `id` and its page request has arrived
/// (`fetched`), then SIGKILLs that worker mid-job.
pub async fn kill_worker_mid_job(
    client: &AccordClient,
    id: JobId,
    worker: &mut Process,
    name: &str,
    fetched: impl Fn() -> bool,
) {
    let running = wait_state(client, id, JobState::Running).await;
    // The server binds worker ids to their key: `<key id>.<name>`.
    let holder = running.worker_id.as_ref().map(|w| w.as_str().to_owned());
    assert!(
        holder
            .as_deref()
            .is_some_and(|holder| holder.ends_with(&format!(".{name}"))),
        "{holder:?} is not {name}"
    );
    eventually(Duration::from_secs(30), "the worker to fetch", || {
        let done = fetched();
        async move { done.then_some(()) }
    })
    .await;
    worker.kill_hard();
}

/// How many events of each kind the job has, in the order asked.
pub async fn event_counts(client: &AccordClient, id: JobId, kinds: &[&str]) -> Vec<usize> {
    let events = client.job_events(id, None).await.expect("events").items;
    kinds
        .iter()
        .map(|kind| events.iter().filter(|e| e.kind.as_str() == *kind).count())
        .collect()
}
