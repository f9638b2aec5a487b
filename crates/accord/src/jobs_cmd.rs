//! `accord jobs ...`: the CLI client of the REST API.

use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

use accord_client::{AccordClient, ListJobs};
use accord_model::{Job, JobId, JobState, NewJob};
use anyhow::{Context, Result};

use crate::cli::{JobsCommand, Output};

use crate::config::FileConfig;
use crate::keys_cmd::connect;

pub(crate) fn parse_id(id: &str) -> Result<JobId> {
    id.parse()
        .with_context(|| format!("{id:?} is not a job id"))
}

pub async fn run(command: JobsCommand, file: &FileConfig) -> Result<()> {
    match command {
        JobsCommand::Submit {
            file: path,
            wait,
            idempotency_key,
            client,
        } => {
            let text = if path.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("read the job from standard input")?;
                text
            } else {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("read {}", path.display()))?
            };
            let job: NewJob = serde_json::from_str(&text)
                .with_context(|| format!("parse the job in {}", path.display()))?;
            let api = connect(&client, file)?;
            let submitted = api.submit_job(&job, idempotency_key.as_deref()).await?;
            if !submitted.created {
                eprintln!(
                    "(idempotent replay: this key was already used; showing the original job)"
                );
            }
            let job = if wait {
                wait_for(&api, submitted.job, client.output).await?
            } else {
                submitted.job
            };
            print_job(&job, client.output)?;
            if wait {
                // Where the run's evidence is, whatever the outcome (on
                // standard error with --output json, which stays clean).
                let line = format!(
                    "artifacts: {}api/v1/jobs/{}/artifacts (accord jobs artifacts {} / accord jobs verify {})",
                    api.base_url(),
                    job.id,
                    job.id,
                    job.id
                );
                match client.output {
                    Output::Text => out!("{line}"),
                    Output::Json => eprintln!("{line}"),
                }
            }
            if wait && job.state != JobState::Succeeded {
                std::process::exit(1);
            }
            Ok(())
        }
        JobsCommand::Get { id, client } => {
            let job = connect(&client, file)?.get_job(parse_id(&id)?).await?;
            print_job(&job, client.output)
        }
        JobsCommand::List {
            state,
            queue,
            label,
            limit,
            client,
        } => {
            let state = state
                .map(|s| s.parse::<JobState>().map_err(anyhow::Error::msg))
                .transpose()?;
            let filter = ListJobs {
                state,
                queue,
                label,
                limit: Some(limit),
                cursor: None,
            };
            let page = connect(&client, file)?.list_jobs(&filter).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&page)?),
                Output::Text => {
                    out!(
                        "{:<36}  {:<9}  {:<8}  {:<12}  {:>7}  CREATED",
                        "ID",
                        "STATE",
                        "PRIORITY",
                        "QUEUE",
                        "ATTEMPT"
                    );
                    for job in &page.items {
                        out!(
                            "{:<36}  {:<9}  {:<8}  {:<12}  {:>7}  {}",
                            job.id,
                            job.state,
                            job.priority,
                            job.queue,
                            job.attempt,
                            job.created_at.format("%Y-%m-%d %H:%M:%S")
                        );
                    }
                    if let Some(cursor) = page.next_cursor {
                        out!("(more: --limit or the API with cursor={cursor})");
                    }
                }
            }
            Ok(())
        }
        JobsCommand::Events { id, client } => {
            let page = connect(&client, file)?
                .job_events(parse_id(&id)?, None)
                .await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&page)?),
                Output::Text => {
                    for event in &page.items {
                        let from = event
                            .from_state
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into());
                        out!(
                            "{}  {:<13}  {:>9} -> {:<9}  attempt {}  {}",
                            event.at.format("%H:%M:%S%.3f"),
                            event.kind.as_str(),
                            from,
                            event.to_state,
                            event.attempt,
                            event.message.as_deref().unwrap_or("")
                        );
                    }
                }
            }
            Ok(())
        }
        JobsCommand::Cancel { id, client } => {
            let job = connect(&client, file)?.cancel_job(parse_id(&id)?).await?;
            print_job(&job, client.output)
        }
        JobsCommand::Retry { id, client } => {
            let job = connect(&client, file)?.retry_job(parse_id(&id)?).await?;
            print_job(&job, client.output)
        }
        command @ (JobsCommand::Artifacts { .. }
        | JobsCommand::Artifact { .. }
        | JobsCommand::Manifest { .. }
        | JobsCommand::Verify { .. }) => crate::artifacts_cmd::run(command, file).await,
    }
}

/// Polls the job until it finishes, printing each state change (on
/// standard error, so `--output json` stays clean on standard output).
async fn wait_for(api: &AccordClient, mut job: Job, output: Output) -> Result<Job> {
    let started = Instant::now();
    let interactive = std::io::stderr().is_terminal() && output == Output::Text;
    let spinner = ['|', '/', '-', '\\'];
    let mut last = None;
    let mut tick = 0usize;
    loop {
        if last != Some((job.state, job.attempt)) {
            if interactive {
                eprint!("\r\x1b[2K");
            }
            eprintln!(
                "[{:>6.1}s] job {} {}{}",
                started.elapsed().as_secs_f64(),
                job.id,
                job.state,
                if job.attempt > 0 {
                    format!(" (attempt {}/{})", job.attempt, job.max_attempts)
                } else {
                    String::new()
                }
            );
            last = Some((job.state, job.attempt));
        }
        if job.state.is_terminal() {
            return Ok(job);
        }
        if interactive {
            eprint!(
                "\r{} waiting… {:.1}s",
                spinner[tick % spinner.len()],
                started.elapsed().as_secs_f64()
            );
            tick += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        job = api.get_job(job.id).await?;
    }
}

fn print_job(job: &Job, output: Output) -> Result<()> {
    match output {
        Output::Json => out!("{}", serde_json::to_string_pretty(job)?),
        Output::Text => {
            out!("id:        {}", job.id);
            out!("state:     {}", job.state);
            out!("queue:     {} (priority {})", job.queue, job.priority);
            out!(
                "attempt:   {} of {} ({} left)",
                job.attempt,
                job.max_attempts,
                job.attempts_left
            );
            out!("created:   {}", job.created_at.to_rfc3339());
            if let Some(finished) = job.finished_at {
                out!("finished:  {}", finished.to_rfc3339());
            }
            if let Some(error) = &job.last_error {
                out!("error:     {}: {}", error.kind.as_str(), error.message);
            }
            if let Some(result) = &job.result {
                out!("result:    {}", serde_json::to_string_pretty(result)?);
            }
        }
    }
    Ok(())
}
