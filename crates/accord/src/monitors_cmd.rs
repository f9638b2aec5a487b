//! `accord monitors ...` and `accord workflows ...`: the CLI of the monitor
//! and workflow routes. Tables for people, `--output json` for scripts.

use std::io::Read;
use std::path::Path;

use accord_model::{
    Engine, MonitorId, MonitorRun, MonitorView, NewMonitor, ScheduleSpec, TargetUrl, WorkflowKind,
};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cli::{MonitorsCommand, Output, WorkflowsCommand};
use crate::config::FileConfig;
use crate::keys_cmd::connect;
use crate::monitor_history_cmd::{self, DiffChoice};
use crate::monitors_io_cmd::{self, ListDefaults};
use crate::workflow_run_cmd::{self, RunArgs};

pub(crate) fn parse_id(id: &str) -> Result<MonitorId> {
    id.parse()
        .with_context(|| format!("{id:?} is not a monitor id"))
}

pub async fn run(command: MonitorsCommand, file: &FileConfig) -> Result<()> {
    match command {
        MonitorsCommand::Create {
            file: path,
            workflow,
            url,
            every,
            selectors,
            name,
            tags,
            engine,
            client,
        } => {
            let new = match path {
                Some(path) => read_monitor(&path)?,
                None => {
                    let (Some(workflow), Some(url), Some(every)) = (workflow, url, every) else {
                        bail!("give a JSON file, or --workflow, --url and --every");
                    };
                    from_flags(&workflow, &url, &every, selectors, name, tags, &engine)?
                }
            };
            let api = connect(&client, file)?;
            let created = api.create_monitor(&new).await?;
            print_monitor(&created, client.output)
        }
        MonitorsCommand::List { tag, client } => {
            let api = connect(&client, file)?;
            let mut monitors = Vec::new();
            let mut cursor = None;
            loop {
                let page = api
                    .list_monitors(tag.as_deref(), cursor.as_deref(), Some(500))
                    .await?;
                monitors.extend(page.items);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&monitors)?),
                Output::Text => {
                    out!(
                        "{:<36}  {:<14}  {:<7}  {:<20}  {:<6}  NAME",
                        "ID",
                        "WORKFLOW",
                        "EVERY",
                        "NEXT DUE",
                        "PAUSED"
                    );
                    for m in &monitors {
                        out!(
                            "{:<36}  {:<14}  {:<7}  {:<20}  {:<6}  {}",
                            m.id,
                            m.workflow.as_str(),
                            schedule_text(&m.schedule),
                            m.next_due_at.format("%Y-%m-%d %H:%M:%S"),
                            if m.paused { "yes" } else { "no" },
                            m.name
                        );
                    }
                }
            }
            Ok(())
        }
        MonitorsCommand::Get { id, client } => {
            let api = connect(&client, file)?;
            let monitor = api.get_monitor(parse_id(&id)?).await?;
            print_monitor(&monitor, client.output)
        }
        MonitorsCommand::Runs { id, limit, client } => {
            let api = connect(&client, file)?;
            let runs = api
                .monitor_runs(parse_id(&id)?, None, Some(limit))
                .await?
                .items;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&runs)?),
                Output::Text => {
                    out!(
                        "{:>6}  {:<20}  {:<9}  {:<9}  FOUND",
                        "RUN",
                        "SLOT",
                        "TRIGGER",
                        "STATE"
                    );
                    for run in &runs {
                        out!(
                            "{:>6}  {:<20}  {:<9}  {:<9}  {}",
                            run.id,
                            run.slot.format("%Y-%m-%d %H:%M:%S"),
                            value_text(&serde_json::to_value(run.trigger)?),
                            value_text(&serde_json::to_value(run.state)?),
                            found(run)
                        );
                    }
                }
            }
            Ok(())
        }
        MonitorsCommand::Diff {
            id,
            run,
            from,
            to,
            client,
        } => {
            let choice = match (from, to) {
                (Some(from), Some(to)) => DiffChoice::Between { from, to },
                _ => DiffChoice::Run(run),
            };
            monitor_history_cmd::diff(&id, choice, &client, file).await
        }
        MonitorsCommand::Items {
            id,
            csv,
            state,
            query,
            client,
        } => {
            let filter = monitor_history_cmd::item_filter(&state, query);
            monitor_history_cmd::items(&id, csv, &filter, &client, file).await
        }
        MonitorsCommand::Import {
            file: path,
            workflow,
            every,
            engine,
            tags,
            paused,
            client,
        } => {
            let defaults = ListDefaults {
                workflow,
                every,
                engine,
                tags,
                paused,
            };
            monitors_io_cmd::import(&path, &defaults, &client, file).await
        }
        MonitorsCommand::Export { tag, client } => {
            monitors_io_cmd::export(tag.as_deref(), &client, file).await
        }
        MonitorsCommand::Series { id, name, client } => {
            let api = connect(&client, file)?;
            let series = api.monitor_series(parse_id(&id)?, name.as_deref()).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&series)?),
                Output::Text => {
                    out!("{:<20}  {:<16}  {:>14}  RUN", "AT", "NAME", "VALUE");
                    for point in &series.points {
                        out!(
                            "{:<20}  {:<16}  {:>14}  {}",
                            point.at.format("%Y-%m-%d %H:%M:%S"),
                            point.name,
                            point.value,
                            point.run_id
                        );
                    }
                }
            }
            Ok(())
        }
        MonitorsCommand::Pause { id, client } => {
            let api = connect(&client, file)?;
            let monitor = api.pause_monitor(parse_id(&id)?).await?;
            print_monitor(&monitor, client.output)
        }
        MonitorsCommand::Resume { id, client } => {
            let api = connect(&client, file)?;
            let monitor = api.resume_monitor(parse_id(&id)?).await?;
            print_monitor(&monitor, client.output)
        }
        MonitorsCommand::Run { id, client } => {
            let api = connect(&client, file)?;
            let run = api.run_monitor(parse_id(&id)?).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&run)?),
                Output::Text => out!("run {} started (job {})", run.id, run.job_id),
            }
            Ok(())
        }
        MonitorsCommand::Delete { id, client } => {
            let api = connect(&client, file)?;
            api.delete_monitor(parse_id(&id)?).await?;
            if client.output == Output::Text {
                out!("deleted {id}");
            }
            Ok(())
        }
    }
}

pub async fn workflows(command: WorkflowsCommand, file: &FileConfig) -> Result<()> {
    match command {
        WorkflowsCommand::List { client } => {
            let api = connect(&client, file)?;
            let list = api.list_workflows().await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&list)?),
                Output::Text => {
                    for workflow in &list.workflows {
                        out!("{:<14}  {}", workflow.name.as_str(), workflow.description);
                    }
                }
            }
        }
        WorkflowsCommand::Get { name, client } => {
            let api = connect(&client, file)?;
            let workflow = api.get_workflow(&name).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&workflow)?),
                Output::Text => {
                    out!("{}: {}", workflow.name.as_str(), workflow.description);
                    out!("input schema:");
                    out!("{}", serde_json::to_string_pretty(&workflow.input_schema)?);
                }
            }
        }
        WorkflowsCommand::Run {
            name,
            input,
            url,
            engine,
            wait,
            timeout,
            client,
        } => {
            let args = RunArgs {
                name: &name,
                input: &input,
                url: url.as_deref(),
                engine: engine.as_deref(),
                wait,
                timeout: &timeout,
            };
            workflow_run_cmd::run(args, &client, file).await?;
        }
    }
    Ok(())
}

fn read_monitor(path: &Path) -> Result<NewMonitor> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("read the monitor from standard input")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("parse the monitor in {}", path.display()))
}

fn from_flags(
    workflow: &str,
    url: &str,
    every: &str,
    selectors: Vec<String>,
    name: Option<String>,
    tags: Vec<String>,
    engine: &str,
) -> Result<NewMonitor> {
    let workflow = WorkflowKind::parse(workflow).with_context(|| {
        format!("unknown workflow {workflow:?}: page_change, extract_items or smoke_check")
    })?;
    let input = match (workflow, selectors.is_empty()) {
        (_, true) => json!({}),
        (WorkflowKind::PageChange, false) => json!({ "selectors": selectors }),
        (_, false) => bail!("--selector is for page_change; give other inputs in a JSON file"),
    };
    let engine: Engine = serde_json::from_value(Value::String(engine.to_owned()))
        .with_context(|| format!("unknown engine {engine:?}: http, browser or auto"))?;
    Ok(NewMonitor {
        name: name.unwrap_or_else(|| url.to_owned()),
        workflow,
        url: TargetUrl::parse(url).with_context(|| format!("--url {url}"))?,
        engine,
        input,
        schedule: ScheduleSpec {
            every: Some(every.to_owned()),
            cron: None,
            time_zone: None,
        },
        tags: tags.into_iter().collect(),
        paused: false,
        notify: Vec::new(),
    })
}

fn print_monitor(monitor: &MonitorView, output: Output) -> Result<()> {
    match output {
        Output::Json => out!("{}", serde_json::to_string_pretty(monitor)?),
        Output::Text => {
            out!("id:        {}", monitor.id);
            out!("name:      {}", monitor.name);
            out!("workflow:  {}", monitor.workflow.as_str());
            out!("url:       {}", monitor.url);
            out!("schedule:  {}", schedule_text(&monitor.schedule));
            out!("paused:    {}", if monitor.paused { "yes" } else { "no" });
            out!("next due:  {}", monitor.next_due_at.to_rfc3339());
            if !monitor.tags.is_empty() {
                let tags: Vec<&str> = monitor.tags.iter().map(String::as_str).collect();
                out!("tags:      {}", tags.join(", "));
            }
            out!("input:     {}", serde_json::to_string(&monitor.input)?);
        }
    }
    Ok(())
}

fn schedule_text(schedule: &ScheduleSpec) -> String {
    match (&schedule.every, &schedule.cron) {
        (Some(every), _) => every.clone(),
        (None, Some(cron)) => match &schedule.time_zone {
            Some(zone) => format!("cron {cron} ({zone})"),
            None => format!("cron {cron}"),
        },
        (None, None) => "-".to_owned(),
    }
}

/// The workflow-specific part of a run's outcome.
pub(crate) fn detail(run: &MonitorRun) -> Option<&Value> {
    run.outcome.as_ref()?.get("detail")
}

/// What a run found, in a few words, from its outcome's summary.
fn found(run: &MonitorRun) -> String {
    if let Some(error) = &run.error {
        return format!("error: {error}");
    }
    let Some(summary) = run.outcome.as_ref().and_then(|o| o.get("summary")) else {
        return String::new();
    };
    let flag = |name: &str| summary.get(name).and_then(Value::as_bool) == Some(true);
    let count = |name: &str| summary.get(name).and_then(Value::as_u64).unwrap_or(0);
    let mut words = Vec::new();
    if flag("changed") {
        words.push("changed".to_owned());
    }
    for (name, label) in [
        ("new_items", "new"),
        ("removed_items", "removed"),
        ("changed_items", "changed items"),
    ] {
        if count(name) > 0 {
            words.push(format!("{} {label}", count(name)));
        }
    }
    if flag("condition_newly_met") {
        words.push("condition met".to_owned());
    } else if flag("condition_met") {
        words.push("condition still met".to_owned());
    }
    if flag("newly_failed") {
        words.push("FAILED".to_owned());
    } else if flag("failed") {
        words.push("still failing".to_owned());
    }
    if flag("recovered") {
        words.push("recovered".to_owned());
    }
    if words.is_empty() {
        // A smoke check's verdict has checks; the other workflows changes.
        let checked = detail(run).and_then(|d| d.get("checks")).is_some();
        if checked { "passed" } else { "no change" }.to_owned()
    } else {
        words.join(", ")
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// An item as one line: its fields, or its key.
pub(crate) fn item_text(item: &Value) -> String {
    let fields = item.get("fields").and_then(Value::as_object);
    match fields {
        Some(fields) => fields
            .iter()
            .map(|(name, value)| format!("{name}: {}", value_text(value)))
            .collect::<Vec<_>>()
            .join(" | "),
        None => value_text(item.get("key").unwrap_or(item)),
    }
}
