//! A throwaway Redis server of the test's own (`redis-server` on a free
//! loopback port, no persistence), for tests that must stop and restart Redis
//! without touching the machine's shared server.
//!
//! It does not manage the shared server that most Redis tests use (they read
//! `ACCORD_TEST_REDIS_URL` themselves) and it speaks no more Redis than a
//! `PING`: tests talk to it through the code under test.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cluster::free_port;

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A private Redis server, killed when dropped.
#[derive(Debug)]
pub struct ThrowawayRedis {
    dir: tempfile::TempDir,
    port: u16,
    /// The running server; `None` while stopped.
    child: Mutex<Option<Child>>,
}

impl ThrowawayRedis {
    /// Starts a server on a free port and waits until it answers `PING`.
    /// Panics with a clear message when `redis-server` is not installed.
    pub fn start() -> ThrowawayRedis {
        let dir = tempfile::Builder::new()
            .prefix("accord-redis-")
            .tempdir()
            .expect("temp dir");
        let redis = ThrowawayRedis {
            dir,
            port: free_port(),
            child: Mutex::new(None),
        };
        redis.restart();
        redis
    }

    /// The server's URL, the same across restarts.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server the way an operator would (SIGTERM) and waits for it
    /// to exit. Stopping a stopped server does nothing.
    pub fn stop(&self) {
        let mut child = self.child();
        let Some(mut running) = child.take() else {
            return;
        };
        // A paused server must run again to act on SIGTERM.
        for signal in ["-TERM", "-CONT"] {
            let status = Command::new("kill")
                .args([signal, &running.id().to_string()])
                .status()
                .unwrap_or_else(|err| panic!("run kill {signal}: {err}"));
            assert!(status.success(), "kill {signal} {} failed", running.id());
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match running.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = running.kill();
                    let _ = running.wait();
                    panic!(
                        "redis-server on port {} did not stop within {STOP_TIMEOUT:?} of SIGTERM",
                        self.port
                    );
                }
                Err(err) => panic!("wait for redis-server: {err}"),
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections open but nothing answers,
    /// like a Redis stuck behind a network partition. [`Self::resume`] thaws it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a server frozen by [`Self::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child();
        let running = child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .args([signal, &running.id().to_string()])
            .status()
            .unwrap_or_else(|err| panic!("run kill {signal}: {err}"));
        assert!(status.success(), "kill {signal} {} failed", running.id());
    }

    /// Starts the server (again) on the same port, empty, and waits until it
    /// answers `PING`. Restarting a running server stops it first.
    pub fn restart(&self) {
        self.stop();
        let log_path = self.dir.path().join("redis.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the redis log file");
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone the log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "could not start redis-server ({err}): install it (apt-get install redis-server) \
                     so that `redis-server` is on PATH"
                )
            });
        let deadline = Instant::now() + START_TIMEOUT;
        while !answers_ping(self.port) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "redis-server on port {} exited at start ({status}):\n{}",
                    self.port,
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}:\n{}",
                    self.port,
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        *self.child() = Some(child);
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding the lock leaves a plain `Option` behind: still usable.
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        if let Some(mut running) = self.child().take() {
            let _ = running.kill();
            let _ = running.wait();
        }
    }
}

/// Whether a Redis server on the port answers `PING` with `PONG`.
fn answers_ping(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let mut answer = [0u8; 7];
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_ok()
        && stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// The Redis server most tests use; `ACCORD_TEST_REDIS_URL` overrides it.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The shared Redis server tests may write to (with keys of their own).
#[expect(
    clippy::disallowed_methods,
    reason = "the test harness, not library code, chooses the Redis server"
)]
pub fn shared_redis_url() -> String {
    std::env::var("ACCORD_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}
