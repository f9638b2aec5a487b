//! Accord's post-processing: pure, synchronous functions from what the
//! engine captured plus the monitor's previous snapshot to an outcome and
//! the next snapshot.
//!
//! Owns the built-in workflows and their inputs (`WorkflowKind`,
//! `WorkflowInput`, each input's JSON Schema and validation), and what they
//! compute:
//! - `page_change`: normalised text (elements removed by selector, ignore
//!   patterns, sorting, canonical JSON), unified diffs and hunks, trigger
//!   texts, visual comparison of screenshots (`visual`), tracked values;
//! - `extract_items`: new, removed and changed items by key, with keyword
//!   filters and duplicate handling;
//! - `smoke_check`: a verdict listing every check, with failure and
//!   recovery edges;
//! - `values`: numbers parsed from page text and conditions on them;
//! - `history`: two stored snapshots compared, one bounded for a listing;
//! - `outcome`: one `RunOutcome` shape with the `Summary` a notification
//!   needs, and the versioned `Snapshot` kept between runs.
//!
//! Deliberately does no IO: no network, no database, no files, no clock,
//! no async runtime. The control plane calls [`run`] from `spawn_blocking`
//! at job completion and stores the outcome and snapshot in the same
//! transaction; the engine captures what these functions read.

mod expand;
mod history;
mod html;
mod items;
mod kind;
mod outcome;
mod page_change;
mod pattern;
mod run;
mod schema;
mod smoke;
mod text;
mod validate;
mod values;
mod version;
mod visual;

pub use expand::{
    capture_from_failure, capture_from_result, expand, JobTarget, SCREENSHOT_ARTIFACT,
};
pub use history::{
    bounded_snapshot, diff_snapshots, DiffError, SnapshotDiff, MAX_LISTED_ITEMS,
    MAX_LISTED_TEXT_BYTES,
};
pub use html::{PageTooComplex, MAX_PAGE_DEPTH, MAX_PAGE_NODES};
pub use items::{
    compare_items, extract_items, ChangedItem, ExtractItemsInput, FieldChange, Item, ItemField,
    ItemKey, ItemsDiff, ItemsOutcome, ItemsRun, ItemsSnapshot, KeywordFilter, Pagination, Record,
    MAX_ITEMS, MAX_PAGES,
};
pub use kind::{UnknownWorkflow, WorkflowInfo, WorkflowInput, WorkflowKind};
pub use outcome::{BaselineReason, RunOutcome, Snapshot, Summary, WorkflowOutcome};
pub use page_change::{
    diff_texts, page_change, BodyFormat, CaptureError, DiffLine, Hunk, LineKind, PageCapture,
    PageChangeInput, PageChangeOutcome, PageChangeRun, PageSnapshot, PreviousPage, TextDiff,
    Trigger, TriggerOutcome, TriggerWhen, VisualOutcome, MAX_DIFF_LINES,
};
pub use pattern::{Pattern, PatternError, MAX_PATTERN_BYTES};
pub use run::{run, Capture, Previous, RunError, RunResult};
pub use schema::json_schema;
pub use smoke::{
    smoke_check, CheckKind, CheckResult, CheckStatus, SmokeCapture, SmokeCheckInput, SmokeOutcome,
    SmokeRun, SmokeSnapshot, StatusRule, MAX_LOAD_MS, MAX_REDIRECTS, MAX_TLS_DAYS,
};
pub use validate::{MAX_LIST_LEN, MAX_TEXT_BYTES};
pub use values::{
    parse_number, track_value, Condition, DecimalSeparator, NumberError, ValueOutcome, ValueSpec,
    ValueState, MAX_JSON_POINTER_BYTES,
};
pub use version::FormatV1;
pub use visual::{
    compare_screenshots, HighlightArtifact, Region, Screenshot, Size, VisualComparison, VisualDiff,
    VisualError, VisualRule, HIGHLIGHT_ARTIFACT, MAX_PIXELS,
};
