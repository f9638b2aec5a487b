//! `page_change` end to end over captured bodies: each case runs the
//! previous capture to get a snapshot, then the current one against it.

use serde_json::json;

use super::*;
use crate::outcome::BaselineReason;
use crate::validate::from_json;
use crate::visual::VisualComparison;

fn input(json: serde_json::Value) -> PageChangeInput {
    let input: PageChangeInput = from_json(&json).unwrap();
    input.validate().unwrap();
    input
}

fn html(body: &str) -> PageCapture {
    PageCapture {
        body: body.to_owned(),
        content_type: Some("text/html; charset=utf-8".to_owned()),
        screenshot_png: None,
    }
}

fn json_body(body: &str) -> PageCapture {
    PageCapture {
        body: body.to_owned(),
        content_type: Some("application/json".to_owned()),
        screenshot_png: None,
    }
}

/// Runs `before` (as the baseline) then `after`; checks `changed` and
/// `text_changed` and returns the second run.
fn check(
    input: &PageChangeInput,
    before: &PageCapture,
    after: &PageCapture,
    expected: (bool, bool),
) -> PageChangeRun {
    let first = page_change(input, before, None).unwrap();
    assert_eq!(first.outcome.baseline, Some(BaselineReason::FirstRun));
    assert!(
        !first.outcome.changed,
        "a baseline never counts as a change"
    );
    let previous = PreviousPage {
        snapshot: &first.snapshot,
        screenshot_png: before.screenshot_png.as_deref(),
    };
    let second = page_change(input, after, Some(previous)).unwrap();
    let o = &second.outcome;
    assert_eq!(o.baseline, None);
    assert_eq!(
        (o.changed, o.text_changed),
        expected,
        "before: {:?}\nafter: {:?}\n{:#?}",
        first.snapshot.text,
        second.snapshot.text,
        o.diff
    );
    assert_eq!(o.diff.is_some(), o.text_changed);
    second
}

const NEWS: &str = r#"<html><head><title>News</title></head><body>
  <header>Daily News <span class="clock">Updated 12:01</span></header>
  <div class="ad">Buy shoes now!</div>
  <main id="stories">
    <h2>Rivers rise</h2>
    <p>Rain fell for a week.</p>
    <h2>Markets calm</h2>
    <p>Prices held steady.</p>
  </main>
  <footer>Visitors today: 1,204</footer>
</body></html>"#;

#[test]
fn the_same_page_has_no_change() {
    check(&input(json!({})), &html(NEWS), &html(NEWS), (false, false));
}

#[test]
fn the_first_run_records_the_normalised_text() {
    let run = page_change(&input(json!({})), &html(NEWS), None).unwrap();
    assert_eq!(
        run.snapshot.text,
        "Daily News Updated 12:01\nBuy shoes now!\nRivers rise\nRain fell for a week.\n\
         Markets calm\nPrices held steady.\nVisitors today: 1,204\n"
    );
    assert_eq!(run.outcome.lines, 7);
    assert_eq!(run.outcome.compared_as, BodyFormat::Html);
    assert_eq!(run.outcome.diff, None);
}

#[test]
fn a_change_inside_an_ignored_region_is_no_change() {
    let rules = input(json!({"ignore": [r"Updated \d{1,2}:\d{2}", r"Visitors today: [\d,]+"]}));
    let later = NEWS.replace("12:01", "12:47").replace("1,204", "1,388");
    let run = check(&rules, &html(NEWS), &html(&later), (false, false));
    // The ignored text is gone from the snapshot; the rest of its line stays.
    assert!(run
        .snapshot
        .text
        .starts_with("Daily News\nBuy shoes now!\n"));
    assert!(!run.snapshot.text.contains("Visitors"));
    // Without the rules, the same pages differ.
    check(&input(json!({})), &html(NEWS), &html(&later), (true, true));
}

#[test]
fn a_real_change_is_diffed_line_by_line() {
    let rules = input(json!({"ignore": [r"Updated \d{1,2}:\d{2}"]}));
    let later = NEWS
        .replace("12:01", "12:47")
        .replace("<p>Prices held steady.</p>", "<p>Prices fell 3%.</p>")
        .replace(
            "</main>",
            "<h2>Storm ahead</h2><p>Winds of 90 km/h.</p></main>",
        );
    let run = check(&rules, &html(NEWS), &html(&later), (true, true));
    let diff = run.outcome.diff.unwrap();
    insta::assert_snapshot!(diff.unified, @r"
    --- previous
    +++ current
    @@ -3,5 +3,7 @@
     Rivers rise
     Rain fell for a week.
     Markets calm
    -Prices held steady.
    +Prices fell 3%.
    +Storm ahead
    +Winds of 90 km/h.
     Visitors today: 1,204
    ");
    assert_eq!((diff.added, diff.removed), (3, 1));
    insta::assert_json_snapshot!(diff.hunks);
}

#[test]
fn a_whitespace_only_change_is_no_change() {
    let before = "<p>Hello world</p><p>Second   line</p>";
    let after = "<p>  Hello\n   world </p>\n\n<p>Second\tline\u{a0}</p>   ";
    check(
        &input(json!({})),
        &html(before),
        &html(after),
        (false, false),
    );
}

#[test]
fn changes_inside_removed_elements_are_ignored() {
    let rules = input(json!({"remove": [".ad", ".clock"]}));
    let later = NEWS
        .replace("Buy shoes now!", "Huge sale on hats")
        .replace("Updated 12:01", "Updated 13:15");
    check(&rules, &html(NEWS), &html(&later), (false, false));
    // A change outside them still counts.
    let edited = later.replace("Rivers rise", "Rivers fall");
    check(&rules, &html(NEWS), &html(&edited), (true, true));
}

#[test]
fn only_the_watched_parts_are_compared() {
    let rules = input(json!({"selectors": ["#stories"]}));
    let later = NEWS
        .replace("Buy shoes now!", "Buy hats")
        .replace("1,204", "9");
    let run = check(&rules, &html(NEWS), &html(&later), (false, false));
    assert!(run.snapshot.text.starts_with("Rivers rise\n"));
    let edited = NEWS.replace("Rain fell for a week.", "Rain stopped.");
    check(&rules, &html(NEWS), &html(&edited), (true, true));
}

#[test]
fn selectors_matching_nothing_are_reported() {
    let rules = input(json!({"selectors": ["#stories", "#weather"]}));
    let run = page_change(&rules, &html(NEWS), None).unwrap();
    assert_eq!(run.outcome.unmatched_selectors, ["#weather"]);
}

#[test]
fn sorted_lines_ignore_reordering() {
    let before = "<ul><li>Berlin</li><li>Austin</li><li>Lisbon</li></ul>";
    let after = "<ul><li>Lisbon</li><li>Berlin</li><li>Austin</li></ul>";
    let sorted = input(json!({"sort_lines": true}));
    let run = check(&sorted, &html(before), &html(after), (false, false));
    assert_eq!(run.snapshot.text, "Austin\nBerlin\nLisbon\n");
    check(&input(json!({})), &html(before), &html(after), (true, true));
    // A new entry is still a change, diffed in sorted order.
    let grown = "<ul><li>Lisbon</li><li>Cairo</li><li>Berlin</li><li>Austin</li></ul>";
    let run = check(&sorted, &html(before), &html(grown), (true, true));
    let diff = run.outcome.diff.unwrap();
    assert_eq!(
        diff.unified,
        "--- previous\n+++ current\n@@ -1,3 +1,4 @@\n Austin\n Berlin\n+Cairo\n Lisbon\n"
    );
}

#[test]
fn json_is_compared_canonically() {
    let rules = input(json!({}));
    let before = r#"{"name": "Tea", "price": 3.5, "tags": ["hot", "green"], "stock": {"shop": 4, "web": 10}}"#;
    let reordered = r#"{"stock": {"web": 10, "shop": 4}, "tags": ["hot", "green"], "price": 3.5, "name": "Tea"}"#;
    let run = check(
        &rules,
        &json_body(before),
        &json_body(reordered),
        (false, false),
    );
    assert_eq!(run.outcome.compared_as, BodyFormat::Json);
    insta::assert_snapshot!(run.snapshot.text, @r#"
    {
      "name": "Tea",
      "price": 3.5,
      "stock": {
        "shop": 4,
        "web": 10
      },
      "tags": [
        "hot",
        "green"
      ]
    }
    "#);
    let changed = before.replace("\"web\": 10", "\"web\": 0");
    let run = check(
        &rules,
        &json_body(before),
        &json_body(&changed),
        (true, true),
    );
    assert_eq!(
        run.outcome.diff.unwrap().unified,
        "--- previous\n+++ current\n@@ -3,7 +3,7 @@\n   \"price\": 3.5,\n   \"stock\": {\n     \
         \"shop\": 4,\n-    \"web\": 10\n+    \"web\": 0\n   },\n   \"tags\": [\n     \"hot\",\n"
    );
}

#[test]
fn the_body_format_is_detected_or_forced() {
    let check_format = |rules: serde_json::Value, capture: PageCapture, expected: BodyFormat| {
        let run = page_change(&input(rules), &capture, None).unwrap();
        assert_eq!(run.outcome.compared_as, expected, "{capture:?}");
    };
    let untyped = |body: &str| PageCapture {
        body: body.to_owned(),
        ..PageCapture::default()
    };
    check_format(json!({}), json_body("[1, 2]"), BodyFormat::Json);
    check_format(json!({}), untyped(" {\"a\": 1}"), BodyFormat::Json);
    check_format(json!({}), untyped("<p>x</p>"), BodyFormat::Html);
    check_format(json!({}), json_body("{not json"), BodyFormat::Text);
    let plain = PageCapture {
        content_type: Some("text/plain".to_owned()),
        ..untyped("<b>a</b>")
    };
    check_format(json!({}), plain.clone(), BodyFormat::Text);
    check_format(json!({"format": "html"}), plain, BodyFormat::Html);
    check_format(json!({"format": "text"}), json_body("{}"), BodyFormat::Text);
}

#[test]
fn a_trigger_lets_only_its_change_count() {
    let page =
        |stock: &str, extra: &str| html(&format!("<h1>Kettle</h1><p>{stock}</p><p>{extra}</p>"));
    let appears = input(json!({"trigger": {"text": "in stock", "when": "appears"}}));
    // The text appears (matched ignoring case): the change counts.
    let run = check(
        &appears,
        &page("Sold out", ""),
        &page("In Stock", ""),
        (true, true),
    );
    let trigger = run.outcome.trigger.unwrap();
    assert_eq!(
        (trigger.before, trigger.now, trigger.satisfied),
        (false, true, true)
    );
    // Another change, while the text stays away: recorded, not counted.
    check(
        &appears,
        &page("Sold out", "v1"),
        &page("Sold out", "v2"),
        (false, true),
    );
    // Nor while it stays present.
    check(
        &appears,
        &page("In stock", "v1"),
        &page("In stock", "v2"),
        (false, true),
    );
    let disappears = input(json!({"trigger": {"text": "Sold out", "when": "disappears"}}));
    check(
        &disappears,
        &page("Sold out", ""),
        &page("Back soon", ""),
        (true, true),
    );
    check(
        &disappears,
        &page("Back soon", ""),
        &page("Sold out", ""),
        (false, true),
    );
}

#[test]
fn changed_rules_start_a_new_baseline() {
    let first = page_change(&input(json!({})), &html(NEWS), None).unwrap();
    let stricter = input(json!({"remove": [".ad"]}));
    let previous = PreviousPage {
        snapshot: &first.snapshot,
        screenshot_png: None,
    };
    let run = page_change(&stricter, &html(NEWS), Some(previous)).unwrap();
    assert_eq!(run.outcome.baseline, Some(BaselineReason::RulesChanged));
    assert!(!run.outcome.changed && !run.outcome.text_changed);
    assert_ne!(run.snapshot.rules, first.snapshot.rules);
}

#[test]
fn too_complex_pages_are_refused() {
    let deep = "<div>".repeat(1_000);
    let err = page_change(&input(json!({})), &html(&deep), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "read the page: the page nests elements more than 512 deep"
    );
}

mod visual {
    use image::codecs::png::PngEncoder;
    use image::{ExtendedColorType, ImageEncoder, Rgba, RgbaImage};

    use super::*;

    /// A white `width` x `height` PNG with a black bar `bar` rows high.
    fn screenshot(width: u32, height: u32, bar: u32) -> Vec<u8> {
        let mut image = RgbaImage::from_pixel(width, height, Rgba([255, 255, 255, 255]));
        for y in 0..bar.min(height) {
            for x in 0..width {
                image.put_pixel(x, y, Rgba([0, 0, 0, 255]));
            }
        }
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(image.as_raw(), width, height, ExtendedColorType::Rgba8)
            .unwrap();
        out
    }

    fn shot(body: &str, png: Vec<u8>) -> PageCapture {
        PageCapture {
            screenshot_png: Some(png),
            ..html(body)
        }
    }

    fn compared(run: &PageChangeRun) -> &VisualComparison {
        match &run.outcome.visual {
            Some(VisualOutcome::Compared(c)) => c,
            other => panic!("not compared: {other:?}"),
        }
    }

    #[test]
    fn a_visual_change_above_the_threshold_counts_even_with_the_same_text() {
        let rules = input(json!({"visual": {"threshold": 0.05}}));
        // 10 of 100 rows turn black: 10% of the pixels.
        let run = check(
            &rules,
            &shot("<p>a</p>", screenshot(50, 100, 0)),
            &shot("<p>a</p>", screenshot(50, 100, 10)),
            (true, false),
        );
        assert_eq!(compared(&run).changed_ratio, 0.1);
        assert!(run.highlight_png.is_some());
    }

    #[test]
    fn a_visual_change_below_the_threshold_does_not() {
        let rules = input(json!({"visual": {"threshold": 0.2}}));
        let run = check(
            &rules,
            &shot("<p>a</p>", screenshot(50, 100, 0)),
            &shot("<p>a</p>", screenshot(50, 100, 10)),
            (false, false),
        );
        assert!(!compared(&run).changed);
        // The highlight is still made, to show what moved.
        assert!(run.highlight_png.is_some());
    }

    #[test]
    fn a_taller_page_is_a_visual_change() {
        let rules = input(json!({"visual": {"threshold": 0.1}}));
        let run = check(
            &rules,
            &shot("<p>a</p>", screenshot(50, 100, 0)),
            &shot("<p>a</p>", screenshot(50, 150, 0)),
            (true, false),
        );
        let c = compared(&run);
        assert_eq!((c.changed_pixels, c.compared_pixels), (2_500, 7_500));
    }

    #[test]
    fn missing_screenshots_skip_the_comparison_with_a_reason() {
        let rules = input(json!({"visual": {}}));
        let reason = |run: &PageChangeRun| match &run.outcome.visual {
            Some(VisualOutcome::Skipped { reason }) => reason.clone(),
            other => panic!("not skipped: {other:?}"),
        };
        let first = page_change(&rules, &shot("<p>a</p>", screenshot(10, 10, 0)), None).unwrap();
        assert_eq!(
            reason(&first),
            "this is the first run: there is nothing to compare with"
        );
        assert!(first.snapshot.screenshot_sha256.is_some());
        let no_bytes = PreviousPage {
            snapshot: &first.snapshot,
            screenshot_png: None,
        };
        let run = page_change(
            &rules,
            &shot("<p>a</p>", screenshot(10, 10, 0)),
            Some(no_bytes),
        )
        .unwrap();
        assert_eq!(
            reason(&run),
            "the previous run's screenshot is not available"
        );
        // A run without a screenshot keeps the last one as the baseline.
        let run = page_change(&rules, &html("<p>a</p>"), Some(no_bytes)).unwrap();
        assert_eq!(
            reason(&run),
            "this run took no screenshot (screenshots need the browser engine)"
        );
        assert_eq!(
            run.snapshot.screenshot_sha256,
            first.snapshot.screenshot_sha256
        );
        let broken = PreviousPage {
            snapshot: &first.snapshot,
            screenshot_png: Some(b"garbage"),
        };
        let run = page_change(
            &rules,
            &shot("<p>a</p>", screenshot(10, 10, 0)),
            Some(broken),
        )
        .unwrap();
        assert!(reason(&run).starts_with("failed to decode the previous screenshot as PNG"));
    }
}

mod values {
    use super::*;
    use crate::values::ValueState;

    #[test]
    fn a_price_is_read_from_the_page_and_its_condition_edge_reported() {
        let rules = input(json!({
            "selectors": ["h1"],
            "values": [{"name": "price", "selector": ".price", "condition": {"below": 1000}}]
        }));
        let page = |price: &str| html(&format!("<h1>Laptop</h1><span class=price>{price}</span>"));
        let first = page_change(&rules, &page("$1,299.00"), None).unwrap();
        let v = &first.outcome.values[0];
        assert_eq!(
            (v.value, v.condition_met, v.newly_met),
            (Some(1299.0), false, false)
        );
        let previous = PreviousPage {
            snapshot: &first.snapshot,
            screenshot_png: None,
        };
        // The price is outside the watched text: no change, but the value moves.
        let run = page_change(&rules, &page("$999.00"), Some(previous)).unwrap();
        assert!(!run.outcome.changed);
        let v = &run.outcome.values[0];
        assert_eq!(
            (v.value, v.previous, v.condition_met, v.newly_met),
            (Some(999.0), Some(1299.0), true, true)
        );
        assert_eq!(
            run.snapshot.values["price"],
            ValueState {
                value: Some(999.0),
                condition_met: true
            }
        );
    }

    #[test]
    fn values_are_read_from_json_by_pointer() {
        let rules = input(json!({"values": [
            {"name": "price", "json_pointer": "/offers/0/price"},
            {"name": "label", "json_pointer": "/offers/0/label"},
            {"name": "missing", "json_pointer": "/nope"},
            {"name": "object", "json_pointer": "/offers/0"},
            {"name": "by_selector", "selector": ".price"}
        ]}));
        let body = r#"{"offers": [{"price": 12.5, "label": "1.299,00 €"}]}"#;
        let run = page_change(&rules, &json_body(body), None).unwrap();
        let got: Vec<_> = run
            .outcome
            .values
            .iter()
            .map(|v| (v.name.as_str(), v.value, v.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("price", Some(12.5), None),
                ("label", Some(1299.0), None),
                ("missing", None, Some("the body has nothing at `/nope`")),
                (
                    "object",
                    None,
                    Some("the value at `/offers/0` is not a string or a number")
                ),
                (
                    "by_selector",
                    None,
                    Some("a selector needs an HTML page; this body was read as JSON")
                ),
            ]
        );
    }
}
