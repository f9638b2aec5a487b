//! `accord up --demo`: the demo site on its own loopback address, opened
//! to jobs alone, and the monitors created against it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use accord_client::AccordClient;
use accord_demo::DemoSite;
use accord_model::{Role, WorkspaceId};
use accord_store::Store;
use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::keys_cmd::{create_key_in_store, KeySpec};

/// The demo site's own loopback address. Every 127/8 address reaches this
/// machine on Linux, and nothing else listens on this one, so allowing it
/// opens the demo site and nothing else (not Accord's API, nor a database).
const DEMO_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 1);

/// How often the demo site's pages move on.
const TICK: Duration = accord_demo::DEFAULT_TICK;

/// Starts the demo site, moving on every [`TICK`]; answers it and the one
/// address jobs must be allowed to reach.
pub async fn start_site() -> Result<(DemoSite, IpAddr)> {
    let listener = match TcpListener::bind((DEMO_ADDRESS, 0)).await {
        Ok(listener) => listener,
        // Systems that route only 127.0.0.1 to loopback.
        Err(err) => {
            tracing::warn!(error = %err, "cannot bind the demo site to {DEMO_ADDRESS}; using 127.0.0.1, which then opens every loopback service to jobs");
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .context("bind a loopback port for the demo site")?
        }
    };
    let ip = listener.local_addr()?.ip();
    let mut site = DemoSite::serve(listener).context("serve the demo site")?;
    site.start_timer(TICK);
    Ok((site, ip))
}

/// A key to create the demo monitors with: operator, valid ten minutes.
pub async fn key(store: &Arc<dyn Store>) -> Result<String> {
    let spec = KeySpec {
        workspace: WorkspaceId::DEFAULT,
        role: Role::Operator,
        name: "accord up --demo (creates the demo monitors)".to_owned(),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::minutes(10)),
        rate_limit: None,
    };
    Ok(create_key_in_store(store.as_ref(), spec).await?.token)
}

/// Creates the demo monitors against `site` (again on every start: a
/// second `accord up --demo` on the same data directory replaces the ones
/// tagged `demo`, since the site's port changed) and prints where to look.
pub async fn create_monitors(client: &AccordClient, site: &DemoSite, api_url: &str) -> Result<()> {
    // The previous demo's monitors point at a port that is gone.
    loop {
        let page = client
            .list_monitors(Some(accord_demo::DEMO_TAG), None, Some(500))
            .await
            .context("list the previous demo's monitors")?;
        if page.items.is_empty() {
            break;
        }
        for monitor in page.items {
            client
                .delete_monitor(monitor.id)
                .await
                .context("delete a previous demo monitor")?;
        }
    }
    println!();
    println!(
        "Demo site: {} (its pages move on every {} s)",
        site.base_url(),
        TICK.as_secs()
    );
    println!(
        "Demo monitors, each checking every {}:",
        accord_demo::DEMO_SCHEDULE
    );
    for demo in accord_demo::monitors(&site.base_url()) {
        let new = demo.to_new_monitor().context("a demo monitor's URL")?;
        let created = client
            .create_monitor(&new)
            .await
            .with_context(|| format!("create the demo monitor {:?}", demo.name))?;
        println!("  {}  {:<24} {}", created.id, demo.name, demo.shows);
    }
    println!(
        "Look at them (runs show changes, new items, conditions met, failures and recoveries):"
    );
    println!("  accord monitors list --tag demo --server {api_url}");
    println!("  accord monitors runs ID --server {api_url}");
    println!("  accord monitors series ID --server {api_url}");
    Ok(())
}
