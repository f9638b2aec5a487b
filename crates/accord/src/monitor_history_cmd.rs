//! `accord monitors diff` and `accord monitors items`: a monitor's history
//! through the diff and item routes. Tables (or a unified diff) for people,
//! `--output json` for scripts, `--csv` for the item history.

use accord_client::{AccordClient, ItemFilter};
use accord_model::{ItemRecord, ItemStateFilter, MonitorId, RunDiff, WorkflowKind};
use anyhow::{bail, Result};
use serde_json::Value;

use crate::cli::{ClientArgs, Output};
use crate::config::FileConfig;
use crate::keys_cmd::connect;
use crate::monitors_cmd::{detail, item_text, parse_id};

/// Which runs a diff compares, as the flags give them.
#[derive(Debug, Clone, Copy)]
pub enum DiffChoice {
    /// `--from A --to B`.
    Between { from: i64, to: i64 },
    /// `--run R`, or none: the latest run that found a change.
    Run(Option<i64>),
}

pub async fn diff(
    id: &str,
    choice: DiffChoice,
    client: &ClientArgs,
    file: &FileConfig,
) -> Result<()> {
    let api = connect(client, file)?;
    let id = parse_id(id)?;
    let (from, to) = match choice {
        DiffChoice::Between { from, to } => (from, to),
        DiffChoice::Run(run) => {
            let to = match run {
                Some(run) => run,
                None => latest_change(&api, id).await?,
            };
            // The snapshot kept before `to`'s.
            let before = api.monitor_snapshots(id, Some(to), Some(1)).await?;
            match before.items.first() {
                Some(snapshot) => (snapshot.run_id, to),
                None => bail!("run {to} has no earlier snapshot to compare with"),
            }
        }
    };
    let diff = api.monitor_diff(id, from, to).await?;
    match client.output {
        Output::Json => out!("{}", serde_json::to_string_pretty(&diff)?),
        Output::Text => print_diff(&diff),
    }
    Ok(())
}

/// The newest run (among the last 500) whose outcome found a change.
async fn latest_change(api: &AccordClient, id: MonitorId) -> Result<i64> {
    let runs = api.monitor_runs(id, None, Some(500)).await?.items;
    let changed = runs.iter().find(|run| {
        run.outcome
            .as_ref()
            .and_then(|o| o.get("summary"))
            .and_then(|s| s.get("changed"))
            .and_then(Value::as_bool)
            == Some(true)
            && detail(run).is_some()
    });
    match changed {
        Some(run) => Ok(run.id),
        None => bail!("no run of this monitor has found a change yet: give --from and --to"),
    }
}

fn print_diff(diff: &RunDiff) {
    let when = |at: &chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%S").to_string();
    out!(
        "run {} ({}) -> run {} ({}):",
        diff.from.run_id,
        when(&diff.from.at),
        diff.to.run_id,
        when(&diff.to.at)
    );
    match diff.workflow {
        WorkflowKind::PageChange => {
            match diff.diff.get("unified").and_then(Value::as_str) {
                Some(unified) if !unified.is_empty() => out!("{}", unified.trim_end()),
                _ => out!("no text change"),
            }
            if let Some(highlight) = &diff.highlight {
                out!(
                    "visual change: {:.2}% of the pixels (run {}); highlight image: {}",
                    highlight.changed_ratio * 100.0,
                    highlight.run_id,
                    highlight.url
                );
                out!(
                    "  save it with: accord jobs artifact {} {}",
                    highlight.job_id,
                    highlight.artifact.name
                );
            }
        }
        _ => {
            if diff.diff.get("rules_changed").and_then(Value::as_bool) == Some(true) {
                out!("(the extraction rules changed between these runs)");
            }
            let mut any = false;
            for (what, sign) in [("new", "+"), ("removed", "-"), ("changed", "~")] {
                for item in diff.diff[what].as_array().into_iter().flatten() {
                    any = true;
                    out!("{sign} {}", item_text(item));
                }
            }
            if !any {
                out!("no item changed");
            }
        }
    }
}

/// The filter the `--state` and `--query` flags give (clap has checked
/// the state).
pub fn item_filter(state: &str, query: Option<String>) -> ItemFilter {
    let state = match state {
        "current" => ItemStateFilter::Current,
        "removed" => ItemStateFilter::Removed,
        _ => ItemStateFilter::All,
    };
    ItemFilter {
        state: Some(state),
        q: query,
    }
}

pub async fn items(
    id: &str,
    csv: bool,
    filter: &ItemFilter,
    client: &ClientArgs,
    file: &FileConfig,
) -> Result<()> {
    let api = connect(client, file)?;
    let id = parse_id(id)?;
    if csv {
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = api
                .monitor_items_csv(id, filter, cursor.as_deref(), None)
                .await?;
            // Every page starts with the header; print it once.
            let body = match cursor {
                None => page.as_str(),
                Some(_) => page.split_once("\r\n").map_or("", |(_, rows)| rows),
            };
            crate::output::write_raw(body);
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        return Ok(());
    }
    let mut items: Vec<ItemRecord> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = api
            .monitor_items(id, filter, cursor.as_deref(), None)
            .await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    match client.output {
        Output::Json => out!("{}", serde_json::to_string_pretty(&items)?),
        Output::Text => {
            let when = |seen: &accord_model::SeenAt| {
                format!("{} (run {})", seen.at.format("%m-%d %H:%M:%S"), seen.run_id)
            };
            let rows: Vec<(String, String)> = items
                .iter()
                .map(|item| (when(&item.first_seen), when(&item.last_seen)))
                .collect();
            // The seen columns are as wide as their widest entry: run ids grow.
            let width = rows
                .iter()
                .flat_map(|(first, last)| [first.len(), last.len()])
                .chain(["FIRST SEEN".len()])
                .max()
                .unwrap_or_default();
            out!(
                "{:<8}  {:<width$}  {:<width$}  {:<7}  ITEM",
                "STATUS",
                "FIRST SEEN",
                "LAST SEEN",
                "CHANGES"
            );
            for (item, (first, last)) in items.iter().zip(&rows) {
                out!(
                    "{:<8}  {:<width$}  {:<width$}  {:<7}  {}",
                    item.status.as_str(),
                    first,
                    last,
                    item.changes,
                    item_text(&serde_json::to_value(item)?)
                );
            }
        }
    }
    Ok(())
}
