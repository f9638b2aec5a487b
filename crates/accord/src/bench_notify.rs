//! `accord bench notifications`: the delivery loop of one control plane
//! against a fast receiver on loopback (an axum server that answers 204
//! and notes when each `webhook-id` arrived), through the real outbox,
//! store, sender, egress guard and Standard Webhooks signing. Prints
//! figures; asserts nothing.
//!
//! Messages are written to the outbox the way a run's completion writes
//! them (one row each, due at once), straight through the store, so what
//! is measured is the outbox and the loop, not the API. Two phases:
//! a burst (every message queued behind a paused target, which is then
//! resumed: deliveries per second while the backlog drains) and a paced
//! load (messages queued at a steady rate: time from queuing, which is
//! when a run's completion would have written them, to arrival at the
//! receiver, p50/p99/max).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord_egress::AllowList;
use accord_model::{
    EgressPolicy, MessageId, MonitorId, NewTarget, Notice, NoticeMonitor, TargetId, TargetKind,
    WorkflowKind, WorkspaceId,
};
use accord_notify::DeliveryConfig;
use accord_queue::QueueConfig;
use accord_store::{NewMessage, Store};
use anyhow::{bail, Context, Result};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};

use crate::cli::BenchNotificationsArgs;
use crate::config::StoreSettings;
use crate::notify_config::NotifySettings;

/// When each `webhook-id` first arrived, and how many requests came in all.
#[derive(Debug, Default)]
struct Arrivals {
    first: HashMap<String, DateTime<Utc>>,
    requests: u64,
}

async fn receive(
    axum::extract::State(arrivals): axum::extract::State<Arc<Mutex<Arrivals>>>,
    headers: HeaderMap,
) -> StatusCode {
    let now = Utc::now();
    let id = headers
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
    arrivals.requests += 1;
    arrivals.first.entry(id).or_insert(now);
    StatusCode::NO_CONTENT
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A message as a run's completion writes it, due at `now`.
fn message(target: TargetId, monitor: MonitorId, now: DateTime<Utc>) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        workspace_id: WorkspaceId::DEFAULT,
        target_id: target,
        notice: Notice {
            version: 1,
            monitor: NoticeMonitor {
                id: monitor,
                name: "bench".to_owned(),
                workflow: WorkflowKind::PageChange,
                url: "https://bench.invalid/".to_owned(),
            },
            run: None,
            outcome: None,
            test: true,
        },
        now,
    }
}

/// Queues `count` messages from `writers` tasks; returns when each was
/// queued, by webhook id.
async fn enqueue(
    store: &Arc<dyn Store>,
    target: TargetId,
    count: usize,
    writers: usize,
) -> Result<HashMap<String, DateTime<Utc>>> {
    let monitor = MonitorId::new();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..writers {
        let store = store.clone();
        let share = count / writers + usize::from(n < count % writers);
        tasks.spawn(async move {
            let mut queued = Vec::with_capacity(share);
            for _ in 0..share {
                let new = message(target, monitor, Utc::now());
                store.notification_enqueue(&new).await?;
                queued.push((new.id.webhook_id(), new.now));
            }
            Ok::<_, anyhow::Error>(queued)
        });
    }
    let mut all = HashMap::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}

/// Waits until every id of `queued` arrived (bounded by `limit`).
async fn wait_for(
    arrivals: &Arc<Mutex<Arrivals>>,
    queued: &HashMap<String, DateTime<Utc>>,
    limit: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let missing = {
            let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            queued
                .keys()
                .filter(|id| !arrivals.first.contains_key(*id))
                .count()
        };
        if missing == 0 {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "{missing} of {} messages did not arrive within {limit:?}",
                queued.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latencies (arrival minus queuing) of `queued`, in ms, sorted.
fn latencies(arrivals: &Arc<Mutex<Arrivals>>, queued: &HashMap<String, DateTime<Utc>>) -> Vec<f64> {
    let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
    let mut ms: Vec<f64> = queued
        .iter()
        .filter_map(|(id, at)| arrivals.first.get(id).map(|arrived| *arrived - *at))
        .map(|d| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

pub async fn notifications(args: BenchNotificationsArgs) -> Result<()> {
    let temp = tempfile::tempdir().context("create a temporary directory")?;
    let arrivals: Arc<Mutex<Arrivals>> = Arc::default();
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind the receiver")?;
    let receiver = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let store = match &args.database_url {
        Some(url) => StoreSettings::Postgres(accord_store::PostgresConfig::new(url.clone())),
        None => StoreSettings::Sqlite {
            data_dir: temp.path().to_owned(),
            config: accord_store::SqliteConfig::new(temp.path().join("bench.db")),
        },
    };
    let described = match &store {
        StoreSettings::Sqlite { .. } => "sqlite".to_owned(),
        StoreSettings::Postgres(config) => format!("postgres ({})", config.redacted_url()),
    };
    let allow = AllowList::parse(["127.0.0.1"]).context("the receiver's address")?;
    let queue = QueueConfig {
        retention: None,
        allow_targets: allow.clone(),
        ..QueueConfig::default()
    };
    let mut notify = NotifySettings {
        delivery: DeliveryConfig {
            batch: args.batch,
            idle_poll: Duration::from_millis(args.poll_ms.max(1)),
            ..DeliveryConfig::default()
        },
        ..NotifySettings::default()
    };
    notify.sender.egress = EgressPolicy::PublicOnly;
    notify.sender.allow_targets = allow;
    let (control, client, _worker) = crate::bench::start_control_with(
        temp.path(),
        store,
        queue,
        notify,
        "accord bench notifications",
    )
    .await?;
    let target = client
        .create_target(&NewTarget {
            name: "bench receiver".to_owned(),
            kind: TargetKind::Webhook,
            url: Some(format!("http://{receiver}/hook")),
            email: None,
        })
        .await
        .context("create the webhook target")?
        .target
        .id;
    println!(
        "accord bench notifications: store={described}, burst={} messages, then {} messages/s for {} s, batch={}, poll={} ms, cores={}",
        args.burst,
        args.rate,
        args.duration_seconds,
        args.batch,
        args.poll_ms,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let store = control.store().clone();
    let limit = Duration::from_secs(args.timeout_seconds.max(1));

    // Burst: everything queued behind a paused target, then released at
    // once: the drain rate is the loop's, not the writers'.
    if args.burst > 0 {
        let pause = |paused: bool| accord_model::TargetPatch {
            paused: Some(paused),
            ..Default::default()
        };
        client.update_target(target, &pause(true)).await?;
        let started = Instant::now();
        let queued = enqueue(&store, target, args.burst, 16).await?;
        let queue_time = started.elapsed();
        let released = Utc::now();
        client.update_target(target, &pause(false)).await?;
        wait_for(&arrivals, &queued, limit).await?;
        let last = {
            let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            queued
                .keys()
                .filter_map(|id| arrivals.first.get(id))
                .max()
                .copied()
                .unwrap_or(released)
        };
        let span = (last - released).num_milliseconds().max(1) as f64 / 1000.0;
        println!(
            "burst: {} messages queued in {:.2} s ({:.0}/s) behind a paused target; released, all delivered in {:.2} s: {:.0} deliveries/s",
            args.burst,
            queue_time.as_secs_f64(),
            args.burst as f64 / queue_time.as_secs_f64(),
            span,
            args.burst as f64 / span,
        );
    }

    // Paced: a steady rate, as completions would arrive.
    if args.rate > 0 && args.duration_seconds > 0 {
        let ticks = args.duration_seconds * 100;
        let per_tick = (args.rate as f64 / 100.0).max(1.0);
        let mut owed = 0.0;
        let mut queued = HashMap::new();
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        for _ in 0..ticks {
            interval.tick().await;
            owed += per_tick;
            let now_count = owed.floor() as usize;
            owed -= now_count as f64;
            queued.extend(enqueue(&store, target, now_count, now_count.clamp(1, 8)).await?);
        }
        let offered = queued.len() as f64 / started.elapsed().as_secs_f64();
        wait_for(&arrivals, &queued, limit).await?;
        let ms = latencies(&arrivals, &queued);
        println!(
            "paced: {} messages at {:.0}/s offered; queued-to-delivered p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            queued.len(),
            offered,
            percentile(&ms, 50.0),
            percentile(&ms, 99.0),
            ms.last().copied().unwrap_or(0.0),
        );
    }
    let (requests, distinct) = {
        let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
        (arrivals.requests, arrivals.first.len())
    };
    println!("receiver: {requests} requests for {distinct} distinct webhook-ids");
    control.shutdown().await?;
    Ok(())
}
