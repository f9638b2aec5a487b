//! `accord monitors import FILE` and `accord monitors export`: monitors in
//! and out as files. Import reads a plain list of URLs (one a line, `#`
//! comment lines, blank lines skipped) with defaults from the flags, or the
//! JSON array `export` writes (each entry as `POST /api/v1/monitors` takes
//! it). The whole file is parsed before anything is created, so a typo on
//! line 40 creates nothing; a monitor the server refuses is reported with
//! its line or index and the others are still created.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use accord_model::{Engine, MonitorView, NewMonitor, ScheduleSpec, TargetUrl, WorkflowKind};
use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cli::{ClientArgs, Output};
use crate::config::FileConfig;
use crate::keys_cmd::connect;

/// The defaults a list of URLs takes from the flags.
#[derive(Debug, Clone)]
pub struct ListDefaults {
    pub workflow: String,
    pub every: String,
    pub engine: String,
    pub tags: Vec<String>,
    pub paused: bool,
}

/// One monitor to create, with where it came from (`line 3`, `entry 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub origin: String,
    pub monitor: NewMonitor,
}

/// Parses an import file: a JSON array when it starts with `[`, else a list
/// of URLs.
pub fn parse_import(text: &str, defaults: &ListDefaults) -> Result<Vec<Entry>> {
    if text.trim_start().starts_with('[') {
        let entries: Vec<Value> = serde_json::from_str(text).context("parse the JSON array")?;
        return entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                let monitor: NewMonitor = serde_json::from_value(entry)
                    .with_context(|| format!("entry {index}: not a monitor"))?;
                Ok(Entry {
                    origin: format!("entry {index}"),
                    monitor,
                })
            })
            .collect();
    }
    let workflow = WorkflowKind::parse(&defaults.workflow).with_context(|| {
        format!(
            "--workflow {:?}: the workflows are page_change, extract_items and smoke_check",
            defaults.workflow
        )
    })?;
    let engine: Engine = serde_json::from_value(Value::String(defaults.engine.clone()))
        .with_context(|| format!("--engine {:?}: http, browser or auto", defaults.engine))?;
    let tags: BTreeSet<String> = defaults.tags.iter().cloned().collect();
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let url =
            TargetUrl::parse(line).with_context(|| format!("line {}: {line:?}", index + 1))?;
        entries.push(Entry {
            origin: format!("line {}", index + 1),
            monitor: NewMonitor {
                name: line.to_owned(),
                workflow,
                url,
                engine,
                input: Value::Object(serde_json::Map::new()),
                schedule: ScheduleSpec {
                    every: Some(defaults.every.clone()),
                    cron: None,
                    time_zone: None,
                },
                tags: tags.clone(),
                paused: defaults.paused,
                notify: Vec::new(),
            },
        });
    }
    Ok(entries)
}

/// A stored monitor as `import` reads it back.
pub fn to_new_monitor(view: &MonitorView) -> NewMonitor {
    NewMonitor {
        name: view.name.clone(),
        workflow: view.workflow,
        url: view.url.clone(),
        engine: view.engine,
        input: view.input.clone(),
        schedule: view.schedule.clone(),
        tags: view.tags.clone(),
        paused: view.paused,
        // Target ids are the workspace's: an import elsewhere names the
        // unknown target in its error.
        notify: view.notify.clone(),
    }
}

fn read(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("read standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
    }
}

pub async fn import(
    path: &Path,
    defaults: &ListDefaults,
    client: &ClientArgs,
    file: &FileConfig,
) -> Result<()> {
    let entries = parse_import(&read(path)?, defaults)
        .with_context(|| format!("nothing imported from {}", path.display()))?;
    let api = connect(client, file)?;
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for entry in &entries {
        match api.create_monitor(&entry.monitor).await {
            Ok(monitor) => created.push((entry.origin.clone(), monitor)),
            Err(err) => refused.push((entry.origin.clone(), err.to_string())),
        }
    }
    match client.output {
        Output::Json => {
            let created: Vec<&MonitorView> = created.iter().map(|(_, m)| m).collect();
            let refused: Vec<Value> = refused
                .iter()
                .map(|(origin, error)| serde_json::json!({"origin": origin, "error": error}))
                .collect();
            out!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"created": created, "refused": refused})
                )?
            );
        }
        Output::Text => {
            for (origin, monitor) in &created {
                out!("{origin}: created {} {}", monitor.id, monitor.name);
            }
            for (origin, error) in &refused {
                out!("{origin}: refused: {error}");
            }
            out!("{} created, {} refused", created.len(), refused.len());
        }
    }
    if !refused.is_empty() {
        bail!(
            "{} of {} monitors were refused",
            refused.len(),
            entries.len()
        );
    }
    Ok(())
}

pub async fn export(tag: Option<&str>, client: &ClientArgs, file: &FileConfig) -> Result<()> {
    let api = connect(client, file)?;
    let mut monitors = Vec::new();
    let mut cursor = None;
    loop {
        let page = api.list_monitors(tag, cursor.as_deref(), Some(500)).await?;
        monitors.extend(page.items.iter().map(to_new_monitor));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // Oldest first, so an import creates them in their original order.
    monitors.reverse();
    out!("{}", serde_json::to_string_pretty(&monitors)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ListDefaults {
        ListDefaults {
            workflow: "smoke_check".to_owned(),
            every: "5m".to_owned(),
            engine: "http".to_owned(),
            tags: vec!["imported".to_owned()],
            paused: true,
        }
    }

    fn check(text: &str, expected: Result<Vec<(&str, &str)>, &str>) {
        let got = parse_import(text, &defaults())
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| (e.origin, e.monitor.url.to_string()))
                    .collect::<Vec<_>>()
            })
            .map_err(|err| format!("{err:#}"));
        let expected = expected
            .map(|rows| {
                rows.into_iter()
                    .map(|(o, u)| (o.to_owned(), u.to_owned()))
                    .collect::<Vec<_>>()
            })
            .map_err(str::to_owned);
        match (&got, &expected) {
            (Err(got), Err(wanted)) => assert!(got.contains(wanted.as_str()), "{got}"),
            _ => assert_eq!(got, expected),
        }
    }

    #[test]
    fn a_list_skips_comments_and_blank_lines() {
        check(
            "# shops\nhttps://a.example/\n\n  https://b.example/p?q=1#top  \n",
            Ok(vec![
                ("line 2", "https://a.example/"),
                ("line 4", "https://b.example/p?q=1#top"),
            ]),
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        check(
            "https://a.example/\nnot a url\n",
            Err("line 2: \"not a url\""),
        );
    }

    #[test]
    fn list_entries_take_the_defaults() {
        let entries = parse_import("https://a.example/\n", &defaults()).unwrap();
        let monitor = &entries[0].monitor;
        assert_eq!(monitor.workflow, WorkflowKind::SmokeCheck);
        assert_eq!(monitor.schedule.every.as_deref(), Some("5m"));
        assert!(monitor.paused);
        assert!(monitor.tags.contains("imported"));
    }

    #[test]
    fn a_json_array_is_read_as_monitors() {
        check(
            r#"[{"name":"n","workflow":"page_change","url":"https://a.example/","schedule":{"every":"1h"}}]"#,
            Ok(vec![("entry 0", "https://a.example/")]),
        );
        check(
            r#"[{"name":"n","workflow":"page_change","url":"https://a.example/","schedule":{"every":"1h"},"colour":1}]"#,
            Err("entry 0: not a monitor"),
        );
    }
}
