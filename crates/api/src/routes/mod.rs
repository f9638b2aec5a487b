//! The routes, one file per area; `app.rs` assembles them.

mod app;
mod artifacts;
mod audit;
mod domains;
mod egress;
mod feeds;
mod items_csv;
mod jobs;
mod keys;
mod monitor_history;
mod monitors;
mod notifications;
mod ops;
mod policies;
mod robots;
mod stream;
mod worker;
mod workflow_runs;
mod workspaces;

pub(crate) use app::api_router;
pub use app::router;
pub(crate) use stream::DEFAULT_EVENT_POLL;
