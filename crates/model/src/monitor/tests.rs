use chrono::TimeZone;
use serde_json::json;

use super::*;

fn spec(json: serde_json::Value) -> ScheduleSpec {
    serde_json::from_value(json).unwrap()
}

/// Parses `json` with a 10 s minimum: `Ok(normalised spec)` or `Err((field, part of message))`.
fn check(json: serde_json::Value, expected: Result<serde_json::Value, (&str, &str)>) {
    match (
        Schedule::parse(&spec(json.clone()), "schedule", 10),
        expected,
    ) {
        (Ok(schedule), Ok(want)) => {
            assert_eq!(
                serde_json::to_value(schedule.spec()).unwrap(),
                want,
                "{json}"
            )
        }
        (Err(err), Err((field, message))) => {
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(err.message.contains(message), "{json}: {err}");
        }
        (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn schedules_parse_or_name_the_field() {
    check(json!({"every": "5m"}), Ok(json!({"every": "5m"})));
    check(json!({"every": "300s"}), Ok(json!({"every": "5m"})));
    check(json!({"every": "90s"}), Ok(json!({"every": "90s"})));
    check(json!({"every": "2h"}), Ok(json!({"every": "2h"})));
    check(json!({"every": "10s"}), Ok(json!({"every": "10s"})));
    check(
        json!({"cron": "0 9 * * 1-5", "time_zone": "Europe/Paris"}),
        Ok(json!({"cron": "0 9 * * 1-5", "time_zone": "Europe/Paris"})),
    );
    check(
        json!({"cron": "*/5 * * * *"}),
        Ok(json!({"cron": "*/5 * * * *", "time_zone": "UTC"})),
    );
    check(
        json!({"every": "5s"}),
        Err(("schedule.every", "minimum interval of 10 seconds")),
    );
    check(json!({"every": "5"}), Err(("schedule.every", "no unit")));
    check(
        json!({"every": "5d"}),
        Err(("schedule.every", "unknown unit")),
    );
    check(
        json!({"every": "m"}),
        Err(("schedule.every", "whole number")),
    );
    check(
        json!({"every": "9000h"}),
        Err(("schedule.every", "longer than a year")),
    );
    check(
        json!({"cron": "61 * * * *"}),
        Err(("schedule.cron", "invalid cron expression")),
    );
    check(
        json!({"cron": "not cron"}),
        Err(("schedule.cron", "invalid cron expression")),
    );
    check(
        json!({"cron": "* * * * * *"}),
        Err(("schedule.cron", "runs every 1 seconds")),
    );
    check(
        json!({"cron": "0 9 * * *", "time_zone": "Mars/Olympus"}),
        Err(("schedule.time_zone", "unknown time zone \"Mars/Olympus\"")),
    );
    check(
        json!({"every": "5m", "time_zone": "UTC"}),
        Err(("schedule.time_zone", "goes with `cron`")),
    );
    check(
        json!({"every": "5m", "cron": "* * * * *"}),
        Err(("schedule", "not both")),
    );
    check(json!({}), Err(("schedule", "give `every`")));
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, s).unwrap()
}

fn schedule(json: serde_json::Value) -> Schedule {
    Schedule::parse(&spec(json), "schedule", 10).unwrap()
}

#[test]
fn interval_slots_lie_on_a_grid_shifted_by_the_jitter() {
    let every = schedule(json!({"every": "5m"}));
    // No jitter: the grid from the epoch.
    assert_eq!(every.next_after(at(10, 0, 0), 0.0), Some(at(10, 5, 0)));
    assert_eq!(every.next_after(at(10, 3, 0), 0.0), Some(at(10, 5, 0)));
    // Half the largest jitter (10% of 5 minutes) is 15 seconds.
    assert_eq!(every.next_after(at(10, 0, 0), 0.5), Some(at(10, 0, 15)));
    assert_eq!(every.next_after(at(10, 0, 15), 0.5), Some(at(10, 5, 15)));
    // After a long gap, the next slot is the first after now: one run.
    assert_eq!(
        every.next_after(at(23, 59, 59), 0.0),
        Some(Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap())
    );
}

#[test]
fn cron_slots_follow_the_time_zone() {
    let cron = schedule(json!({"cron": "0 9 * * *", "time_zone": "Europe/Paris"}));
    // 9:00 in Paris in March (before summer time) is 8:00 UTC.
    assert_eq!(cron.next_after(at(7, 0, 0), 0.0), Some(at(8, 0, 0)));
    assert_eq!(
        cron.next_after(at(8, 0, 0), 0.0),
        Some(Utc.with_ymd_and_hms(2026, 3, 3, 8, 0, 0).unwrap())
    );
    // The jitter shifts it by at most six seconds.
    assert_eq!(cron.next_after(at(7, 0, 0), 0.5), Some(at(8, 0, 3)));
}

#[test]
fn a_thousand_monitors_spread_out() {
    let every = schedule(json!({"every": "1m"}));
    let slots: BTreeSet<_> = (0..1000)
        .map(|_| every.next_after(at(10, 0, 0), MonitorId::new().jitter_unit()))
        .collect();
    // Jitter spreads them over 6 seconds at millisecond precision.
    assert!(slots.len() > 900, "{} distinct slots", slots.len());
    for slot in &slots {
        let slot = slot.unwrap();
        assert!(
            slot >= at(10, 1, 0) && slot < at(10, 1, 6)
                || slot > at(10, 0, 0) && slot < at(10, 0, 6),
            "{slot}"
        );
    }
    let id = MonitorId::new();
    assert_eq!(id.jitter_unit(), id.jitter_unit());
}

#[test]
fn new_monitors_are_checked() {
    let check = |json: serde_json::Value, expected: Result<(), &str>| {
        let monitor: NewMonitor = serde_json::from_value(json.clone()).unwrap();
        match (monitor.validate(10), expected) {
            (Ok(_), Ok(())) => {}
            (Err(err), Err(field)) => assert_eq!(err.field, field, "{json}: {err}"),
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    };
    let base = json!({"name": "News", "workflow": "page_change", "url": "https://example.com/", "schedule": {"every": "5m"}});
    check(base.clone(), Ok(()));
    let with = |key: &str, value: serde_json::Value| {
        let mut json = base.clone();
        json[key] = value;
        json
    };
    check(with("name", json!("  ")), Err("name"));
    check(with("tags", json!(["ok", "not ok"])), Err("tags[0]"));
    check(with("tags", json!(["jobs", "prod:eu"])), Ok(()));
    check(
        with("schedule", json!({"every": "1s"})),
        Err("schedule.every"),
    );
}
