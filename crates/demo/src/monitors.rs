//! The monitors `accord up --demo` creates against the demo site: one of
//! each workflow, plus the price tracked on the page and on its JSON API.
//!
//! Inputs are plain JSON, as a user would send them to
//! `POST /api/v1/monitors`; the tests parse each one with
//! `accord_workflows::WorkflowInput::parse`. Deliberately does not create
//! them (the binary does, through the API, with its own client).

use accord_model::{Engine, NewMonitor, ScheduleSpec, TargetUrl, TargetUrlError};
use accord_workflows::WorkflowKind;
use serde_json::json;

use crate::script::PRICE_MARK;

/// How often the demo monitors run: a little slower than the site's tick,
/// so consecutive runs usually see a new tick.
pub const DEMO_SCHEDULE: &str = "15s";
/// The tag every demo monitor carries, to list or delete them together.
pub const DEMO_TAG: &str = "demo";

/// One monitor to create.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoMonitor {
    /// A name for people (`Demo: news`).
    pub name: &'static str,
    pub kind: WorkflowKind,
    /// The page it watches.
    pub url: String,
    /// The workflow's input, as JSON.
    pub input: serde_json::Value,
    /// An interval such as `15s`.
    pub schedule: &'static str,
    pub engine: Engine,
    pub tags: Vec<&'static str>,
    /// What a newcomer should see in its runs, for the CLI's closing words.
    pub shows: &'static str,
}

impl DemoMonitor {
    /// The monitor as `POST /api/v1/monitors` takes it (not paused, on
    /// its demo schedule).
    pub fn to_new_monitor(&self) -> Result<NewMonitor, TargetUrlError> {
        Ok(NewMonitor {
            name: self.name.to_owned(),
            workflow: self.kind,
            url: TargetUrl::parse(&self.url)?,
            engine: self.engine,
            input: self.input.clone(),
            schedule: ScheduleSpec {
                every: Some(self.schedule.to_owned()),
                cron: None,
                time_zone: None,
            },
            tags: self.tags.iter().map(|tag| (*tag).to_owned()).collect(),
            paused: false,
            notify: Vec::new(),
        })
    }
}

/// The demo monitors against the site at `base_url` (`http://127.0.0.1:PORT`,
/// with or without a trailing slash).
pub fn monitors(base_url: &str) -> Vec<DemoMonitor> {
    let base = base_url.trim_end_matches('/');
    let monitor = |name, kind, path: &str, input, shows| DemoMonitor {
        name,
        kind,
        url: format!("{base}{path}"),
        input,
        schedule: DEMO_SCHEDULE,
        engine: Engine::Http,
        tags: vec![DEMO_TAG],
        shows,
    };
    vec![
        monitor(
            "Demo: news front page",
            WorkflowKind::PageChange,
            "/news",
            json!({
                // The visitor counter changes every tick: removed by selector.
                "remove": ["#visitors"],
                // So do the clock and "updated N seconds ago": ignored by
                // pattern (the line left empty is dropped).
                "ignore": [r"Last updated \d{2}:\d{2}:\d{2} UTC", r"· updated \d+ seconds? ago"],
            }),
            "a text diff when a new top story appears (every 30 s); the counter and clock never count",
        ),
        monitor(
            "Demo: job board",
            WorkflowKind::ExtractItems,
            "/jobs",
            json!({
                "item_selector": "li.job",
                "fields": {
                    "title": {"selector": "h3"},
                    "company": {"selector": ".company"},
                    "location": {"selector": ".location"},
                    "link": {"selector": "h3 a", "attribute": "href"},
                    "date": {"selector": "time", "attribute": "datetime"},
                },
                "key": {"field": "link"},
                "pagination": {"next_selector": "a.next", "max_pages": 3},
            }),
            "a new posting on every run (all three pages are read), the oldest expiring every fourth tick, postings moving to Remote",
        ),
        monitor(
            "Demo: product price",
            WorkflowKind::PageChange,
            "/product",
            json!({
                "selectors": ["#price"],
                "values": [{"name": "price", "selector": "#price", "condition": {"below": PRICE_MARK}}],
            }),
            "a price series; the price drops below $1,000 after about 40 s",
        ),
        monitor(
            "Demo: product API",
            WorkflowKind::PageChange,
            "/api/product.json",
            json!({
                "format": "json",
                "values": [{"name": "price", "json_pointer": "/price", "condition": {"below": PRICE_MARK}}],
            }),
            "the same price read from JSON, compared as canonical JSON",
        ),
        monitor(
            "Demo: status page",
            WorkflowKind::SmokeCheck,
            "/status",
            json!({
                "required_selectors": ["#status-ok"],
                "required_texts": ["All systems operational"],
                "forbidden_texts": ["Service degraded"],
                "max_load_ms": 5_000,
            }),
            "a failing check after about 50 s (HTTP 500, then degraded) and its recovery",
        ),
    ]
}
