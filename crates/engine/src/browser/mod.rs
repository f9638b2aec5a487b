//! The Chromium engine: jobs run in headless Chromium over the DevTools
//! protocol (chromiumoxide), each in a fresh incognito context of a pooled
//! browser.
//!
//! Owns finding a usable Chromium ([`detect_chromium`]), launching browsers
//! with server flags, the pool that owns them (slots, recycling, crash
//! recovery), and every step as a browser runs it. Deliberately not the
//! proxy every request must pass (the egress crate builds it; the binary
//! hands its address in as [`BrowserProxy`]), nor choosing between this
//! engine and the HTTP one.
//!
//! Phases, one file each: `detect` (which executable), `launch` (one browser
//! process and its directory), `process` (its process tree, memory, kill),
//! `pool` (the task owning the browsers), `engine` (the `Executor`),
//! `egress` (a job's own proxy and what it refused), `job`
//! (one job's context and steps), `page` (its page: loads, scripts, crash
//! watch), `actions`, `extract`, `assert`, `capture`, `network` (the steps), `console`
//! (what the page logs), `error` (how failures are classified).

mod actions;
mod assert;
mod capture;
mod config;
mod console;
mod detect;
mod egress;
mod engine;
mod error;
mod extract;
mod job;
mod launch;
mod network;
mod page;
mod pool;
mod process;

pub use config::{BrowserConfig, BrowserLimits, BrowserProxy, Sandbox, WindowSize};
pub use detect::{detect_chromium, Chromium, DetectError};
pub use engine::BrowserEngine;
pub use error::BrowserFailure;
pub use launch::LaunchError;
pub use pool::{BrowserStats, PoolError, PoolStats};
pub use process::{
    classified_tree as browser_processes, pss_bytes as browser_pss_bytes, BrowserProcess,
    ProcessId, ProcessKind,
};
