//! Tracing set-up: human-readable by default, JSON on request.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// chromiumoxide logs the end of every browser's connection as an error,
/// also when the pool closed that browser on purpose; the pool reports exits
/// and crashes itself. Unless a filter names chromiumoxide, it is silenced.
const QUIET_CDP: &str = "chromiumoxide::handler=off";

pub fn init(format: LogFormat, filter: Option<&str>) {
    let directives = filter
        .map(str::to_owned)
        .or_else(|| {
            EnvFilter::try_from_env("RUST_LOG")
                .ok()
                .map(|env| env.to_string())
        })
        .unwrap_or_else(|| "info,tower_http=warn,sqlx=warn".to_owned());
    let filter = if directives.contains("chromiumoxide") {
        EnvFilter::new(directives)
    } else {
        EnvFilter::new(format!("{directives},{QUIET_CDP}"))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
