//! `extract_items` over job postings, the flagship case: each case runs
//! the previous page's records to get a snapshot, then the current ones.

use serde_json::json;

use super::*;
use crate::outcome::BaselineReason;
use crate::validate::from_json;

fn input(patch: serde_json::Value) -> ExtractItemsInput {
    let mut json = json!({
        "item_selector": "li.job",
        "fields": {
            "title": {"selector": "h3"},
            "company": {"selector": ".company"},
            "location": {"selector": ".location"},
            "link": {"selector": "a", "attribute": "href"},
            "date": {"selector": "time", "attribute": "datetime"}
        },
        "key": {"field": "link"}
    });
    if let (Some(base), Some(patch)) = (json.as_object_mut(), patch.as_object()) {
        for (k, v) in patch {
            base.insert(k.clone(), v.clone());
        }
    }
    let input: ExtractItemsInput = from_json(&json).unwrap();
    input.validate().unwrap();
    input
}

/// A posting: title, company, location, link, date.
fn job(title: &str, company: &str, location: &str, link: &str, date: &str) -> Record {
    [
        ("title", title),
        ("company", company),
        ("location", location),
        ("link", link),
        ("date", date),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), (!v.is_empty()).then(|| v.to_owned())))
    .collect()
}

fn rust_berlin() -> Record {
    job(
        "Rust Engineer",
        "Ferris GmbH",
        "Berlin",
        "/jobs/1",
        "2024-05-01",
    )
}
fn go_remote() -> Record {
    job(
        "Go Developer",
        "Gopher Inc",
        "Remote",
        "/jobs/2",
        "2024-05-02",
    )
}
fn senior_rust() -> Record {
    job(
        "Senior Rust Engineer",
        "Crab Co",
        "Lisbon",
        "/jobs/3",
        "2024-05-03",
    )
}
fn designer() -> Record {
    job(
        "Product Designer",
        "Pixel Ltd",
        "Austin",
        "/jobs/4",
        "2024-05-04",
    )
}

/// What a run reported, as keys: (new, removed, changed, filtered out,
/// duplicates, without key).
type Expected<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], u32, u32, u32);

/// Runs `before` as the baseline, then `after`; checks the outcome's keys
/// and counts and returns the second run.
fn check(
    input: &ExtractItemsInput,
    before: &[Record],
    after: &[Record],
    expected: Expected<'_>,
) -> ItemsRun {
    let first = extract_items(input, before, None);
    assert_eq!(first.outcome.baseline, Some(BaselineReason::FirstRun));
    assert!(
        !first.outcome.changed_anything(),
        "a baseline reports nothing new"
    );
    let run = extract_items(input, after, Some(&first.snapshot));
    let o = &run.outcome;
    assert_eq!(o.baseline, None);
    let keys = |items: &[Item]| items.iter().map(|i| i.key.clone()).collect::<Vec<_>>();
    let got = (
        keys(&o.new),
        keys(&o.removed),
        o.changed.iter().map(|c| c.key.clone()).collect::<Vec<_>>(),
        o.filtered_out,
        o.duplicates,
        o.without_key,
    );
    let (new, removed, changed, filtered, duplicates, without_key) = expected;
    let want = (
        new.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        removed.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        changed.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        filtered,
        duplicates,
        without_key,
    );
    assert_eq!(got, want, "{o:#?}");
    run
}

#[test]
fn the_same_postings_are_no_change() {
    let page = [rust_berlin(), go_remote()];
    let run = check(&input(json!({})), &page, &page, (&[], &[], &[], 0, 0, 0));
    assert_eq!(run.outcome.total, 2);
    assert!(!run.outcome.changed_anything());
}

#[test]
fn new_removed_and_changed_postings_are_reported() {
    let before = [rust_berlin(), go_remote(), designer()];
    let mut moved = go_remote();
    moved.insert("location".to_owned(), Some("Amsterdam".to_owned()));
    // The newest posting comes first on the page.
    let after = [senior_rust(), rust_berlin(), moved];
    let run = check(
        &input(json!({})),
        &before,
        &after,
        (&["/jobs/3"], &["/jobs/4"], &["/jobs/2"], 0, 0, 0),
    );
    insta::assert_json_snapshot!(run.outcome);
}

#[test]
fn spacing_noise_is_no_change() {
    let mut noisy = rust_berlin();
    noisy.insert("title".to_owned(), Some("  Rust\n   Engineer ".to_owned()));
    noisy.insert("date".to_owned(), Some("2024-05-01\u{a0}".to_owned()));
    check(
        &input(json!({})),
        &[rust_berlin()],
        &[noisy],
        (&[], &[], &[], 0, 0, 0),
    );
}

#[test]
fn a_value_emptied_is_a_change_to_none() {
    let mut undated = rust_berlin();
    undated.insert("date".to_owned(), Some("   ".to_owned()));
    let run = check(
        &input(json!({})),
        &[rust_berlin()],
        &[undated],
        (&[], &[], &["/jobs/1"], 0, 0, 0),
    );
    assert_eq!(
        run.outcome.changed[0].changes,
        [FieldChange {
            field: "date".to_owned(),
            before: Some("2024-05-01".to_owned()),
            after: None
        }]
    );
}

#[test]
fn include_and_exclude_filters_ignore_case() {
    let rules = input(json!({
        "include": {"keywords": ["RUST", "go "], "fields": ["title"]},
        "exclude": {"keywords": ["senior"]}
    }));
    // The designer is not included, the senior role is excluded.
    let all = [rust_berlin(), go_remote(), senior_rust(), designer()];
    let run = check(
        &rules,
        &[rust_berlin()],
        &all,
        (&["/jobs/2"], &[], &[], 2, 0, 0),
    );
    assert_eq!(run.outcome.total, 2);
    // An exclude filter over all fields also sees the company and location.
    let rules = input(json!({"exclude": {"keywords": ["remote"]}}));
    check(
        &rules,
        &[],
        &all,
        (&["/jobs/1", "/jobs/3", "/jobs/4"], &[], &[], 1, 0, 0),
    );
}

#[test]
fn duplicate_keys_keep_the_first_item() {
    let mut repost = rust_berlin();
    repost.insert(
        "title".to_owned(),
        Some("Rust Engineer (reposted)".to_owned()),
    );
    let after = [
        rust_berlin(),
        go_remote(),
        repost.clone(),
        go_remote(),
        repost,
    ];
    let run = check(
        &input(json!({})),
        &[rust_berlin()],
        &after,
        (&["/jobs/2"], &[], &[], 0, 3, 0),
    );
    assert_eq!(run.outcome.duplicate_keys, ["/jobs/1", "/jobs/2"]);
    // The first of each is the one kept, whatever comes after.
    assert_eq!(
        run.snapshot.items[0].fields["title"].as_deref(),
        Some("Rust Engineer")
    );
    assert_eq!(run.snapshot.items.len(), 2);
}

#[test]
fn items_without_a_key_are_counted_and_left_out() {
    let unlinked = job("Rust Intern", "Ferris GmbH", "Berlin", "", "2024-05-05");
    check(
        &input(json!({})),
        &[],
        &[unlinked, rust_berlin()],
        (&["/jobs/1"], &[], &[], 0, 0, 1),
    );
}

#[test]
fn a_hash_key_identifies_items_without_links() {
    let rules = input(json!({"key": {"hash": ["title", "company"]}}));
    let mut moved = rust_berlin();
    moved.insert("link".to_owned(), Some("/jobs/99".to_owned()));
    // Same title and company, another link: the same item, changed.
    let run = check(
        &rules,
        &[rust_berlin(), go_remote()],
        &[moved, go_remote()],
        (&[], &[], &[&key_of_rust()], 0, 0, 0),
    );
    assert_eq!(run.outcome.changed[0].changes[0].field, "link");
    assert_eq!(key_of_rust().len(), 32);
    // Another company: a new item, and the old one removed.
    let mut other = rust_berlin();
    other.insert("company".to_owned(), Some("Crab Co".to_owned()));
    let run = extract_items(&rules, &[other], Some(&run.snapshot));
    assert_eq!((run.outcome.new.len(), run.outcome.removed.len()), (1, 2));
}

/// The hash key of `rust_berlin` under `{"hash": ["title", "company"]}`.
fn key_of_rust() -> String {
    let rules = input(json!({"key": {"hash": ["title", "company"]}}));
    extract_items(&rules, &[rust_berlin()], None).snapshot.items[0]
        .key
        .clone()
}

#[test]
fn hash_keys_do_not_collide_on_shifted_text() {
    let rules = input(json!({"key": {"hash": ["title", "company"]}}));
    let a = job("ab", "c", "", "", "");
    let b = job("a", "bc", "", "", "");
    let c = job("abc", "", "", "", "");
    let run = extract_items(&rules, &[a, b, c], None);
    assert_eq!(run.snapshot.items.len(), 3);
    assert_eq!(run.outcome.duplicates, 0);
}

#[test]
fn a_changed_input_starts_a_new_baseline() {
    let first = extract_items(&input(json!({})), &[rust_berlin()], None);
    let filtered = input(json!({"exclude": {"keywords": ["senior"]}}));
    let run = extract_items(
        &filtered,
        &[rust_berlin(), go_remote()],
        Some(&first.snapshot),
    );
    assert_eq!(run.outcome.baseline, Some(BaselineReason::RulesChanged));
    assert!(!run.outcome.changed_anything());
    assert_eq!(run.snapshot.items.len(), 2);
}

#[test]
fn at_most_max_items_are_kept() {
    let records: Vec<Record> = (0..=MAX_ITEMS)
        .map(|i| job("Job", "Co", "", &format!("/jobs/{i}"), ""))
        .collect();
    let run = extract_items(&input(json!({})), &records, None);
    assert!(run.outcome.truncated);
    assert_eq!(run.snapshot.items.len(), MAX_ITEMS);
}
