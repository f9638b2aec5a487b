//! The demo of `accord up --demo`: a small site on loopback whose pages
//! change while you watch, and the monitors that watch it.
//!
//! - [`DemoSite`] serves a news front page, a job board over three pages, a
//!   product page with its JSON API, and a status page, all rendered from a
//!   deterministic script of ticks ([`script`]): tick N always shows the
//!   same thing, so tests know what to expect and a newcomer sees a text
//!   diff, new job postings, a price crossing a mark and a failing then
//!   recovering smoke check within two minutes. Tests move it on with
//!   [`DemoSite::advance`]; the demo starts a timer
//!   ([`DemoSite::start_timer`], every [`DEFAULT_TICK`]).
//! - [`monitors`] lists one monitor of each workflow against the site, with
//!   inputs as a user would write them.
//! - [`MutatingSite`] serves N plain pages whose content changes only when
//!   told ([`MutatingSite::mutate`]), for `accord bench monitors`.
//!
//! Deliberately does not create monitors, allow private targets or print
//! anything: the binary does that, through the API. Nothing here reads a
//! clock (the timer only counts ticks) or the environment, or reaches
//! beyond loopback.

mod monitors;
mod mutating;
pub mod pages;
pub mod script;
mod site;

pub use monitors::{monitors, DemoMonitor, DEMO_SCHEDULE, DEMO_TAG};
pub use mutating::{page_html, MutatingSite, PageOutOfRange};
pub use site::{DemoSite, DEFAULT_TICK};
