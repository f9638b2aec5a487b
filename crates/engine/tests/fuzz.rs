//! Fuzzing page processing: any bytes as a page, through the bounded
//! parse, extraction and asserts, must end within the page limits: no
//! panic, no stack overflow, no result past the extraction bound, and no
//! input running past its time bound.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use accord_engine::{process_page, PageLimits, StepFailure};
use accord_model::{ExtractedValue, Step};
use accord_test_support::fuzz::{fuzz, FuzzTarget};

#[test]
fn html_extraction_stays_within_its_bounds() {
    let steps: Vec<Step> = serde_json::from_str(
        r#"[{"action": "extract", "fields": {
                "title": {"selector": "title"},
                "all": {"selector": "*", "all": true},
                "links": {"selector": "a[href]", "attribute": "href", "all": true},
                "deep": {"selector": "div div p, table td", "all": true},
                "is": {"selector": ":is(p, li):not(.x) > b", "all": true}}},
            {"action": "assert", "selector": "body", "text": "zz"}]"#,
    )
    .unwrap();
    let limits = PageLimits {
        max_nodes: 100_000,
        max_depth: 512,
        max_processing: Duration::from_secs(2),
        max_extracted_bytes: 256 * 1024,
    };
    let target = FuzzTarget {
        name: "html_extract",
        dictionary: &[
            "<div>",
            "</div>",
            "<p>",
            "<table>",
            "<td>",
            "<b>",
            "<i>",
            "</b>",
            "<a href=x>",
            "<svg>",
            "<math>",
            "<template>",
            "<script>",
            "<!--",
            "<select>",
            "<option>",
            "&amp;",
            "&#0;",
            " a=1",
            "\0",
            "<plaintext>",
            "<frameset>",
        ],
        max_len: 256 * 1024,
        // The processing limit plus room for a loaded machine.
        per_input: Duration::from_secs(20),
    };
    fuzz(&target, move |input| {
        let page = String::from_utf8_lossy(input);
        let stop = AtomicBool::new(false);
        match process_page(&page, 200, &steps, &limits, &stop) {
            Ok(extracted) => {
                let bytes: usize = extracted.values().map(size).sum();
                if bytes > limits.max_extracted_bytes {
                    return Err(format!("{bytes} bytes extracted, past the limit"));
                }
                Ok(())
            }
            Err(err) => match err.failure() {
                StepFailure::AssertFailed { .. } | StepFailure::PageTooCostly(_) => Ok(()),
                other => Err(format!("unexpected failure: {other}")),
            },
        }
    });
}

fn size(value: &ExtractedValue) -> usize {
    match value {
        ExtractedValue::One(one) => one.as_ref().map_or(0, String::len),
        ExtractedValue::List(list) => list.iter().map(String::len).sum(),
        other => serde_json::to_string(other).unwrap().len(),
    }
}
