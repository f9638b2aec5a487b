//! Monitors: a workflow, its input and a target, run on a schedule, with
//! their runs. Owns `WorkflowKind` (the names of the built-in workflows),
//! `MonitorId`, the `Schedule` (an interval or a cron expression in a time
//! zone) with its pure `next_after` and the per-monitor jitter, the
//! request shapes (`NewMonitor`, `MonitorPatch`) and what is stored
//! (`Monitor`, `MonitorRun`).
//!
//! Deliberately does not know the workflows' inputs (the `workflows` crate
//! parses `input` for its kind) and does not read a clock: every time is
//! passed in.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{
    check_subscriptions, Engine, JobId, Subscription, TargetUrl, ValidationError, WorkspaceId,
};

/// A built-in workflow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    /// Whether a page (or parts of it) changed, with a diff.
    PageChange,
    /// A list of records out of a page, with new, removed and changed items.
    ExtractItems,
    /// Whether a page loads and shows what it must.
    SmokeCheck,
}

impl WorkflowKind {
    pub const ALL: [Self; 3] = [Self::PageChange, Self::ExtractItems, Self::SmokeCheck];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PageChange => "page_change",
            Self::ExtractItems => "extract_items",
            Self::SmokeCheck => "smoke_check",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for WorkflowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a built-in workflow; reads after "failed to".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("find workflow {0:?}: the workflows are page_change, extract_items and smoke_check")]
pub struct UnknownWorkflow(pub String);

impl FromStr for WorkflowKind {
    type Err = UnknownWorkflow;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name).ok_or_else(|| UnknownWorkflow(name.to_owned()))
    }
}

crate::ids::uuid_id!(
    /// A monitor id: a UUIDv7, so ids sort by creation time.
    MonitorId,
    "monitor id"
);

impl MonitorId {
    /// A number in `[0, 1)` fixed for this monitor: its jitter.
    pub fn jitter_unit(&self) -> f64 {
        let digest = Sha256::digest(self.0.as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        // 53 bits: exactly representable in an f64.
        (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Longest interval: a year.
pub const MAX_INTERVAL_SECONDS: u64 = 366 * 24 * 3_600;
/// The default smallest interval a workspace may schedule.
pub const DEFAULT_MIN_INTERVAL_SECONDS: u64 = 10;
/// The share of an interval a monitor's slots are shifted by, at most
/// (from the monitor's id), so monitors created together spread out.
pub const JITTER_FRACTION: f64 = 0.1;
/// Most a cron schedule is shifted by: a tenth of its smallest period, the
/// minute.
pub const CRON_MAX_JITTER_MS: i64 = 6_000;
/// Longest cron expression, in bytes.
pub const MAX_CRON_BYTES: usize = 256;

/// A schedule as written: `{"every": "5m"}` or
/// `{"cron": "0 9 * * 1-5", "time_zone": "Europe/Paris"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// An interval: a whole number with a unit, `s`, `m` or `h` (`30s`,
    /// `5m`, `2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "5m")]
    pub every: Option<String>,
    /// A cron expression: five fields (minute hour day month weekday), or
    /// six with seconds first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "0 9 * * 1-5")]
    pub cron: Option<String>,
    /// With `cron`: an IANA time zone (`Europe/Paris`); UTC when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron {
        expression: String,
        cron: Box<croner::Cron>,
        time_zone: chrono_tz::Tz,
    },
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.spec() == other.spec()
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses `30s`, `5m`, `2h` into seconds.
pub fn parse_interval(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write it like 30s, 5m or 2h"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number: write it like 5m"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        other => {
            return Err(format!(
                "unknown unit {other:?}: the units are s, m and h (30s, 5m, 2h)"
            ))
        }
    };
    number
        .checked_mul(scale)
        .filter(|seconds| *seconds <= MAX_INTERVAL_SECONDS)
        .ok_or_else(|| format!("{text:?} is longer than a year"))
}

fn format_interval(seconds: i64) -> String {
    if seconds % 3_600 == 0 {
        format!("{}h", seconds / 3_600)
    } else if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

impl Schedule {
    /// Parses and checks `spec`; `min_interval_seconds` is the workspace's
    /// smallest interval. Errors name `field.every`, `field.cron` or
    /// `field.time_zone`.
    pub fn parse(
        spec: &ScheduleSpec,
        field: &str,
        min_interval_seconds: u64,
    ) -> Result<Self, ValidationError> {
        match (&spec.every, &spec.cron) {
            (Some(every), None) => {
                if spec.time_zone.is_some() {
                    return Err(invalid(
                        format!("{field}.time_zone"),
                        "a time zone goes with `cron`, not with `every`",
                    ));
                }
                let seconds =
                    parse_interval(every).map_err(|m| invalid(format!("{field}.every"), m))?;
                if seconds < min_interval_seconds {
                    return Err(invalid(
                        format!("{field}.every"),
                        format!(
                            "{every:?} is shorter than this workspace's minimum interval of \
                             {min_interval_seconds} seconds"
                        ),
                    ));
                }
                let seconds = i64::try_from(seconds).expect("at most a year");
                Ok(Self::Every(Duration::seconds(seconds)))
            }
            (None, Some(expression)) => {
                let expression = expression.trim();
                if expression.len() > MAX_CRON_BYTES {
                    return Err(invalid(
                        format!("{field}.cron"),
                        format!("a cron expression is at most {MAX_CRON_BYTES} bytes"),
                    ));
                }
                let cron = croner::Cron::new(expression)
                    .with_seconds_optional()
                    .parse()
                    .map_err(|err| {
                        invalid(
                            format!("{field}.cron"),
                            format!("invalid cron expression {expression:?}: {err}"),
                        )
                    })?;
                let time_zone = match &spec.time_zone {
                    None => chrono_tz::UTC,
                    Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
                        invalid(
                            format!("{field}.time_zone"),
                            format!(
                                "unknown time zone {name:?}: use an IANA name such as \
                                 Europe/Paris or UTC"
                            ),
                        )
                    })?,
                };
                let schedule = Self::Cron {
                    expression: expression.to_owned(),
                    cron: Box::new(cron),
                    time_zone,
                };
                // The shortest gap between two runs must respect the minimum
                // too (`* * * * * *` is every second).
                let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
                if let (Some(a), Some(b)) = (
                    schedule.next_cron(start),
                    schedule
                        .next_cron(start)
                        .and_then(|a| schedule.next_cron(a)),
                ) {
                    let gap = (b - a).num_seconds();
                    if u64::try_from(gap).unwrap_or(0) < min_interval_seconds {
                        return Err(invalid(
                            format!("{field}.cron"),
                            format!(
                                "{expression:?} runs every {gap} seconds, more often than this \
                                 workspace's minimum interval of {min_interval_seconds} seconds"
                            ),
                        ));
                    }
                } else {
                    return Err(invalid(
                        format!("{field}.cron"),
                        format!("{expression:?} never runs"),
                    ));
                }
                Ok(schedule)
            }
            (Some(_), Some(_)) => Err(invalid(
                field.to_owned(),
                "give either `every` or `cron`, not both",
            )),
            (None, None) => Err(invalid(
                field.to_owned(),
                "give `every` (like 5m) or `cron` (like 0 9 * * *)",
            )),
        }
    }

    /// The schedule as written, normalised.
    pub fn spec(&self) -> ScheduleSpec {
        match self {
            Self::Every(interval) => ScheduleSpec {
                every: Some(format_interval(interval.num_seconds())),
                cron: None,
                time_zone: None,
            },
            Self::Cron {
                expression,
                time_zone,
                ..
            } => ScheduleSpec {
                every: None,
                cron: Some(expression.clone()),
                time_zone: Some(time_zone.name().to_owned()),
            },
        }
    }

    /// The next cron occurrence strictly after `after`, without jitter.
    fn next_cron(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Self::Cron {
            cron, time_zone, ..
        } = self
        else {
            return None;
        };
        let local = after.with_timezone(time_zone);
        cron.find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// This monitor's shift of every slot, from its jitter unit.
    pub fn jitter(&self, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        match self {
            Self::Every(interval) => {
                let max_ms = interval.num_milliseconds() as f64 * JITTER_FRACTION;
                Duration::milliseconds((max_ms * unit) as i64)
            }
            Self::Cron { .. } => Duration::milliseconds((CRON_MAX_JITTER_MS as f64 * unit) as i64),
        }
    }

    /// The first slot strictly after `after` for a monitor whose jitter
    /// unit is `unit` ([`MonitorId::jitter_unit`]). Interval slots lie on a
    /// grid from the Unix epoch shifted by the jitter, so they do not drift
    /// and a late run does not move the next one; cron slots are the
    /// expression's occurrences in its time zone, shifted by the jitter.
    /// `None` when a cron expression never runs again.
    pub fn next_after(&self, after: DateTime<Utc>, unit: f64) -> Option<DateTime<Utc>> {
        let jitter = self.jitter(unit);
        match self {
            Self::Every(interval) => {
                let step = interval.num_milliseconds().max(1);
                let offset = jitter.num_milliseconds();
                let t = after.timestamp_millis() - offset;
                let next = (t.div_euclid(step) + 1) * step + offset;
                DateTime::from_timestamp_millis(next)
            }
            Self::Cron { .. } => self.next_cron(after - jitter).map(|next| next + jitter),
        }
    }
}

/// Most tags on a monitor.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 64;
/// Longest monitor name, in bytes.
pub const MAX_MONITOR_NAME_BYTES: usize = 200;

/// Checks a tag: 1 to 64 bytes of letters, digits, `-`, `_`, `.` and `:`.
pub fn check_tag(field: &str, tag: &str) -> Result<(), ValidationError> {
    if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
        return Err(invalid(
            field,
            format!("a tag is 1 to {MAX_TAG_BYTES} bytes"),
        ));
    }
    if let Some(bad) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(invalid(
            field,
            format!("{bad:?} is not allowed in a tag: use letters, digits, -, _, . and :"),
        ));
    }
    Ok(())
}

fn check_tags(tags: &BTreeSet<String>) -> Result<(), ValidationError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (i, tag) in tags.iter().enumerate() {
        check_tag(&format!("tags[{i}]"), tag)?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(invalid("name", "must not be blank"));
    }
    if name.len() > MAX_MONITOR_NAME_BYTES {
        return Err(invalid(
            "name",
            format!("at most {MAX_MONITOR_NAME_BYTES} bytes"),
        ));
    }
    if name.contains('\0') {
        return Err(invalid("name", "must not contain the NUL character"));
    }
    Ok(())
}

fn default_input() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// `POST /api/v1/monitors`: a monitor to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMonitor {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub workflow: WorkflowKind,
    /// The page the workflow loads.
    #[schema(value_type = String, format = Uri)]
    pub url: TargetUrl,
    #[serde(default)]
    pub engine: Engine,
    /// The workflow's input (see `GET /api/v1/workflows/{name}`).
    #[serde(default = "default_input")]
    pub input: serde_json::Value,
    pub schedule: ScheduleSpec,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    #[schema(max_items = 16)]
    pub tags: BTreeSet<String>,
    /// Create it paused.
    #[serde(default)]
    pub paused: bool,
    /// The notification targets (of this workspace) told about its runs,
    /// and of which events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 16)]
    pub notify: Vec<Subscription>,
}

impl NewMonitor {
    /// Checks everything but `input` (its workflow's crate checks that) and
    /// returns the parsed schedule.
    pub fn validate(&self, min_interval_seconds: u64) -> Result<Schedule, ValidationError> {
        check_name(&self.name)?;
        check_tags(&self.tags)?;
        check_subscriptions(&self.notify)?;
        Schedule::parse(&self.schedule, "schedule", min_interval_seconds)
    }
}

/// `PATCH /api/v1/monitors/{id}`: the members to change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uri)]
    pub url: Option<TargetUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeSet<String>>,
    /// Replaces the monitor's notification targets (`[]` removes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 16)]
    pub notify: Option<Vec<Subscription>>,
}

impl MonitorPatch {
    /// Applies the patch to `monitor`, checked like a new monitor.
    pub fn apply(
        &self,
        monitor: &Monitor,
        min_interval_seconds: u64,
    ) -> Result<Monitor, ValidationError> {
        let mut next = monitor.clone();
        if let Some(name) = &self.name {
            check_name(name)?;
            next.name = name.clone();
        }
        if let Some(url) = &self.url {
            next.url = url.clone();
        }
        if let Some(engine) = self.engine {
            next.engine = engine;
        }
        if let Some(input) = &self.input {
            next.input = input.clone();
        }
        if let Some(schedule) = &self.schedule {
            next.schedule = Schedule::parse(schedule, "schedule", min_interval_seconds)?;
        }
        if let Some(tags) = &self.tags {
            check_tags(tags)?;
            next.tags = tags.clone();
        }
        if let Some(notify) = &self.notify {
            check_subscriptions(notify)?;
            next.notify = notify.clone();
        }
        Ok(next)
    }
}

/// A stored monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub id: MonitorId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub workflow: WorkflowKind,
    pub url: TargetUrl,
    pub engine: Engine,
    pub input: serde_json::Value,
    pub schedule: Schedule,
    pub tags: BTreeSet<String>,
    pub paused: bool,
    /// Whom its runs notify, of what.
    pub notify: Vec<Subscription>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the next scheduled run is due (kept while paused; resuming
    /// moves it to the first slot after the resume).
    pub next_due_at: DateTime<Utc>,
}

impl Monitor {
    /// The first slot of this monitor strictly after `after`.
    pub fn next_slot_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next_after(after, self.id.jitter_unit())
    }
}

/// `GET /api/v1/monitors/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorView {
    pub id: MonitorId,
    pub name: String,
    pub workflow: WorkflowKind,
    #[schema(value_type = String, format = Uri)]
    pub url: TargetUrl,
    pub engine: Engine,
    pub input: serde_json::Value,
    pub schedule: ScheduleSpec,
    pub tags: BTreeSet<String>,
    pub paused: bool,
    /// The notification targets told about its runs, and of which events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Subscription>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub next_due_at: DateTime<Utc>,
}

impl From<&Monitor> for MonitorView {
    fn from(m: &Monitor) -> Self {
        Self {
            id: m.id,
            name: m.name.clone(),
            workflow: m.workflow,
            url: m.url.clone(),
            engine: m.engine,
            input: m.input.clone(),
            schedule: m.schedule.spec(),
            tags: m.tags.clone(),
            paused: m.paused,
            notify: m.notify.clone(),
            created_at: m.created_at,
            updated_at: m.updated_at,
            next_due_at: m.next_due_at,
        }
    }
}

/// Where a run stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Its job has not finished.
    Running,
    /// The workflow ran and recorded an outcome.
    Succeeded,
    /// A smoke check whose page could not be loaded at all.
    Failed,
    /// The job failed (or was cancelled) before the workflow could run.
    Error,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Succeeded, Self::Failed, Self::Error]
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    /// The state a run ends in when its job fails for good.
    pub fn of_failed_job(workflow: WorkflowKind) -> Self {
        match workflow {
            WorkflowKind::SmokeCheck => Self::Failed,
            _ => Self::Error,
        }
    }
}

/// What started a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    Schedule,
    Manual,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Schedule, Self::Manual]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// One run of a monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorRun {
    /// Increasing across all runs of all monitors.
    pub id: i64,
    pub monitor_id: MonitorId,
    /// The slot this run is for (the due time; for a manual run, when it
    /// was asked for). At most one run per monitor and slot.
    pub slot: DateTime<Utc>,
    pub trigger: RunTrigger,
    pub job_id: JobId,
    pub state: RunState,
    /// The workflow's outcome (`RunOutcome`), once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
    /// Why the run has no outcome, or, for a smoke check whose site did
    /// not answer, why its job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether this run's snapshot became the monitor's baseline.
    pub has_snapshot: bool,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// One number a run read (a tracked value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesPoint {
    pub run_id: i64,
    pub name: String,
    pub value: f64,
    pub at: DateTime<Utc>,
}

/// One built-in workflow (`GET /api/v1/workflows/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowView {
    pub name: WorkflowKind,
    pub description: String,
    /// The JSON Schema of the workflow's `input`.
    pub input_schema: serde_json::Value,
}

/// `GET /api/v1/workflows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowView>,
}

/// `GET /api/v1/monitors`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorPage {
    pub items: Vec<MonitorView>,
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/monitors/{id}/runs`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<MonitorRun>,
    pub next_cursor: Option<i64>,
}

/// `GET /api/v1/monitors/{id}/series`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Series {
    /// Oldest first.
    pub points: Vec<SeriesPoint>,
}

#[cfg(test)]
mod tests;
