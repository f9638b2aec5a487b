//! `accord feeds ...`: feed tokens for Atom feed readers. The token (and
//! the feed URLs holding it) is printed once, at creation; the token works
//! as long as the key that made it.

use accord_model::FeedTokenId;
use anyhow::{Context, Result};
use clap::Subcommand;

use crate::cli::{ClientArgs, Output};
use crate::config::FileConfig;
use crate::keys_cmd::connect;

#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Make a feed token bound to this key; prints the workspace's feed URL
    /// and the pattern of a monitor's, once.
    CreateToken {
        /// What the token is for (the feed reader that holds it).
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the workspace's feed tokens (never the tokens themselves).
    ListTokens {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a feed token: its feeds answer 404 from now on.
    DeleteToken {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub async fn run(command: FeedsCommand, file: &FileConfig) -> Result<()> {
    match command {
        FeedsCommand::CreateToken { name, client } => {
            let api = connect(&client, file)?;
            let created = api.create_feed_token(&name).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&created)?),
                Output::Text => {
                    let base = api.base_url();
                    let full = |path: &str| {
                        base.join(path.trim_start_matches('/'))
                            .map_or_else(|_| path.to_owned(), |url| url.to_string())
                    };
                    out!("id:             {}", created.view.id);
                    out!("token:          {}  (shown once)", created.token);
                    out!("workspace feed: {}", full(&created.workspace_feed));
                    out!(
                        "monitor feed:   {}",
                        full(&created.monitor_feed).replace("%7Bmonitor_id%7D", "{monitor_id}")
                    );
                }
            }
            Ok(())
        }
        FeedsCommand::ListTokens { client } => {
            let api = connect(&client, file)?;
            let tokens = api.list_feed_tokens().await?.items;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&tokens)?),
                Output::Text => {
                    out!("{:<36}  {:<16}  {:<20}  NAME", "ID", "KEY", "CREATED");
                    for token in tokens {
                        out!(
                            "{:<36}  {:<16}  {:<20}  {}",
                            token.id,
                            token.key_id.as_str(),
                            token.created_at.format("%Y-%m-%d %H:%M:%S"),
                            token.name
                        );
                    }
                }
            }
            Ok(())
        }
        FeedsCommand::DeleteToken { id, client } => {
            let id: FeedTokenId = id
                .parse()
                .with_context(|| format!("{id:?} is not a feed token id"))?;
            connect(&client, file)?.delete_feed_token(id).await?;
            out!("deleted feed token {id}");
            Ok(())
        }
    }
}
