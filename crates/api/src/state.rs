//! What every handler can reach.

use std::sync::Arc;
use std::time::Instant;

use accord_cluster::Cluster;
use accord_queue::Queue;
use accord_store::Store;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditRecorder;
use crate::auth::{RoleLimits, RouteTable};

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest request URI (path and query) accepted, in bytes.
    pub max_uri_bytes: usize,
    /// Longest time a client may take to send a request body.
    pub body_read_timeout: std::time::Duration,
    /// Deepest nesting of arrays and objects accepted in a JSON body.
    pub max_json_depth: usize,
    /// Longest `Idempotency-Key` accepted.
    pub max_idempotency_key_len: usize,
    /// Default rate limits per role, and for failed authentications.
    pub rate_limits: RoleLimits,
    /// Origins allowed to call the API from a browser (CORS); empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// How often a live event stream re-reads the event log when no notice
    /// of a change arrives (the backstop for lost notices).
    pub event_poll_interval: std::time::Duration,
    /// What every domain may receive from the workers (rate, concurrency
    /// cap, least gap, breaker), enforced through the worker protocol.
    pub domain_limits: accord_egress::DomainLimits,
    /// This control plane's URL as outsiders reach it (ends in `/`), for
    /// the links in Atom feeds; without it feeds carry no links.
    pub public_url: Option<url::Url>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_uri_bytes: 8 * 1024,
            body_read_timeout: std::time::Duration::from_secs(30),
            max_json_depth: 64,
            max_idempotency_key_len: 255,
            rate_limits: RoleLimits::default(),
            cors_origins: Vec::new(),
            event_poll_interval: crate::routes::DEFAULT_EVENT_POLL,
            domain_limits: accord_egress::DomainLimits::default(),
            public_url: None,
        }
    }
}

/// Handles shared by the handlers: the queue (the job lifecycle), the
/// store (for what is not a job: workspaces, keys, the audit log, health),
/// shared cluster state (rate limits, event fan-out), the audit recorder,
/// the config, and the shutdown signal that ends waiting claims early.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub queue: Queue,
    pub store: Arc<dyn Store>,
    pub cluster: Cluster,
    pub audit: AuditRecorder,
    pub config: Arc<ApiConfig>,
    pub shutdown: CancellationToken,
    pub started: Instant,
    pub(crate) routes: Arc<RouteTable>,
}

impl ApiState {
    pub fn new(
        queue: Queue,
        store: Arc<dyn Store>,
        cluster: Cluster,
        audit: AuditRecorder,
        config: ApiConfig,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            queue,
            store,
            cluster,
            audit,
            config: Arc::new(config),
            shutdown,
            started: Instant::now(),
            routes: Arc::new(RouteTable::from_openapi(&crate::openapi())),
        }
    }
}
