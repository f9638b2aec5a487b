//! What the `auto` engine decides before a job runs: which engine its first
//! attempt runs on, and the domain its memory is kept under.
//!
//! Deliberately only the pure part: the memory itself is in the store, and
//! the signs that a page renders on the client are read by the HTTP engine.

use crate::{Engine, RunEngine, Step};

/// The domain `auto` remembers an engine for: the host of the job's first
/// `navigate` (lowercase, as the URL parser leaves it).
pub fn auto_domain(steps: &[Step]) -> Option<&str> {
    steps.iter().find_map(|step| match step {
        Step::Navigate { url, .. } => url.as_url().host_str(),
        _ => None,
    })
}

/// Where an `auto` job must run whatever its domain: on the browser when
/// one of its steps needs one, with the reason; `None` when HTTP can try.
pub fn auto_needs_browser(steps: &[Step]) -> Option<(RunEngine, String)> {
    steps.iter().enumerate().find_map(|(index, step)| {
        (!Engine::Http.supports(step.requires())).then(|| {
            (
                RunEngine::Browser,
                format!("step {index} (`{}`) needs a browser", step.action()),
            )
        })
    })
}
