//! `accord keys` and `accord workspaces`, the key files of `accord up`, and
//! how every client command finds its server and key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use accord_api::auth::{hash_secret, new_token};
use accord_client::AccordClient;
use accord_model::{ApiKey, ApiToken, CreatedApiKey, NewApiKey, RateLimit, Role, WorkspaceId};
use accord_store::{Store, StoredApiKey};
use anyhow::{Context, Result};
use chrono::Utc;

use crate::cli::{ClientArgs, KeysCommand, Output, RoleArg, WorkspacesCommand};
use crate::config::{FileConfig, DEFAULT_SERVER};

pub const ADMIN_KEY_FILE: &str = "admin.key";
pub const WORKER_KEY_FILE: &str = "worker.key";

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Operator => Role::Operator,
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Worker => Role::Worker,
        }
    }
}

/// The client for a command: its server, and its key from `--api-key`,
/// `ACCORD_API_KEY`, the config file or, for a server on this machine,
/// `<data-dir>/admin.key`.
pub fn connect(args: &ClientArgs, file: &FileConfig) -> Result<AccordClient> {
    let server = args
        .server
        .clone()
        .or_else(|| file.client.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let client = AccordClient::new(&server).context("connect to the server")?;
    let key = match args.api_key.clone().or_else(|| file.client.api_key.clone()) {
        Some(key) => Some(key),
        None if is_local(client.base_url().host_str()) => {
            let data_dir = args
                .data_dir
                .clone()
                .or_else(|| file.client.data_dir.clone())
                .or_else(|| file.server.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from("accord-data"));
            read_key_file(&data_dir.join(ADMIN_KEY_FILE)).ok()
        }
        None => None,
    };
    match key {
        Some(key) => Ok(client.with_api_key(&key)?),
        None => Ok(client),
    }
}

fn is_local(host: Option<&str>) -> bool {
    host.is_some_and(|host| {
        host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Reads a key file written by `accord up` or `--save-to`.
pub fn read_key_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read key file {}", path.display()))?;
    let key = text.trim().to_owned();
    key.parse::<ApiToken>()
        .with_context(|| format!("{} does not hold an Accord API key", path.display()))?;
    Ok(key)
}

/// Writes a key readable by its owner only (0600), replacing any old one.
pub fn write_key_file(path: &Path, token: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("write key file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(file, "{token}").with_context(|| format!("write key file {}", path.display()))
}

/// What a new key should be.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub workspace: WorkspaceId,
    pub role: Role,
    pub name: String,
    pub expires_at: Option<chrono::DateTime<Utc>>,
    pub rate_limit: Option<RateLimit>,
}

/// Creates a key directly in the database.
pub async fn create_key_in_store(store: &dyn Store, spec: KeySpec) -> Result<CreatedApiKey> {
    let token = new_token();
    let key = ApiKey {
        id: token.id.clone(),
        workspace_id: spec.workspace,
        name: spec.name,
        role: spec.role,
        rate_limit: spec.rate_limit,
        created_at: Utc::now(),
        expires_at: spec.expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    store
        .api_key_insert(&StoredApiKey {
            key: key.clone(),
            secret_hash: hash_secret(token.secret()),
        })
        .await
        .context("store the new key")?;
    Ok(CreatedApiKey {
        key,
        token: token.reveal(),
    })
}

/// The keys `accord up` runs with.
#[derive(Debug)]
pub struct LocalKeys {
    /// Set on first start: the admin key, to show once.
    pub new_admin: Option<String>,
    pub worker: String,
}

/// On first start (no key at all) makes an admin key and saves it to
/// `<data-dir>/admin.key`; makes (or reuses) the embedded worker's key in
/// `<data-dir>/worker.key`. Both files are 0600.
pub async fn ensure_local_keys(store: &Arc<dyn Store>, data_dir: &Path) -> Result<LocalKeys> {
    crate::server::create_private_dir(data_dir)?;
    let now = Utc::now();
    let new_admin = if store.api_key_count_active(now).await? == 0 {
        let created = create_key_in_store(
            store.as_ref(),
            KeySpec {
                workspace: WorkspaceId::DEFAULT,
                role: Role::Admin,
                name: "admin (made by accord up)".to_owned(),
                expires_at: None,
                rate_limit: None,
            },
        )
        .await?;
        write_key_file(&data_dir.join(ADMIN_KEY_FILE), &created.token)?;
        Some(created.token)
    } else {
        None
    };
    let worker_file = data_dir.join(WORKER_KEY_FILE);
    let existing = match read_key_file(&worker_file) {
        Ok(text) => {
            let token: ApiToken = text.parse()?;
            let stored = store.api_key_get(&token.id).await?;
            stored
                .filter(|stored| stored.key.is_active(now) && stored.key.role == Role::Worker)
                .map(|_| text)
        }
        Err(_) => None,
    };
    let worker = match existing {
        Some(token) => token,
        None => {
            let created = create_key_in_store(
                store.as_ref(),
                KeySpec {
                    workspace: WorkspaceId::DEFAULT,
                    role: Role::Worker,
                    name: "embedded worker (made by accord up)".to_owned(),
                    expires_at: None,
                    rate_limit: None,
                },
            )
            .await?;
            write_key_file(&worker_file, &created.token)?;
            created.token
        }
    };
    Ok(LocalKeys { new_admin, worker })
}

pub async fn run_keys(command: KeysCommand, file: &FileConfig) -> Result<()> {
    match command {
        KeysCommand::Create {
            role,
            name,
            workspace,
            expires_in_days,
            rate_burst,
            rate_per_second,
            save_to,
            offline,
            database_url,
            client,
        } => {
            let rate_limit = match (rate_burst, rate_per_second) {
                (Some(burst), Some(per_second)) => {
                    let limit = RateLimit { burst, per_second };
                    limit.check().map_err(anyhow::Error::msg)?;
                    Some(limit)
                }
                _ => None,
            };
            let expires_at =
                expires_in_days.map(|days| Utc::now() + chrono::Duration::days(i64::from(days)));
            let created = if offline {
                let store = offline_store(database_url, client.data_dir.clone(), file).await?;
                let workspace = match workspace {
                    None => WorkspaceId::DEFAULT,
                    Some(named) => {
                        store
                            .workspace_lookup(&named)
                            .await?
                            .with_context(|| format!("workspace {named:?} not found"))?
                            .id
                    }
                };
                let spec = KeySpec {
                    workspace,
                    role: role.into(),
                    name,
                    expires_at,
                    rate_limit,
                };
                let created = create_key_in_store(store.as_ref(), spec).await;
                store.close().await;
                created?
            } else {
                let api = connect(&client, file)?;
                api.create_key(&NewApiKey {
                    name,
                    role: role.into(),
                    workspace,
                    expires_at,
                    rate_limit,
                })
                .await?
            };
            if let Some(path) = &save_to {
                write_key_file(path, &created.token)?;
            }
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&created)?),
                Output::Text => {
                    out!("{}", created.token);
                    eprintln!(
                        "created {} key {} in workspace {}; the secret above is shown only once{}",
                        created.key.role,
                        created.key.id,
                        created.key.workspace_id,
                        save_to
                            .map(|path| format!(" (also saved to {})", path.display()))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        KeysCommand::List { workspace, client } => {
            let keys = connect(&client, file)?
                .list_keys(workspace.as_deref())
                .await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&keys)?),
                Output::Text => {
                    let now = Utc::now();
                    for key in keys.items {
                        let state = if key.revoked_at.is_some() {
                            "revoked"
                        } else if !key.is_active(now) {
                            "expired"
                        } else {
                            "active"
                        };
                        let used = key
                            .last_used_at
                            .map_or("never".to_owned(), |at| at.to_rfc3339());
                        out!(
                            "{}  {:<8}  {:<7}  last used {used}  {}",
                            key.id,
                            key.role,
                            state,
                            key.name
                        );
                    }
                }
            }
            Ok(())
        }
        KeysCommand::Revoke {
            id,
            workspace,
            client,
        } => {
            let key = connect(&client, file)?
                .revoke_key(&id, workspace.as_deref())
                .await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&key)?),
                Output::Text => out!("revoked {}", key.id),
            }
            Ok(())
        }
    }
}

pub async fn run_workspaces(command: WorkspacesCommand, file: &FileConfig) -> Result<()> {
    match command {
        WorkspacesCommand::Create { name, client } => {
            let workspace = connect(&client, file)?.create_workspace(&name).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&workspace)?),
                Output::Text => out!("{}  {}", workspace.id, workspace.name),
            }
        }
        WorkspacesCommand::List { client } => {
            let list = connect(&client, file)?.list_workspaces().await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&list)?),
                Output::Text => {
                    for workspace in list.items {
                        out!("{}  {}", workspace.id, workspace.name);
                    }
                }
            }
        }
    }
    Ok(())
}

async fn offline_store(
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    file: &FileConfig,
) -> Result<Arc<dyn Store>> {
    // The same defaults as `accord serve`, so the key lands in the database
    // the server will open (creating and migrating it if it is the first).
    let database_url = database_url.or_else(|| file.server.database_url.clone());
    let data_dir = data_dir
        .or_else(|| file.server.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("accord-data"));
    let settings = crate::config::store_settings(database_url, data_dir)?;
    crate::server::open_store(&settings).await
}
