//! The demo's script: what every page shows at tick N, as pure functions of
//! the tick. The site renders these; tests call them to know what to
//! expect, and assert a few ticks against literals so the documented
//! sequence cannot drift.
//!
//! Everything cycles, so a demo left running keeps producing news:
//!
//! | What | Changes | Known ticks (cycle) |
//! | --- | --- | --- |
//! | news headlines | every [`HEADLINE_TICKS`] ticks one new story on top, the oldest drops | 3, 6, 9, … |
//! | news clock, "updated N seconds ago", visitor counter | every tick | every tick |
//! | job postings | one new posting every tick; every [`EXPIRY_TICKS`]th tick the oldest expire, so 24 to 27 are listed | new: every tick; expired: 4, 8, 12, … |
//! | a posting's location | postings whose id is a multiple of 5 move to "Remote" [`REMOTE_AFTER_TICKS`] ticks after they were posted | ids 5, 10, 15, 20 at tick 6, id 25 at tick 7, id 30 at tick 12, … |
//! | product price | every tick, from [`PRICE_CYCLE`] | below [`PRICE_MARK`] at ticks 4, 5, 6 (mod 12) |
//! | status page | [`status_at`] | HTTP 500 at ticks 5, 6; degraded at 9 (mod 12) |
//!
//! Deliberately does no IO and reads no clock: the "time" on the pages is a
//! fixed start plus the tick times [`TICK_SECONDS`].

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};

/// The seed of the demo's pseudo-random choices (companies, counters).
pub const SEED: u64 = 0x00ac_c0de_5eed_0011;
/// Seconds of site time per tick; also the real demo's default period.
pub const TICK_SECONDS: u64 = 10;

/// Ticks between two changes of the headlines.
pub const HEADLINE_TICKS: u64 = 3;
/// Headlines on the front page.
pub const HEADLINES_SHOWN: usize = 5;

/// Postings per page of the job board.
pub const JOBS_PER_PAGE: usize = 10;
/// Pages of the job board (the last one is partly filled).
pub const JOB_PAGES: usize = 3;
/// Postings listed at tick 0 (ids 1 to 24).
pub const INITIAL_POSTINGS: u64 = 24;
/// Every this many ticks the oldest postings expire (as many as were
/// posted since the last expiry).
pub const EXPIRY_TICKS: u64 = 4;
/// Ticks after it was posted that a posting whose id is a multiple of 5
/// moves to "Remote".
pub const REMOTE_AFTER_TICKS: u64 = 6;

/// The price (in cents) at each tick of the 12-tick cycle.
pub const PRICE_CYCLE: [u64; 12] = [
    129_900, 127_900, 124_900, 109_900, 99_900, 94_900, 97_900, 104_900, 114_900, 119_900, 124_900,
    128_900,
];
/// The demo price monitor's mark: the price is below it at ticks 4, 5 and 6
/// of each cycle.
pub const PRICE_MARK: f64 = 1_000.0;

/// Ticks of the status page's cycle.
pub const STATUS_CYCLE: u64 = 12;

/// The site time at tick 0.
fn start_time() -> DateTime<Utc> {
    // 2 March 2026, 09:00:00 UTC: a Monday morning.
    DateTime::from_timestamp(1_772_442_000, 0).unwrap_or_default()
}

/// The site time at `tick`.
pub fn site_time(tick: u64) -> DateTime<Utc> {
    let seconds = i64::try_from(tick.saturating_mul(TICK_SECONDS)).unwrap_or(i64::MAX);
    start_time() + TimeDelta::try_seconds(seconds).unwrap_or(TimeDelta::MAX)
}

/// A pseudo-random number from the seed and two keys (SplitMix64's mixer):
/// the same keys always give the same number.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = SEED
        .wrapping_add(a.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(b.wrapping_mul(0xd1b5_4a32_d192_ed03));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pick<T: Copy>(list: &[T], a: u64, b: u64) -> T {
    let len = u64::try_from(list.len()).unwrap_or(1).max(1);
    list[usize::try_from(mix(a, b) % len).unwrap_or(0)]
}

// ---- news ----------------------------------------------------------------

const HEADLINES: [&str; 20] = [
    "City council approves new riverside park",
    "Local bakery wins national sourdough award",
    "Tram line extension opens two months early",
    "University team builds a solar-powered boat",
    "Library extends weekend opening hours",
    "Heatwave expected to ease by Thursday",
    "Startup raises funding to recycle old batteries",
    "Marathon route changes to avoid bridge repairs",
    "Museum unveils restored 18th-century map",
    "Farmers market moves to the old train station",
    "New cycle lanes cut commute times, study finds",
    "Harbour cleanup collects two tonnes of plastic",
    "Jazz festival announces its summer line-up",
    "School robotics club heads to world finals",
    "Water main repair closes High Street until Friday",
    "Community garden doubles in size",
    "Rare owl spotted in the botanical gardens",
    "Night buses return after a five-year pause",
    "Old cinema reopens as a music venue",
    "Volunteers plant a thousand trees in one day",
];

/// Which headline epoch `tick` is in: the headlines change when it does.
pub fn headline_epoch(tick: u64) -> u64 {
    tick / HEADLINE_TICKS
}

/// The headlines at `tick`, newest first: on each new epoch one story
/// appears on top and the oldest drops off the bottom.
pub fn headlines(tick: u64) -> Vec<&'static str> {
    let epoch = headline_epoch(tick);
    let len = HEADLINES.len() as u64;
    (0..HEADLINES_SHOWN as u64)
        .map(|i| {
            let index = (epoch + HEADLINES_SHOWN as u64 - 1 - i) % len;
            HEADLINES[usize::try_from(index).unwrap_or(0)]
        })
        .collect()
}

/// Visitors today at `tick`: grows by 37 to 65 every tick.
pub fn visitors(tick: u64) -> u64 {
    48_213 + 37 * tick + mix(tick, 1) % 29
}

/// Seconds since the last update shown at `tick` ("Updated 17 seconds ago").
pub fn updated_seconds_ago(tick: u64) -> u64 {
    2 + mix(tick, 2) % 57
}

// ---- jobs ----------------------------------------------------------------

const TITLES: [&str; 12] = [
    "Rust Engineer",
    "Backend Developer",
    "Site Reliability Engineer",
    "Data Engineer",
    "Frontend Developer",
    "Product Designer",
    "Platform Engineer",
    "Security Engineer",
    "Engineering Manager",
    "QA Automation Engineer",
    "Technical Writer",
    "Developer Advocate",
];
const COMPANIES: [&str; 10] = [
    "Northwind Labs",
    "Bluefin Systems",
    "Kestrel Analytics",
    "Granite Cloud",
    "Orchid Health",
    "Pinecone Robotics",
    "Lumen Payments",
    "Harbor Logistics",
    "Sable Security",
    "Tidewater Energy",
];
const LOCATIONS: [&str; 8] = [
    "Berlin",
    "Lisbon",
    "Amsterdam",
    "London",
    "Toronto",
    "Austin",
    "Warsaw",
    "Barcelona",
];

/// One job posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub id: u64,
    pub title: &'static str,
    pub company: &'static str,
    pub location: &'static str,
    pub posted: NaiveDate,
}

/// The newest posting's id at `tick`: one new posting per tick.
fn newest_id(tick: u64) -> u64 {
    INITIAL_POSTINGS + tick
}

/// The oldest posting's id at `tick`: every [`EXPIRY_TICKS`]th tick the
/// postings added since the last expiry are matched by as many expiring.
fn oldest_id(tick: u64) -> u64 {
    1 + tick - tick % EXPIRY_TICKS
}

/// The tick at which posting `id` was posted (0 for the first ones).
fn posted_tick(id: u64) -> u64 {
    id.saturating_sub(INITIAL_POSTINGS)
}

/// Posting `id` as it reads at `tick`, if it is listed then.
pub fn posting(id: u64, tick: u64) -> Option<Posting> {
    if id < oldest_id(tick) || id > newest_id(tick) {
        return None;
    }
    let remote = id.is_multiple_of(5) && tick >= posted_tick(id) + REMOTE_AFTER_TICKS;
    let first_day = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap_or_default();
    Some(Posting {
        id,
        title: pick(&TITLES, id, 10),
        company: pick(&COMPANIES, id, 11),
        location: if remote {
            "Remote"
        } else {
            pick(&LOCATIONS, id, 12)
        },
        // Two postings a day: fixed per posting, so a date never changes.
        posted: first_day + Days::new(id / 2),
    })
}

/// Every posting listed at `tick`, newest first.
pub fn postings(tick: u64) -> Vec<Posting> {
    (oldest_id(tick)..=newest_id(tick))
        .rev()
        .filter_map(|id| posting(id, tick))
        .collect()
}

/// The postings on `page` (1-based) of the board at `tick`, or none when
/// there is no such page.
pub fn job_page(tick: u64, page: usize) -> Option<Vec<Posting>> {
    if !(1..=JOB_PAGES).contains(&page) {
        return None;
    }
    let all = postings(tick);
    let start = (page - 1) * JOBS_PER_PAGE;
    Some(
        all.into_iter()
            .skip(start)
            .take(JOBS_PER_PAGE)
            .collect::<Vec<_>>(),
    )
}

// ---- product -------------------------------------------------------------

/// The product's price at `tick`, in cents.
pub fn price_cents(tick: u64) -> u64 {
    PRICE_CYCLE[usize::try_from(tick % PRICE_CYCLE.len() as u64).unwrap_or(0)]
}

/// The product's price at `tick` as a number of dollars.
pub fn price(tick: u64) -> f64 {
    price_cents(tick) as f64 / 100.0
}

/// `cents` as shown on the page: `$1,299.00`.
pub fn format_price(cents: u64) -> String {
    format!("${}.{:02}", thousands(cents / 100), cents % 100)
}

/// `n` with a comma between thousands: `48,213`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// People looking at the product at `tick` (noise a page monitor ignores by
/// watching only the price).
pub fn viewers(tick: u64) -> u64 {
    3 + mix(tick, 3) % 17
}

// ---- status --------------------------------------------------------------

/// What the status page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPhase {
    /// HTTP 200 with `#status-ok` and "All systems operational".
    Healthy,
    /// HTTP 500: the status page itself is down.
    Down,
    /// HTTP 200, but "Service degraded" and no `#status-ok`.
    Degraded,
}

/// The status page at `tick`: down at ticks 5 and 6 of each 12-tick cycle,
/// degraded at tick 9, healthy otherwise.
pub fn status_at(tick: u64) -> StatusPhase {
    match tick % STATUS_CYCLE {
        5 | 6 => StatusPhase::Down,
        9 => StatusPhase::Degraded,
        _ => StatusPhase::Healthy,
    }
}

/// Response time of the API shown on the status page at `tick`, in ms.
pub fn api_latency_ms(tick: u64) -> u64 {
    match status_at(tick) {
        StatusPhase::Healthy => 35 + mix(tick, 4) % 40,
        StatusPhase::Down | StatusPhase::Degraded => 1_800 + mix(tick, 4) % 900,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_and_prices_read_like_a_shop() {
        for (n, expected) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (48_213, "48,213"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), expected);
        }
        assert_eq!(format_price(129_900), "$1,299.00");
        assert_eq!(format_price(99_905), "$999.05");
    }

    #[test]
    fn visitors_grow_every_tick() {
        for tick in 0..500 {
            assert!(visitors(tick + 1) > visitors(tick), "tick {tick}");
        }
    }

    #[test]
    fn the_board_lists_24_to_27_postings_on_at_most_three_pages() {
        for tick in 0..200 {
            let count = postings(tick).len();
            assert!((24..=27).contains(&count), "tick {tick}: {count}");
            assert!(count <= JOBS_PER_PAGE * JOB_PAGES);
        }
    }

    #[test]
    fn a_posting_never_changes_but_for_its_move_to_remote() {
        for tick in 0..100 {
            for now in postings(tick) {
                let Some(later) = posting(now.id, tick + 1) else {
                    continue;
                };
                assert_eq!(
                    (now.title, now.company, now.posted),
                    (later.title, later.company, later.posted)
                );
                if now.location != later.location {
                    assert_eq!(later.location, "Remote");
                    assert_eq!(now.id % 5, 0);
                }
            }
        }
    }
}
