//! The routes, one file per area; `app.rs` assembles them.

mod app;
mod artifacts;
mod audit;
mod jobs;
mod keys;
mod monitors;
mod notifications;
mod ops;
mod stream;
mod worker;
mod workspaces;

pub(crate) use app::api_router;
pub use app::router;
pub(crate) use stream::DEFAULT_EVENT_POLL;
