//! A throwaway S3-compatible server of the test's own: moto's server mode
//! (`moto_server`, from PyPI) on a free loopback port, in memory, killed on
//! drop. Tests store blobs on it through the code under test, so the S3
//! path is exercised against a real server speaking the S3 protocol, never
//! a stand-in for the storage trait.
//!
//! `./scripts/test.sh` installs moto into `target/moto-venv` and exports
//! `ACCORD_MOTO_SERVER`; without it, [`ThrowawayS3::start`] fails the test
//! with instructions. It never skips.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::free_port;

/// How long moto may take to start (it imports a lot of Python).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The credentials moto accepts (it checks none; S3 clients insist on some).
pub const S3_ACCESS_KEY_ID: &str = "accord-test";
pub const S3_SECRET_ACCESS_KEY: &str = "accord-test-secret";
pub const S3_REGION: &str = "us-east-1";

/// A private S3-compatible server, killed when dropped.
#[derive(Debug)]
pub struct ThrowawayS3 {
    port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ThrowawayS3 {
    /// Starts moto on a free port and waits until it answers HTTP. Panics
    /// with a clear message when moto is not installed.
    pub fn start() -> ThrowawayS3 {
        let command = moto_server();
        let dir = tempfile::Builder::new()
            .prefix("accord-s3-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("moto.log");
        let port = free_port();
        let out = std::fs::File::create(&log).expect("create the moto log file");
        let child = Command::new(&command)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("clone the log file")))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "could not start {} ({err}). The S3 tests need moto's server: run \
                     ./scripts/test.sh, which installs it into target/moto-venv, or set \
                     ACCORD_MOTO_SERVER to a `moto_server` command",
                    command.display()
                )
            });
        let mut server = ThrowawayS3 {
            port,
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while request(port, "GET", "/").is_none() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited at start ({status}):\n{}", server.logs());
            }
            assert!(
                Instant::now() < deadline,
                "moto_server on port {port} did not answer within {START_TIMEOUT:?}:\n{}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:<port>`: the endpoint to give an S3 client.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (path-style `PUT /<bucket>`).
    pub fn create_bucket(&self, bucket: &str) {
        let status = request(self.port, "PUT", &format!("/{bucket}"))
            .unwrap_or_else(|| panic!("moto did not answer the creation of bucket {bucket}"));
        assert!(
            (200..300).contains(&status),
            "creating bucket {bucket} answered {status}:\n{}",
            self.logs()
        );
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ThrowawayS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ACCORD_MOTO_SERVER`, else where `./scripts/test.sh` installs it.
#[expect(
    clippy::disallowed_methods,
    reason = "the test harness, not library code, locates its tools"
)]
fn moto_server() -> PathBuf {
    std::env::var_os("ACCORD_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/moto_server")
        })
}

/// One plain HTTP/1.1 request without a body; the answer's status code, or
/// `None` when nothing answered.
fn request(port: u16, method: &str, path: &str) -> Option<u16> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace().nth(1)?.parse().ok()
}
