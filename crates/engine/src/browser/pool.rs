//! The browser pool: one task that owns every browser and hands out slots.
//!
//! Jobs talk to it with messages ([`Request`]); the browsers' own tasks report
//! to it with [`Event`]s. It keeps at most `slots` jobs running, starts a
//! browser ahead of need and a replacement as soon as one is retired, and
//! retires a browser after `recycle_after_jobs` jobs, above the PSS ceiling,
//! when a job reports it broken, or when it crashes. A retired browser takes
//! no new job; it is killed and its directory removed once its last job has
//! ended (at once, when it crashed).
//!
//! Nothing waits forever: a job waiting for a slot gets an error as soon as
//! a browser fails to start, and while starting is backing off after
//! failures, a request for a slot fails at once.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::browser::Browser;
use chromiumoxide::cdp::browser_protocol::target::GetBrowserContextsParams;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::detect::Chromium;
use super::launch::{self, LaunchError, Launched};
use super::process::{self, ProcessId};
use super::BrowserConfig;

/// Identifies a browser within its pool.
type BrowserKey = u64;

/// Longest pause between two failed starts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A cheap handle to the pool's task. The task shuts its browsers down
/// when the last handle (and the last lease) is dropped, or on
/// [`PoolHandle::shutdown`].
#[derive(Debug, Clone)]
pub(super) struct PoolHandle {
    requests: mpsc::UnboundedSender<Request>,
}

/// Why no slot could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("the browser could not start: {0}")]
    Launch(String),
    #[error("the browser pool is shut down")]
    Closed,
}

/// A slot in a browser, held for the length of one job. Dropping it gives
/// the slot back.
#[derive(Debug)]
pub(super) struct Lease {
    pub browser: Arc<Browser>,
    /// Cancelled when the browser is gone (crashed or killed).
    pub gone: CancellationToken,
    /// The browser's own directory (where downloads land).
    pub dir: PathBuf,
    /// Which of the browser's jobs this is (1 for its first).
    pub serial: u64,
    key: BrowserKey,
    broken: bool,
    requests: mpsc::UnboundedSender<Request>,
}

impl Lease {
    /// The browser misbehaved (a context would not go away, a command went
    /// unanswered): it takes no more jobs and is replaced.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The pool may be gone already; then there is nothing to give back.
        let _ = self.requests.send(Request::Release {
            key: self.key,
            broken: self.broken,
        });
    }
}

/// What the pool and its browsers look like now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub browsers: Vec<BrowserStats>,
    /// Jobs holding a slot.
    pub busy: usize,
    /// Jobs waiting for a slot.
    pub waiting: usize,
    /// Browsers started since the pool began.
    pub launches: u64,
    /// Browsers that crashed (their process or connection went away).
    pub crashes: u64,
    /// Browsers retired after their job count or above the PSS ceiling.
    pub recycled: u64,
}

/// One browser of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserStats {
    /// The process the pool spawned; [`browser_processes`](super::browser_processes)
    /// lists the tree under it.
    pub pid: ProcessId,
    /// Jobs started in it.
    pub jobs: u64,
    /// Jobs running in it now.
    pub running: usize,
    /// Incognito contexts open in it (`None` if it did not answer).
    pub contexts: Option<usize>,
    /// Whether it is retired and takes no new job.
    pub retired: bool,
}

#[derive(Debug)]
enum Request {
    Acquire(oneshot::Sender<Result<Lease, PoolError>>),
    Release { key: BrowserKey, broken: bool },
    Stats(oneshot::Sender<PoolStats>),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug)]
enum Event {
    Launched {
        key: BrowserKey,
        result: Result<Launched, LaunchError>,
    },
    Exited {
        key: BrowserKey,
    },
    Measured {
        key: BrowserKey,
        pss: Option<u64>,
    },
}

impl PoolHandle {
    /// Starts the pool's task; it starts its first browser at once.
    pub fn start(chromium: Chromium, config: BrowserConfig) -> Self {
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let pool = Pool {
            chromium: Arc::new(chromium),
            config: Arc::new(config),
            requests_tx: requests_tx.clone(),
            events_tx,
            instances: Vec::new(),
            next_key: 0,
            starting: None,
            waiters: VecDeque::new(),
            busy: 0,
            failures: 0,
            retry_at: None,
            last_error: None,
            launches: 0,
            crashes: 0,
            recycled: 0,
        };
        tokio::spawn(pool.run(requests, events));
        Self {
            requests: requests_tx,
        }
    }

    /// Waits for a free slot (in a browser that is running).
    pub async fn acquire(&self) -> Result<Lease, PoolError> {
        let (reply, lease) = oneshot::channel();
        self.requests
            .send(Request::Acquire(reply))
            .map_err(|_| PoolError::Closed)?;
        lease.await.map_err(|_| PoolError::Closed)?
    }

    pub async fn stats(&self) -> PoolStats {
        let (reply, stats) = oneshot::channel();
        if self.requests.send(Request::Stats(reply)).is_err() {
            return PoolStats::default();
        }
        stats.await.unwrap_or_default()
    }

    /// Kills every browser and removes their directories; running jobs fail
    /// as their browser goes away.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Shutdown(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

/// A running browser and its bookkeeping.
#[derive(Debug)]
struct Instance {
    key: BrowserKey,
    launched: Launched,
    retired: bool,
    running: usize,
    started_jobs: u64,
    finished_jobs: u64,
}

/// The pool's state, owned by its task.
#[derive(Debug)]
struct Pool {
    chromium: Arc<Chromium>,
    config: Arc<BrowserConfig>,
    /// Given to leases, so they can give their slot back.
    requests_tx: mpsc::UnboundedSender<Request>,
    events_tx: mpsc::UnboundedSender<Event>,
    instances: Vec<Instance>,
    next_key: BrowserKey,
    /// The browser being started, if one is.
    starting: Option<BrowserKey>,
    waiters: VecDeque<oneshot::Sender<Result<Lease, PoolError>>>,
    /// Leases out.
    busy: usize,
    /// Failed starts in a row.
    failures: u32,
    /// No start before this, after failures.
    retry_at: Option<Instant>,
    last_error: Option<String>,
    launches: u64,
    crashes: u64,
    recycled: u64,
}

impl Pool {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let work_dir = self.config.work_dir.clone();
        let _ = tokio::task::spawn_blocking(move || launch::sweep_stale(&work_dir)).await;
        self.keep_one_running();
        let shutdown_reply = loop {
            let retry = self.retry_at;
            tokio::select! {
                request = requests.recv() => match request {
                    // Every handle and lease is gone: nobody can use the pool.
                    None => break None,
                    Some(Request::Shutdown(reply)) => break Some(reply),
                    Some(request) => self.on_request(request),
                },
                Some(event) = events.recv() => self.on_event(event),
                () = sleep_until(retry) => self.retry_at = None,
            }
            self.dispatch();
            self.keep_one_running();
        };
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Err(PoolError::Closed));
        }
        let closing: Vec<_> = self
            .instances
            .drain(..)
            .map(|instance| destroy(instance.launched))
            .collect();
        for close in closing {
            let _ = close.await;
        }
        // A browser still starting is killed as soon as it reports.
        if self.starting.is_some() {
            while let Some(event) = events.recv().await {
                if let Event::Launched { result, .. } = event {
                    if let Ok(launched) = result {
                        let _ = destroy(launched).await;
                    }
                    break;
                }
            }
        }
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Acquire(reply) => {
                let no_browser_soon =
                    self.active().is_none() && self.starting.is_none() && self.retry_at.is_some();
                if no_browser_soon {
                    let error = self.last_error.clone().unwrap_or_default();
                    let _ = reply.send(Err(PoolError::Launch(error)));
                } else {
                    self.waiters.push_back(reply);
                }
            }
            Request::Release { key, broken } => {
                self.busy -= 1;
                let measure_every = self.config.measure_every_jobs.max(1);
                let Some(instance) = self.instances.iter_mut().find(|i| i.key == key) else {
                    return;
                };
                instance.running -= 1;
                instance.finished_jobs += 1;
                if broken && !instance.retired {
                    tracing::warn!(
                        pid = instance.launched.root_pid,
                        "retiring a browser that misbehaved"
                    );
                    instance.retired = true;
                }
                if instance.finished_jobs % measure_every == 0 {
                    let root = instance.launched.root_pid;
                    let events = self.events_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let pss = process::pss_bytes(root);
                        let _ = events.send(Event::Measured { key, pss });
                    });
                }
                self.destroy_idle_retired();
            }
            Request::Stats(reply) => {
                let browsers: Vec<_> = self
                    .instances
                    .iter()
                    .map(|instance| {
                        (
                            instance.launched.browser.clone(),
                            BrowserStats {
                                pid: instance.launched.root_pid,
                                jobs: instance.started_jobs,
                                running: instance.running,
                                contexts: None,
                                retired: instance.retired,
                            },
                        )
                    })
                    .collect();
                let mut stats = PoolStats {
                    browsers: Vec::new(),
                    busy: self.busy,
                    waiting: self.waiters.len(),
                    launches: self.launches,
                    crashes: self.crashes,
                    recycled: self.recycled,
                };
                // Asking the browsers takes round trips: not on this task.
                tokio::spawn(async move {
                    for (browser, mut browser_stats) in browsers {
                        let contexts = tokio::time::timeout(
                            Duration::from_secs(5),
                            browser.execute(GetBrowserContextsParams::default()),
                        )
                        .await;
                        if let Ok(Ok(contexts)) = contexts {
                            browser_stats.contexts =
                                Some(contexts.result.browser_context_ids.len());
                        }
                        stats.browsers.push(browser_stats);
                    }
                    let _ = reply.send(stats);
                });
            }
            Request::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Launched { key, result } => {
                self.starting = None;
                match result {
                    Ok(launched) if launched.gone.is_cancelled() => {
                        self.crashes += 1;
                        self.launch_failed("it exited right after starting".to_owned());
                        drop(destroy(launched));
                    }
                    Ok(launched) => {
                        self.failures = 0;
                        self.last_error = None;
                        self.instances.push(Instance {
                            key,
                            launched,
                            retired: false,
                            running: 0,
                            started_jobs: 0,
                            finished_jobs: 0,
                        });
                    }
                    Err(err) => self.launch_failed(err.to_string()),
                }
            }
            Event::Exited { key } => {
                if let Some(at) = self.instances.iter().position(|i| i.key == key) {
                    let instance = self.instances.swap_remove(at);
                    self.crashes += 1;
                    tracing::warn!(
                        pid = instance.launched.root_pid,
                        running_jobs = instance.running,
                        "the browser crashed; starting another"
                    );
                    drop(destroy(instance.launched));
                }
            }
            Event::Measured { key, pss } => {
                let ceiling = self.config.pss_ceiling_bytes;
                if let Some(instance) = self.instances.iter_mut().find(|i| i.key == key) {
                    tracing::debug!(pid = instance.launched.root_pid, pss, "browser memory");
                    if pss.is_some_and(|pss| pss > ceiling) && !instance.retired {
                        tracing::info!(
                            pid = instance.launched.root_pid,
                            pss,
                            ceiling,
                            "recycling a browser above its memory ceiling"
                        );
                        instance.retired = true;
                        self.recycled += 1;
                    }
                }
                self.destroy_idle_retired();
            }
        }
    }

    fn launch_failed(&mut self, error: String) {
        self.failures += 1;
        let backoff = Duration::from_millis(500)
            .saturating_mul(1 << self.failures.min(6))
            .min(MAX_BACKOFF);
        tracing::warn!(error = %error, retry_in = ?backoff, "the browser did not start");
        self.retry_at = Some(Instant::now() + backoff);
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Err(PoolError::Launch(error.clone())));
        }
        self.last_error = Some(error);
    }

    /// The browser new jobs go to.
    fn active(&self) -> Option<usize> {
        // A browser whose connection is gone may not have reported its exit yet.
        self.instances
            .iter()
            .position(|instance| !instance.retired && !instance.launched.gone.is_cancelled())
    }

    /// Hands free slots to waiting jobs.
    fn dispatch(&mut self) {
        while self.busy < self.config.slots.max(1) {
            let Some(at) = self.active() else {
                return;
            };
            let Some(waiter) = self.waiters.pop_front() else {
                return;
            };
            if waiter.is_closed() {
                continue;
            }
            let recycle_after = self.config.recycle_after_jobs.max(1);
            let instance = &mut self.instances[at];
            instance.running += 1;
            instance.started_jobs += 1;
            if instance.started_jobs >= recycle_after {
                tracing::debug!(
                    pid = instance.launched.root_pid,
                    jobs = instance.started_jobs,
                    "recycling a browser after its job count"
                );
                instance.retired = true;
                self.recycled += 1;
            }
            self.busy += 1;
            let lease = Lease {
                browser: instance.launched.browser.clone(),
                gone: instance.launched.gone.clone(),
                dir: instance.launched.dir.clone(),
                serial: instance.started_jobs,
                key: instance.key,
                broken: false,
                requests: self.requests_tx.clone(),
            };
            // A job that gave up waiting drops the lease, which gives the
            // slot back through a `Release`.
            let _ = waiter.send(Ok(lease));
        }
    }

    /// Starts a browser when none takes jobs and none is starting.
    fn keep_one_running(&mut self) {
        if self.active().is_some() || self.starting.is_some() || self.retry_at.is_some() {
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        self.starting = Some(key);
        self.launches += 1;
        let chromium = self.chromium.clone();
        let config = self.config.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let on_exit = {
                let events = events.clone();
                move || {
                    let _ = events.send(Event::Exited { key });
                }
            };
            let result = launch::launch(&chromium, &config, on_exit).await;
            let _ = events.send(Event::Launched { key, result });
        });
    }

    /// Kills retired browsers whose last job has ended.
    fn destroy_idle_retired(&mut self) {
        let mut at = 0;
        while at < self.instances.len() {
            if self.instances[at].retired && self.instances[at].running == 0 {
                let instance = self.instances.swap_remove(at);
                if instance.launched.gone.is_cancelled() {
                    // Its exit, reported later, no longer finds it: count it here.
                    self.crashes += 1;
                    tracing::warn!(
                        pid = instance.launched.root_pid,
                        "the browser crashed; starting another"
                    );
                } else {
                    tracing::debug!(
                        pid = instance.launched.root_pid,
                        "closing a retired browser"
                    );
                }
                drop(destroy(instance.launched));
            } else {
                at += 1;
            }
        }
    }
}

/// Kills a browser's processes and removes its directory, off the pool's
/// task. The returned handle may be dropped: the work goes on.
fn destroy(launched: Launched) -> tokio::task::JoinHandle<()> {
    let Launched {
        browser,
        root_pid,
        dir,
        ..
    } = launched;
    tokio::task::spawn_blocking(move || {
        launch::destroy(root_pid, &dir);
        // The connection is dropped once the process is dead: chromiumoxide
        // then reaps the process (kill on drop) without a warning.
        drop(browser);
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
