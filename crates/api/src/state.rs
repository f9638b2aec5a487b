//! What every handler can reach.

use std::time::Instant;

use accord_queue::Queue;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest `Idempotency-Key` accepted.
    pub max_idempotency_key_len: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_idempotency_key_len: 255,
        }
    }
}

/// Handles shared by the handlers: the queue, the config, and the shutdown
/// signal that ends waiting claims early.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub queue: Queue,
    pub config: ApiConfig,
    pub shutdown: CancellationToken,
    pub started: Instant,
}

impl ApiState {
    pub fn new(queue: Queue, config: ApiConfig, shutdown: CancellationToken) -> Self {
        Self {
            queue,
            config,
            shutdown,
            started: Instant::now(),
        }
    }
}
