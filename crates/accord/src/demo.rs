//! `accord up --demo`: the demo site on its own loopback address, opened
//! to jobs alone, and the monitors created against it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use accord_demo::DemoSite;
use anyhow::{Context, Result};
use tokio::net::TcpListener;

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
