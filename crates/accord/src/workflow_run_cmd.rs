//! `accord workflows run NAME --input FILE.json [--url URL] [--wait]`: a
//! workflow run once through `POST /api/v1/workflows/{name}/run`, then
//! (with `--wait`) read back until its outcome is there. A table for
//! people, `--output json` (the run as the API gives it) for scripts.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use accord_model::{parse_interval, Engine, NewWorkflowRun, RunState, TargetUrl, WorkflowRunView};
use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cli::{ClientArgs, Output};
use crate::config::FileConfig;
use crate::keys_cmd::connect;
use crate::monitors_cmd::item_text;

/// How often `--wait` reads the run again.
const POLL: Duration = Duration::from_millis(250);

/// What the command line says to run.
#[derive(Debug, Clone)]
pub struct RunArgs<'a> {
    pub name: &'a str,
    pub input: &'a Path,
    pub url: Option<&'a str>,
    pub engine: Option<&'a str>,
    pub wait: bool,
    pub timeout: &'a str,
}

/// The request from the input file and the flags: the file is the
/// workflow's input, or a whole request when it has an `input` member.
pub fn request(file: Value, url: Option<&str>, engine: Option<&str>) -> Result<NewWorkflowRun> {
    let whole = file.as_object().is_some_and(|o| o.contains_key("input"));
    let mut body = if whole {
        file
    } else {
        serde_json::json!({ "input": file })
    };
    if let Some(url) = url {
        body["url"] = Value::String(url.to_owned());
    }
    if let Some(engine) = engine {
        body["engine"] = Value::String(engine.to_owned());
    }
    if body.get("url").is_none() {
        bail!("give the page with --url (or `url` in the file)");
    }
    if let Some(url) = body.get("url").and_then(Value::as_str) {
        TargetUrl::parse(url).with_context(|| format!("url {url:?}"))?;
    }
    if let Some(engine) = body.get("engine") {
        serde_json::from_value::<Engine>(engine.clone())
            .with_context(|| format!("engine {engine}: http, browser or auto"))?;
    }
    serde_json::from_value(body).context("read the run request")
}

pub async fn run(args: RunArgs<'_>, client: &ClientArgs, file: &FileConfig) -> Result<()> {
    let text = if args.input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("read the input from standard input")?;
        text
    } else {
        std::fs::read_to_string(args.input)
            .with_context(|| format!("read {}", args.input.display()))?
    };
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("parse the JSON in {}", args.input.display()))?;
    let body = request(json, args.url, args.engine)?;
    let timeout = Duration::from_secs(
        parse_interval(args.timeout).map_err(|err| anyhow::anyhow!("--timeout: {err}"))?,
    );
    let api = connect(client, file)?;
    let mut run = api.run_workflow(args.name, &body).await?;
    if args.wait {
        let started = Instant::now();
        while run.state == RunState::Running {
            if started.elapsed() > timeout {
                bail!(
                    "run {} has not finished after {}; read it later with GET {}",
                    run.id,
                    args.timeout,
                    run.url_self
                );
            }
            tokio::time::sleep(POLL).await;
            run = api.workflow_run(run.id).await?;
        }
    }
    match client.output {
        Output::Json => out!("{}", serde_json::to_string_pretty(&run)?),
        Output::Text => print_run(&run),
    }
    if args.wait && run.state != RunState::Succeeded {
        bail!("the run ended {}", run.state.as_str());
    }
    Ok(())
}

fn print_run(run: &WorkflowRunView) {
    out!("run:       {}", run.id);
    out!("workflow:  {}", run.workflow.as_str());
    out!("url:       {}", run.url);
    out!("state:     {}", run.state.as_str());
    if let Some(error) = &run.error {
        out!("error:     {error}");
    }
    let Some(outcome) = &run.outcome else {
        if run.state == RunState::Running {
            out!("(still running: read it with GET {})", run.url_self);
        }
        return;
    };
    let detail = &outcome["detail"];
    let snapshot = run.snapshot.as_ref().unwrap_or(&Value::Null);
    match run.workflow {
        accord_model::WorkflowKind::PageChange => {
            out!("lines:     {}", detail["lines"]);
            if let Some(text) = snapshot["text"].as_str() {
                out!("text:");
                for line in text.lines() {
                    out!("  {line}");
                }
            }
            for value in detail["values"].as_array().into_iter().flatten() {
                out!(
                    "value:     {} = {}{}",
                    value["name"].as_str().unwrap_or("?"),
                    value["value"],
                    if value["condition_met"] == true {
                        " (condition met)"
                    } else {
                        ""
                    }
                );
            }
        }
        accord_model::WorkflowKind::ExtractItems => {
            out!("items:     {}", detail["total"]);
            for item in snapshot["items"].as_array().into_iter().flatten() {
                out!("  {}", item_text(item));
            }
        }
        accord_model::WorkflowKind::SmokeCheck => {
            out!(
                "verdict:   {}",
                if detail["passed"] == true {
                    "passed"
                } else {
                    "FAILED"
                }
            );
            out!("{:<16}  {:<7}  MESSAGE", "CHECK", "STATUS");
            for check in detail["checks"].as_array().into_iter().flatten() {
                out!(
                    "{:<16}  {:<7}  {}",
                    check["check"].as_str().unwrap_or("?"),
                    check["status"].as_str().unwrap_or("?"),
                    check["message"].as_str().unwrap_or("")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(file: Value, url: Option<&str>, expected: Result<Value, &str>) {
        let got = request(file, url, None)
            .map(|run| serde_json::to_value(run).unwrap())
            .map_err(|err| format!("{err:#}"));
        match (&got, &expected) {
            (Err(got), Err(wanted)) => assert!(got.contains(wanted), "{got}"),
            _ => assert_eq!(got, expected.map_err(str::to_owned)),
        }
    }

    #[test]
    fn the_file_is_the_input_and_the_flag_the_page() {
        check(
            json!({"selectors": ["main"]}),
            Some("https://a.example/"),
            Ok(
                json!({"url": "https://a.example/", "engine": "http", "input": {"selectors": ["main"]}}),
            ),
        );
    }

    #[test]
    fn a_whole_request_may_carry_its_page() {
        check(
            json!({"url": "https://a.example/", "input": {}}),
            None,
            Ok(json!({"url": "https://a.example/", "engine": "http", "input": {}})),
        );
    }

    #[test]
    fn a_run_without_a_page_is_refused() {
        check(json!({}), None, Err("--url"));
    }
}
