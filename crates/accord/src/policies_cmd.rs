//! `accord policies ...`: the CLI of `/api/v1/policies`. Tables for
//! people, `--output json` for scripts.

use accord_model::{NewPolicy, PolicyId, PolicyPatch, PolicyView};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::cli::{ClientArgs, Output};
use crate::config::FileConfig;
use crate::keys_cmd::connect;

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Create a policy for `example.com`, `*.example.com` or `*` (the
    /// workspace default; `--deny` on `*` denies every host no other
    /// policy allows).
    Create {
        /// `example.com`, `*.example.com` or `*`.
        #[arg(long)]
        pattern: String,
        /// Deny the hosts instead of allowing them.
        #[arg(long)]
        deny: bool,
        /// Do not obey the hosts' robots.txt (obeyed by default).
        #[arg(long)]
        ignore_robots: bool,
        #[command(flatten)]
        rules: RuleArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the workspace's policies, most specific first.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a policy.
    Get {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a policy: what is given replaces what is stored.
    Update {
        id: String,
        #[arg(long)]
        pattern: Option<String>,
        /// `true` to allow the hosts, `false` to deny them.
        #[arg(long)]
        allowed: Option<bool>,
        /// `true` or `false`.
        #[arg(long)]
        obey_robots: Option<bool>,
        #[command(flatten)]
        rules: RuleArgs,
        /// Clear a setting: requests_per_minute, max_concurrent, min_gap_ms,
        /// engines, steps or allow_cidrs (repeatable).
        #[arg(long = "clear")]
        clear: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a policy.
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// The settings `create` and `update` share.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Requests per minute to one host (1 to 60000).
    #[arg(long)]
    requests_per_minute: Option<u32>,
    /// Requests in flight to one host at once (1 to 1000).
    #[arg(long)]
    max_concurrent: Option<u32>,
    /// Least time between two requests to one host, in milliseconds.
    #[arg(long)]
    min_gap_ms: Option<u32>,
    /// The engines allowed, comma-separated: http, browser.
    #[arg(long, value_delimiter = ',')]
    engines: Option<Vec<String>>,
    /// The step kinds allowed, comma-separated (navigate, extract, evaluate, ...).
    #[arg(long, value_delimiter = ',')]
    steps: Option<Vec<String>>,
    /// A non-public network the hosts may resolve to (repeatable).
    #[arg(long = "allow-cidr")]
    allow_cidrs: Vec<String>,
    /// While a host's circuit breaker is open: `wait` (the default, jobs go
    /// back to the queue) or `fail` (jobs fail at once with
    /// `domain_unavailable`).
    #[arg(long)]
    on_open_breaker: Option<String>,
}

fn parse_id(id: &str) -> Result<PolicyId> {
    id.parse()
        .with_context(|| format!("{id:?} is not a policy id"))
}

pub async fn run(command: PoliciesCommand, file: &FileConfig) -> Result<()> {
    match command {
        PoliciesCommand::Create {
            pattern,
            deny,
            ignore_robots,
            rules,
            client,
        } => {
            let api = connect(&client, file)?;
            let policy = api
                .create_policy(&NewPolicy {
                    pattern,
                    allowed: Some(!deny),
                    requests_per_minute: rules.requests_per_minute,
                    max_concurrent: rules.max_concurrent,
                    min_gap_ms: rules.min_gap_ms,
                    engines: rules.engines,
                    steps: rules.steps,
                    obey_robots: ignore_robots.then_some(false),
                    allow_cidrs: rules.allow_cidrs,
                    on_open_breaker: rules.on_open_breaker,
                })
                .await?;
            show(&client, &policy)
        }
        PoliciesCommand::List { client } => {
            let api = connect(&client, file)?;
            let policies = api.list_policies().await?.items;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&policies)?),
                Output::Text => {
                    out!(
                        "{:<36}  {:<30}  {:<7}  {:<6}  {:<8}  ENGINES",
                        "ID",
                        "PATTERN",
                        "ALLOWED",
                        "ROBOTS",
                        "RPM"
                    );
                    for p in &policies {
                        out!(
                            "{:<36}  {:<30}  {:<7}  {:<6}  {:<8}  {}",
                            p.id,
                            p.pattern,
                            if p.allowed { "yes" } else { "no" },
                            if p.obey_robots { "obey" } else { "ignore" },
                            p.requests_per_minute
                                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                            engines(p)
                        );
                    }
                }
            }
            Ok(())
        }
        PoliciesCommand::Get { id, client } => {
            let api = connect(&client, file)?;
            let policy = api.get_policy(parse_id(&id)?).await?;
            show(&client, &policy)
        }
        PoliciesCommand::Update {
            id,
            pattern,
            allowed,
            obey_robots,
            rules,
            clear,
            client,
        } => {
            let mut patch = PolicyPatch {
                pattern,
                allowed,
                requests_per_minute: rules.requests_per_minute.map(Some),
                max_concurrent: rules.max_concurrent.map(Some),
                min_gap_ms: rules.min_gap_ms.map(Some),
                engines: rules.engines.map(Some),
                steps: rules.steps.map(Some),
                obey_robots,
                allow_cidrs: (!rules.allow_cidrs.is_empty()).then_some(rules.allow_cidrs),
                on_open_breaker: rules.on_open_breaker,
            };
            for name in &clear {
                match name.as_str() {
                    "requests_per_minute" => patch.requests_per_minute = Some(None),
                    "max_concurrent" => patch.max_concurrent = Some(None),
                    "min_gap_ms" => patch.min_gap_ms = Some(None),
                    "engines" => patch.engines = Some(None),
                    "steps" => patch.steps = Some(None),
                    "allow_cidrs" => patch.allow_cidrs = Some(Vec::new()),
                    other => bail!(
                        "--clear {other:?}: use requests_per_minute, max_concurrent, min_gap_ms, engines, steps or allow_cidrs"
                    ),
                }
            }
            let api = connect(&client, file)?;
            let policy = api.update_policy(parse_id(&id)?, &patch).await?;
            show(&client, &policy)
        }
        PoliciesCommand::Delete { id, client } => {
            let api = connect(&client, file)?;
            let id = parse_id(&id)?;
            api.delete_policy(id).await?;
            match client.output {
                Output::Json => out!("{}", json!({"deleted": id})),
                Output::Text => out!("deleted policy {id}"),
            }
            Ok(())
        }
    }
}

fn engines(policy: &PolicyView) -> String {
    match &policy.engines {
        None => "any".to_owned(),
        Some(list) => list
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn show(client: &ClientArgs, policy: &PolicyView) -> Result<()> {
    match client.output {
        Output::Json => out!("{}", serde_json::to_string_pretty(policy)?),
        Output::Text => {
            let number = |n: Option<u32>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
            out!("id:                  {}", policy.id);
            out!("pattern:             {}", policy.pattern);
            out!("allowed:             {}", policy.allowed);
            out!(
                "requests per minute: {}",
                number(policy.requests_per_minute)
            );
            out!("max concurrent:      {}", number(policy.max_concurrent));
            out!("min gap (ms):        {}", number(policy.min_gap_ms));
            out!("engines:             {}", engines(policy));
            let steps = policy.steps.as_ref().map_or_else(
                || "any".to_owned(),
                |list| {
                    list.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                },
            );
            out!("steps:               {steps}");
            out!("obey robots.txt:     {}", policy.obey_robots);
            out!("allow CIDRs:         {}", policy.allow_cidrs.join(", "));
        }
    }
    Ok(())
}
