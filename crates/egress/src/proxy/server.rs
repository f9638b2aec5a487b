//! The proxy's listener: binds `127.0.0.1:0`, admits connections (see
//! `admission`), bounds how many run at once and how large and slow their
//! headers may be, and stops with its [`ProxyHandle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::admission::{held_by_process_tree, Admission, TreeCache};
use super::hook::ProxyHook;
use super::service;
use crate::guard::Guard;

/// The smallest header buffer hyper accepts.
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// How a proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub admission: Admission,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// The largest request head (request line and headers), at least 8 KiB.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// How long a client may take to send a request head, and how long a
    /// connection waits to learn which browser it must come from.
    pub header_read_timeout: Duration,
    /// How long a forwarded request waits for the target's response head.
    pub response_timeout: Duration,
    /// A tunnel or upgraded connection with no traffic for this long is
    /// closed.
    pub idle_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            admission: Admission::ProcessTree,
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// A proxy configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyConfigError {
    #[error("max_header_bytes must be at least {MIN_HEADER_BYTES}, not {0}")]
    HeaderBytes(usize),
    #[error("{0} must not be zero")]
    Zero(&'static str),
}

impl ProxyConfig {
    fn validate(&self) -> Result<(), ProxyConfigError> {
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(ProxyConfigError::HeaderBytes(self.max_header_bytes));
        }
        let zero = [
            ("max_connections", self.max_connections == 0),
            ("max_headers", self.max_headers == 0),
            ("header_read_timeout", self.header_read_timeout.is_zero()),
            ("response_timeout", self.response_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
        ];
        match zero.iter().find(|(_, is_zero)| *is_zero) {
            Some((name, _)) => Err(ProxyConfigError::Zero(name)),
            None => Ok(()),
        }
    }
}

/// Why a proxy did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid proxy configuration: {0}")]
    Config(#[from] ProxyConfigError),
    #[error("could not bind the proxy on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

/// What every connection of one proxy shares; read-only.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) guard: Guard,
    pub(crate) hook: Arc<dyn ProxyHook>,
    pub(crate) config: ProxyConfig,
    /// Cancelled when the proxy stops: ends connections and tunnels.
    pub(crate) stop: CancellationToken,
    /// The browser's processes, for admission.
    pub(crate) tree: TreeCache,
}

/// Starts egress proxies.
#[derive(Debug, Clone, Copy)]
pub struct EgressProxy;

impl EgressProxy {
    /// Binds `127.0.0.1:0` and serves until the handle is shut down or
    /// dropped.
    pub async fn start(
        guard: Guard,
        hook: Arc<dyn ProxyHook>,
        config: ProxyConfig,
    ) -> Result<ProxyHandle, StartError> {
        config.validate()?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(StartError::Bind)?;
        let addr = listener.local_addr().map_err(StartError::Bind)?;
        let stop = CancellationToken::new();
        let (browser, browser_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            guard,
            hook,
            config,
            stop: stop.clone(),
            tree: TreeCache::default(),
        });
        let task = tokio::spawn(accept_loop(listener, shared, browser_rx));
        tracing::debug!(proxy = %addr, "egress proxy started");
        Ok(ProxyHandle {
            addr,
            stop,
            browser,
            task: Some(task),
        })
    }
}

/// A running proxy. Dropping it stops the proxy too.
#[derive(Debug)]
pub struct ProxyHandle {
    addr: SocketAddr,
    stop: CancellationToken,
    browser: watch::Sender<Option<u32>>,
    task: Option<JoinHandle<()>>,
}

impl ProxyHandle {
    /// Where the proxy listens: the address for `--proxy-server`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Admits connections from `pid` (the browser, once launched) and its
    /// descendants; see [`Admission::ProcessTree`].
    pub fn admit_process_tree(&self, pid: u32) {
        self.browser.send_replace(Some(pid));
    }

    /// Stops accepting, ends every connection and tunnel, and waits for the
    /// accept loop to finish.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::warn!(proxy = %self.addr, error = %err, "egress proxy task failed");
            }
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    browser: watch::Receiver<Option<u32>>,
) {
    let slots = Arc::new(Semaphore::new(shared.config.max_connections));
    loop {
        let slot = tokio::select! {
            () = shared.stop.cancelled() => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: the browser
                    // retries, and a tight loop would only burn the CPU.
                    tracing::warn!(error = %err, "egress proxy could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let browser = browser.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let stop = shared.stop.clone();
            tokio::select! {
                () = stop.cancelled() => {}
                () = serve(stream, peer, shared, browser) => {}
            }
        });
    }
}

async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    browser: watch::Receiver<Option<u32>>,
) {
    if !admitted(&stream, peer, &shared, browser).await {
        tracing::warn!(peer = %peer, "egress proxy refused a connection from outside the browser");
        let refusal = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        // The refusal is a courtesy; a peer that left does not need it.
        let _ = stream.write_all(refusal).await;
        return;
    }
    // The browser's small writes (request heads, tunnel traffic) must not
    // wait for an ACK.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "could not set TCP_NODELAY");
    }
    let config = &shared.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes)
        .max_headers(config.max_headers);
    let handler = shared.clone();
    // Forwarded requests of this one browser connection reuse their
    // upstream connection while they go to the same place.
    let upstream = service::Upstream::default();
    let service =
        service_fn(move |request| service::handle(handler.clone(), upstream.clone(), request));
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(err) = connection.await {
        tracing::debug!(peer = %peer, error = %err, "egress proxy connection ended with an error");
    }
}

async fn admitted(
    stream: &TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    mut browser: watch::Receiver<Option<u32>>,
) -> bool {
    let config = &shared.config;
    match config.admission {
        Admission::AnyLocalProcess => true,
        Admission::ProcessTree => {
            let known = tokio::time::timeout(config.header_read_timeout, async {
                // The borrowed value must not live across an await.
                browser.wait_for(Option::is_some).await.map(|pid| *pid)
            })
            .await;
            let Ok(Ok(Some(root))) = known else {
                return false;
            };
            let Ok(local) = stream.local_addr() else {
                return false;
            };
            let shared = shared.clone();
            let check = tokio::task::spawn_blocking(move || {
                held_by_process_tree(peer, local, root, &shared.tree)
            })
            .await;
            match check {
                Ok(Ok(held)) => held,
                Ok(Err(err)) => {
                    tracing::warn!(peer = %peer, error = %err, "egress proxy could not tell who connected");
                    false
                }
                Err(err) => {
                    tracing::warn!(peer = %peer, error = %err, "egress proxy admission check failed");
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_that_cannot_work_are_refused() {
        let check = |config: ProxyConfig, expected: Result<(), &str>| {
            let got = config.validate().map_err(|err| err.to_string());
            assert_eq!(got, expected.map_err(str::to_owned));
        };
        check(ProxyConfig::default(), Ok(()));
        check(
            ProxyConfig {
                max_header_bytes: 1024,
                ..ProxyConfig::default()
            },
            Err("max_header_bytes must be at least 8192, not 1024"),
        );
        check(
            ProxyConfig {
                max_connections: 0,
                ..ProxyConfig::default()
            },
            Err("max_connections must not be zero"),
        );
        check(
            ProxyConfig {
                idle_timeout: Duration::ZERO,
                ..ProxyConfig::default()
            },
            Err("idle_timeout must not be zero"),
        );
    }
}
