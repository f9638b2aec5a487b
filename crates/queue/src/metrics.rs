//! The queue's Prometheus metrics. The registry is created here and handed
//! to the api, which serves it at `/metrics`; no global registry.

use std::sync::Mutex;

use accord_store::JobCount;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub queue: String,
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngineLabels {
    pub queue: String,
    pub engine: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub engine: String,
    pub outcome: String,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        300.0,
    ]
    .into_iter()
}

/// Counters and histograms the queue updates as jobs move.
#[derive(Debug)]
pub struct QueueMetrics {
    pub registry: Mutex<Registry>,
    pub enqueued: Family<QueueLabels, Counter>,
    pub claimed: Family<QueueLabels, Counter>,
    pub succeeded: Family<EngineLabels, Counter>,
    pub failed: Family<EngineLabels, Counter>,
    pub dead: Family<QueueLabels, Counter>,
    pub lease_expired: Family<QueueLabels, Counter>,
    pub claim_latency: Family<QueueLabels, Histogram>,
    pub execution: Family<OutcomeLabels, Histogram>,
    pub jobs: Family<StateLabels, Gauge>,
    pub workers: Gauge,
    /// Monitor runs started (by the scheduler or by hand).
    pub monitor_runs_started: Counter,
    /// Monitor runs whose job completed with an outcome recorded.
    pub monitor_runs_finished: Counter,
    /// How late the scheduler started runs, after their slot.
    pub monitor_lateness: Histogram,
}

impl Default for QueueMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl QueueMetrics {
    pub fn new() -> Self {
        let metrics = Self {
            registry: Mutex::new(Registry::with_prefix("accord")),
            enqueued: Family::default(),
            claimed: Family::default(),
            succeeded: Family::default(),
            failed: Family::default(),
            dead: Family::default(),
            lease_expired: Family::default(),
            claim_latency: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            execution: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            jobs: Family::default(),
            workers: Gauge::default(),
            monitor_runs_started: Counter::default(),
            monitor_runs_finished: Counter::default(),
            monitor_lateness: Histogram::new(latency_buckets()),
        };
        {
            let mut registry = metrics.registry.lock().expect("metrics registry lock");
            registry.register(
                "jobs_enqueued",
                "Jobs accepted into the queue",
                metrics.enqueued.clone(),
            );
            registry.register(
                "jobs_claimed",
                "Attempts started (jobs leased to a worker)",
                metrics.claimed.clone(),
            );
            registry.register(
                "jobs_succeeded",
                "Attempts that succeeded",
                metrics.succeeded.clone(),
            );
            registry.register(
                "jobs_failed",
                "Attempts that failed (retried or not)",
                metrics.failed.clone(),
            );
            registry.register("jobs_dead", "Jobs dead-lettered", metrics.dead.clone());
            registry.register(
                "lease_expiries",
                "Leases that expired and were reaped",
                metrics.lease_expired.clone(),
            );
            registry.register(
                "job_claim_latency_seconds",
                "Time from a job becoming due to a worker claiming it",
                metrics.claim_latency.clone(),
            );
            registry.register(
                "job_execution_duration_seconds",
                "Time from claim to the worker's report, by engine and outcome",
                metrics.execution.clone(),
            );
            registry.register(
                "jobs",
                "Jobs in the store by queue and state",
                metrics.jobs.clone(),
            );
            registry.register(
                "workers",
                "Workers seen in the last two lease lengths",
                metrics.workers.clone(),
            );
            registry.register(
                "monitor_runs_started",
                "Monitor runs started, scheduled or by hand",
                metrics.monitor_runs_started.clone(),
            );
            registry.register(
                "monitor_runs_finished",
                "Monitor runs whose job completed and whose outcome was recorded",
                metrics.monitor_runs_finished.clone(),
            );
            registry.register(
                "monitor_schedule_lateness_seconds",
                "Time from a scheduled run's slot to its start",
                metrics.monitor_lateness.clone(),
            );
        }
        metrics
    }

    /// Replaces the job-count gauges with a fresh reading of the store.
    pub fn set_job_counts(&self, counts: &[JobCount]) {
        self.jobs.clear();
        for count in counts {
            let labels = StateLabels {
                queue: count.queue.to_string(),
                state: count.state.to_string(),
            };
            self.jobs.get_or_create(&labels).inc_by(count.count as i64);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry lock");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}
