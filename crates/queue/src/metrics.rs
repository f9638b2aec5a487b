//! The queue's Prometheus metrics. The registry is created here and handed
//! to the api, which serves it at `/metrics`; no global registry.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use accord_store::{JobCount, MonitorGauge};
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

/// A monitor, by id and name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MonitorLabels {
    pub monitor_id: String,
    pub monitor: String,
}

/// A monitor's tracked value, by name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MonitorValueLabels {
    pub monitor_id: String,
    pub monitor: String,
    pub name: String,
}

/// A monitor's last run's state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MonitorStateLabels {
    pub monitor_id: String,
    pub monitor: String,
    pub state: String,
}

/// Most monitors the per-monitor gauges cover (the oldest first): with at
/// most `accord_workflows::MAX_LIST_LEN` values each, the series stay
/// bounded however many monitors a deployment has.
pub const MAX_MONITOR_GAUGES: u32 = 500;

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
    /// Each monitor's latest tracked values (of its latest run with an
    /// outcome), refreshed on every scrape.
    pub monitor_value: Family<MonitorValueLabels, Gauge<f64, AtomicU64>>,
    /// When each monitor's newest run finished (or started, while running).
    pub monitor_last_run_time: Family<MonitorLabels, Gauge<f64, AtomicU64>>,
    /// 1 for the state of each monitor's newest run.
    pub monitor_last_run_state: Family<MonitorStateLabels, Gauge>,
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
            monitor_value: Family::default(),
            monitor_last_run_time: Family::default(),
            monitor_last_run_state: Family::default(),
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
            registry.register(
                "monitor_value",
                "A monitor's latest tracked value, by name (at most 500 monitors, oldest first)",
                metrics.monitor_value.clone(),
            );
            registry.register(
                "monitor_last_run_timestamp_seconds",
                "When a monitor's newest run finished, or started while it runs (Unix time)",
                metrics.monitor_last_run_time.clone(),
            );
            registry.register(
                "monitor_last_run_state",
                "1 for the state of a monitor's newest run (running, succeeded, failed, error)",
                metrics.monitor_last_run_state.clone(),
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

    /// Replaces the per-monitor gauges with a fresh reading of the store.
    pub fn set_monitor_gauges(&self, gauges: &[MonitorGauge]) {
        self.monitor_value.clear();
        self.monitor_last_run_time.clear();
        self.monitor_last_run_state.clear();
        for gauge in gauges {
            let monitor_id = gauge.monitor_id.to_string();
            for (name, value) in &gauge.values {
                let labels = MonitorValueLabels {
                    monitor_id: monitor_id.clone(),
                    monitor: gauge.name.clone(),
                    name: name.clone(),
                };
                self.monitor_value.get_or_create(&labels).set(*value);
            }
            if let Some((state, at)) = gauge.last_run {
                let labels = MonitorLabels {
                    monitor_id: monitor_id.clone(),
                    monitor: gauge.name.clone(),
                };
                self.monitor_last_run_time
                    .get_or_create(&labels)
                    .set(at.timestamp_millis() as f64 / 1_000.0);
                let labels = MonitorStateLabels {
                    monitor_id,
                    monitor: gauge.name.clone(),
                    state: state.as_str().to_owned(),
                };
                self.monitor_last_run_state.get_or_create(&labels).set(1);
            }
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
