//! The routes, one file per area; `app.rs` assembles them.

mod app;
mod jobs;
mod ops;
mod worker;

pub(crate) use app::api_router;
pub use app::router;
