//! `accord targets ...`: the CLI of the notification routes. Tables for
//! people, `--output json` for scripts. A webhook's secret is printed once,
//! at creation (and at rotation).

use accord_model::{DeliveryView, NewTarget, TargetId, TargetKind, TargetView};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use crate::cli::{ClientArgs, Output};
use crate::config::FileConfig;
use crate::keys_cmd::connect;

#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Create a target: `--kind webhook --url https://...` (or slack,
    /// discord). A webhook's signing secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// webhook, slack, discord or email.
        #[arg(long, default_value = "webhook")]
        kind: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the workspace's targets.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a target.
    Get {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a target with its messages.
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send the target a sample message.
    Test {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A webhook's new signing secret (the old one still signs for a day,
    /// or --grace-seconds).
    RotateSecret {
        id: String,
        #[arg(long)]
        grace_seconds: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The messages to a target with their attempts, newest first.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn parse_id(id: &str) -> Result<TargetId> {
    id.parse()
        .with_context(|| format!("{id:?} is not a target id"))
}

pub async fn run(command: TargetsCommand, file: &FileConfig) -> Result<()> {
    match command {
        TargetsCommand::Create {
            name,
            kind,
            url,
            email,
            client,
        } => {
            let kind = TargetKind::parse(&kind).with_context(|| {
                format!("unknown kind {kind:?}: the kinds are webhook, slack, discord and email")
            })?;
            let api = connect(&client, file)?;
            let created = api
                .create_target(&NewTarget {
                    name,
                    kind,
                    url,
                    email,
                })
                .await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&created)?),
                Output::Text => {
                    print_target(&created.target);
                    if let Some(secret) = &created.secret {
                        out!("secret:   {secret}  (shown once: keep it to verify signatures)");
                    }
                }
            }
            Ok(())
        }
        TargetsCommand::List { client } => {
            let api = connect(&client, file)?;
            let targets = api.list_targets().await?.items;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&targets)?),
                Output::Text => {
                    out!(
                        "{:<36}  {:<8}  {:<6}  {:<20}  ADDRESS",
                        "ID",
                        "KIND",
                        "PAUSED",
                        "NAME"
                    );
                    for t in &targets {
                        out!(
                            "{:<36}  {:<8}  {:<6}  {:<20}  {}",
                            t.id,
                            t.kind.as_str(),
                            if t.paused { "yes" } else { "no" },
                            t.name,
                            address(t)
                        );
                    }
                }
            }
            Ok(())
        }
        TargetsCommand::Get { id, client } => {
            let api = connect(&client, file)?;
            let target = api.get_target(parse_id(&id)?).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&target)?),
                Output::Text => print_target(&target),
            }
            Ok(())
        }
        TargetsCommand::Delete { id, client } => {
            let api = connect(&client, file)?;
            let id = parse_id(&id)?;
            api.delete_target(id).await?;
            match client.output {
                Output::Json => out!("{}", json!({"deleted": id})),
                Output::Text => out!("deleted target {id}"),
            }
            Ok(())
        }
        TargetsCommand::Test { id, client } => {
            let api = connect(&client, file)?;
            let delivery = api.test_target(parse_id(&id)?).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&delivery)?),
                Output::Text => out!(
                    "queued test message {} ({}); see `accord targets deliveries {id}`",
                    delivery.id,
                    delivery.webhook_id
                ),
            }
            Ok(())
        }
        TargetsCommand::RotateSecret {
            id,
            grace_seconds,
            client,
        } => {
            let api = connect(&client, file)?;
            let rotated = api
                .rotate_target_secret(parse_id(&id)?, grace_seconds)
                .await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&rotated)?),
                Output::Text => {
                    if let Some(secret) = &rotated.secret {
                        out!("secret:   {secret}  (shown once)");
                    }
                    if let Some(until) = rotated.target.previous_secret_valid_until {
                        out!("the old secret still signs until {}", until.to_rfc3339());
                    }
                }
            }
            Ok(())
        }
        TargetsCommand::Deliveries { id, limit, client } => {
            let api = connect(&client, file)?;
            let page = api
                .target_deliveries(parse_id(&id)?, Some(limit.clamp(1, 200)))
                .await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&page.items)?),
                Output::Text => {
                    for delivery in &page.items {
                        print_delivery(delivery);
                    }
                }
            }
            Ok(())
        }
    }
}

fn address(target: &TargetView) -> &str {
    target
        .url
        .as_deref()
        .or(target.email.as_deref())
        .unwrap_or("")
}

fn print_target(target: &TargetView) {
    out!("id:       {}", target.id);
    out!("name:     {}", target.name);
    out!("kind:     {}", target.kind.as_str());
    out!("address:  {}", address(target));
    match &target.paused_reason {
        Some(reason) if target.paused => out!("paused:   yes ({reason})"),
        _ => out!("paused:   {}", if target.paused { "yes" } else { "no" }),
    }
}

fn print_delivery(delivery: &DeliveryView) {
    let events: Vec<&str> = delivery.events.iter().map(|e| e.as_str()).collect();
    out!(
        "{}  {:<9}  {}  {}",
        delivery.id,
        delivery.state.as_str(),
        delivery.created_at.format("%Y-%m-%d %H:%M:%S"),
        if delivery.test {
            "test".to_owned()
        } else {
            events.join(",")
        }
    );
    for attempt in &delivery.attempts {
        let status = attempt
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".to_owned());
        out!(
            "    #{:<3} {}  status {:<4} {:>6} ms  {}",
            attempt.attempt,
            attempt.at.format("%H:%M:%S"),
            status,
            attempt.latency_ms,
            attempt.error.as_deref().unwrap_or("delivered")
        );
    }
}
