//! Starting one browser process with flags that fit a server, and what is
//! needed to watch it and clean up after it.
//!
//! Every browser gets its own directory under the configured work dir,
//! holding its profile (`--user-data-dir`) and its temp files (`TMPDIR` of
//! the child, where `--disable-dev-shm-usage` also puts shared memory), so
//! killing the browser and removing that directory leaves nothing behind.
//! Directories of browsers whose worker died are swept at start-up.
//!
//! DevTools: chromiumoxide 0.9 speaks to Chromium over a WebSocket only (no
//! `--remote-debugging-pipe`), so the browser listens on a random port of
//! 127.0.0.1. A page cannot use it: Chromium refuses WebSocket upgrades
//! that carry an `Origin` (no `--remote-allow-origins` is given, and a page's
//! requests always carry one), its HTTP endpoints check the `Host` header
//! against DNS rebinding, and once the egress proxy is configured every
//! page request, loopback included (`--proxy-bypass-list=<-loopback>`),
//! goes through the proxy, which refuses loopback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig as LaunchConfig};
use chromiumoxide::error::CdpError;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::detect::Chromium;
use super::process::{self, ProcessId};
use super::{BrowserConfig, Sandbox};

/// Prefix of every browser's directory: `accord-chromium-<worker pid>-<random>`.
const DIR_PREFIX: &str = "accord-chromium-";

/// How often the watcher checks that the browser process still exists (a
/// crash usually shows sooner, as the DevTools connection breaking).
const LIVENESS_PERIOD: Duration = Duration::from_secs(1);

/// A running browser.
#[derive(Debug)]
pub(super) struct Launched {
    /// The connection. Shared with the jobs that run in this browser: every
    /// method used on it takes `&self` and only sends a message to the
    /// connection's task, so it is a handle, not shared state.
    pub browser: Arc<Browser>,
    /// The process we spawned (maybe a wrapper script above Chromium).
    pub root_pid: ProcessId,
    /// Its profile and temp files.
    pub dir: PathBuf,
    /// Cancelled once the browser is gone: its connection broke or its
    /// process exited.
    pub gone: CancellationToken,
}

/// Why a browser did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("could not create the browser's directory under {dir}: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid browser configuration: {0}")]
    Config(String),
    #[error("chromium did not start: {0}")]
    Start(String),
}

/// Starts a browser. `on_exit` runs once, when the browser is gone (whether
/// it crashed or was closed).
pub(super) async fn launch(
    chromium: &Chromium,
    config: &BrowserConfig,
    on_exit: impl FnOnce() + Send + 'static,
) -> Result<Launched, LaunchError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(&config.work_dir)
        .map_err(|source| LaunchError::Dir {
            dir: config.work_dir.clone(),
            source,
        })?
        .keep();
    let profile = dir.join("profile");
    let tmp = dir.join("tmp");
    for sub in [&profile, &tmp] {
        std::fs::create_dir(sub).map_err(|source| LaunchError::Dir {
            dir: sub.clone(),
            source,
        })?;
    }
    let launch_config = launch_config(chromium, config, &profile, &tmp).map_err(|err| {
        remove_dir(&dir);
        LaunchError::Config(err)
    })?;
    let (mut browser, mut handler) = match Browser::launch(launch_config).await {
        Ok(launched) => launched,
        Err(err) => {
            tracing::warn!(error = %err, chromium = %chromium.path.display(), "chromium did not start");
            remove_dir(&dir);
            return Err(LaunchError::Start(start_failure(&err)));
        }
    };
    let Some(root_pid) = browser.get_mut_child().and_then(|child| child.inner.id()) else {
        // The process exited between the handshake and now.
        drop(browser);
        remove_dir(&dir);
        return Err(LaunchError::Start(
            "it exited right after starting".to_owned(),
        ));
    };
    let gone = CancellationToken::new();
    tokio::spawn({
        let gone = gone.clone();
        async move {
            let mut liveness = tokio::time::interval(LIVENESS_PERIOD);
            loop {
                tokio::select! {
                    event = handler.next() => match event {
                        None => break,
                        Some(Err(err)) if connection_lost(&err) => {
                            tracing::debug!(error = %err, pid = root_pid, "devtools connection lost");
                            break;
                        }
                        Some(Err(err)) => {
                            tracing::debug!(error = %err, pid = root_pid, "devtools message ignored");
                        }
                        Some(Ok(())) => {}
                    },
                    _ = liveness.tick() => {
                        if !process::alive(root_pid) {
                            tracing::debug!(pid = root_pid, "browser process exited");
                            break;
                        }
                    }
                }
            }
            // Dropping the handler fails every command still waiting on it,
            // and ends every event stream of every page.
            drop(handler);
            gone.cancel();
            on_exit();
        }
    });
    tracing::debug!(pid = root_pid, dir = %dir.display(), "browser started");
    Ok(Launched {
        browser: Arc::new(browser),
        root_pid,
        dir,
        gone,
    })
}

/// Kills a browser's processes and removes its directory. Blocking: call it
/// from `spawn_blocking`.
pub(super) fn destroy(root_pid: ProcessId, dir: &Path) {
    process::kill_tree(root_pid);
    // Removing files of a process that is still exiting works on Linux, but
    // a process could still create some: wait (briefly) for the tree to go.
    for _ in 0..50 {
        if process::tree(root_pid)
            .iter()
            .all(|&pid| pid == root_pid || !process::alive(pid))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    remove_dir(dir);
}

/// Removes directories left by browsers of workers that are no longer
/// running (killed before they could clean up). Blocking.
pub(super) fn sweep_stale(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|name| name.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<ProcessId>().ok())
        else {
            continue;
        };
        if owner != std::process::id() && !process::alive(owner) {
            tracing::debug!(dir = %entry.path().display(), "removing a dead worker's browser directory");
            remove_dir(&entry.path());
        }
    }
}

fn remove_dir(dir: &Path) {
    if let Err(err) = std::fs::remove_dir_all(dir) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %err, "could not remove a browser directory");
        }
    }
}

/// The flags: headless, nothing that phones home or runs in the background,
/// no first-run UI, no extensions, sync or component updates. The defaults
/// of chromiumoxide are replaced by this list so that every flag is ours.
fn launch_config(
    chromium: &Chromium,
    config: &BrowserConfig,
    profile: &Path,
    tmp: &Path,
) -> Result<LaunchConfig, String> {
    let mut builder = LaunchConfig::builder()
        .chrome_executable(&chromium.path)
        .disable_default_args()
        // Headless is chromiumoxide's default (`--headless`, hidden scrollbars,
        // muted audio).
        // No emulation by default (chromiumoxide's is 800x600 with touch):
        // the window size below holds, and screenshots pin their own.
        .viewport(None)
        .window_size(config.window.width, config.window.height)
        .user_data_dir(profile)
        .env("TMPDIR", tmp.display().to_string())
        .launch_timeout(config.launch_timeout)
        // chromiumoxide fails a command unanswered for this long; its own
        // wait for a page load is bounded by it too, so it must exceed the
        // engine's navigate timeout (which reports the timeout itself).
        .request_timeout(
            config.navigate_timeout.max(Duration::from_secs(30)) + Duration::from_secs(5),
        )
        .args([
            "disable-background-networking",
            "disable-background-timer-throttling",
            "disable-backgrounding-occluded-windows",
            "disable-renderer-backgrounding",
            "disable-breakpad",
            "disable-client-side-phishing-detection",
            "disable-component-update",
            "disable-component-extensions-with-background-pages",
            "disable-default-apps",
            "disable-dev-shm-usage",
            "disable-domain-reliability",
            "disable-hang-monitor",
            "disable-ipc-flooding-protection",
            "disable-prompt-on-repost",
            "disable-sync",
            "metrics-recording-only",
            "no-first-run",
            "no-default-browser-check",
            "no-service-autorun",
            "no-pings",
            "use-mock-keychain",
        ])
        .arg(("password-store", "basic"))
        .arg(("force-color-profile", "srgb"))
        .arg(("lang", "en-US"))
        // One switch with every value: a second `--disable-features` would
        // race the first (which one Chromium keeps is not defined).
        .arg((
            "disable-features",
            [
                "Translate",
                "MediaRouter",
                "OptimizationHints",
                "AutofillServerCommunication",
                "CertificateTransparencyComponentUpdater",
                "InterestFeedContentSuggestions",
                "HttpsUpgrades",
                "HttpsFirstBalancedModeAutoEnable",
            ]
            .as_slice(),
        ));
    if let Some(proxy) = &config.proxy {
        builder = builder
            .arg(("proxy-server", proxy.server.as_str()))
            // Chromium sends loopback directly unless told otherwise.
            .arg(("proxy-bypass-list", "<-loopback>"))
            // No DNS of its own (the proxy resolves and checks), no UDP
            // around the proxy (WebRTC, QUIC): see accord_egress::chromium_args.
            .arg(("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"))
            .arg(("force-webrtc-ip-handling-policy", "disable_non_proxied_udp"))
            .arg(("webrtc-ip-handling-policy", "disable_non_proxied_udp"))
            .arg("disable-quic");
    }
    if config.sandbox == Sandbox::Disabled {
        builder = builder.no_sandbox();
    }
    builder.build()
}

/// Whether an error of the connection's task means the browser is gone.
fn connection_lost(err: &CdpError) -> bool {
    matches!(
        err,
        CdpError::Ws(_) | CdpError::Io(_) | CdpError::NoResponse
    )
}

/// The reason a launch failed, without the whole of Chromium's stderr (that
/// goes to the log).
fn start_failure(err: &CdpError) -> String {
    match err {
        CdpError::LaunchTimeout(_) => "it did not open its devtools endpoint in time".to_owned(),
        CdpError::LaunchExit(status, _) => format!("it exited at start-up ({status})"),
        CdpError::LaunchIo(io, _) => format!("reading its output failed: {io}"),
        other => other.to_string(),
    }
}
