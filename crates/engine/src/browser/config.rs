//! How the browser engine is configured. Filled in by the binary from its
//! flags; the defaults fit a small server. Nothing here comes from a job:
//! a job can neither add launch flags nor change these bounds.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the browser engine and its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserConfig {
    /// Jobs that run at once (one incognito context each).
    pub slots: usize,
    /// A browser is replaced after this many jobs, so whatever it leaks
    /// (caches, fragmentation) never accumulates.
    pub recycle_after_jobs: u64,
    /// A browser whose processes together use more than this (PSS) is
    /// replaced once its running jobs end.
    pub pss_ceiling_bytes: u64,
    /// How often (in finished jobs per browser) its PSS is measured.
    pub measure_every_jobs: u64,
    /// Longest wait for a browser to start and open its DevTools endpoint.
    pub launch_timeout: Duration,
    /// Longest time of one `navigate`, or of an action's navigation.
    pub navigate_timeout: Duration,
    /// Longest wait of a `wait_for` step without its own timeout, and of
    /// the elements an action needs.
    pub element_timeout: Duration,
    /// Where each browser gets its own directory (profile and temp files),
    /// removed when the browser exits or crashes.
    pub work_dir: PathBuf,
    /// Chromium's sandbox; it cannot run as root, so the default follows the
    /// user this process runs as.
    pub sandbox: Sandbox,
    /// The window every page gets; screenshots set their own width.
    pub window: WindowSize,
    /// Where every request of every page goes, when set (the egress proxy).
    pub proxy: Option<BrowserProxy>,
    /// Bounds on what a job may capture.
    pub limits: BrowserLimits,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self {
            slots: 2,
            recycle_after_jobs: 2_000,
            pss_ceiling_bytes: 1024 * 1024 * 1024,
            measure_every_jobs: 25,
            launch_timeout: Duration::from_secs(20),
            navigate_timeout: Duration::from_secs(30),
            element_timeout: Duration::from_secs(10),
            work_dir: std::env::temp_dir(),
            sandbox: Sandbox::for_this_process(),
            window: WindowSize::default(),
            proxy: None,
            limits: BrowserLimits::default(),
        }
    }
}

/// Whether Chromium runs its renderers in its sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    Enabled,
    /// Needed when running as root (containers): Chromium refuses to start
    /// its sandbox then.
    Disabled,
}

impl Sandbox {
    /// Enabled, unless this process runs as root.
    pub fn for_this_process() -> Self {
        if nix::unistd::geteuid().is_root() {
            Self::Disabled
        } else {
            Self::Enabled
        }
    }
}

/// A page's window, in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub width: u32,
    pub height: u32,
}

impl Default for WindowSize {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 800,
        }
    }
}

/// The proxy every browser request must pass (the egress proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserProxy {
    /// `--proxy-server`, e.g. `http://127.0.0.1:8118`.
    pub server: String,
}

/// Bounds on what one job may capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserLimits {
    /// Tallest full-page or element screenshot, in CSS pixels; a taller one
    /// is cut.
    pub max_screenshot_height: u32,
    /// Largest download kept; a bigger one fails its step.
    pub max_download_bytes: u64,
    /// Largest response body kept per captured request; longer ones are cut.
    pub max_network_body_bytes: usize,
    /// Most requests one `capture_network` keeps.
    pub max_network_entries: usize,
    /// Most console messages kept in `console.json`.
    pub max_console_entries: usize,
    /// Largest final HTML kept as `page.html`; a longer one is cut.
    pub max_html_bytes: usize,
    /// Most text all `extract` steps of a job may return together.
    pub max_extracted_bytes: usize,
    /// Most rounds of one `scroll` step (one round: scroll to the bottom,
    /// wait for the page to grow).
    pub max_scroll_rounds: u32,
}

impl Default for BrowserLimits {
    fn default() -> Self {
        Self {
            max_screenshot_height: 16_384,
            max_download_bytes: 50 * 1024 * 1024,
            max_network_body_bytes: 256 * 1024,
            max_network_entries: 500,
            max_console_entries: 1_000,
            max_html_bytes: 10 * 1024 * 1024,
            max_extracted_bytes: 8 * 1024 * 1024,
            max_scroll_rounds: 50,
        }
    }
}
