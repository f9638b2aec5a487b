//! Fuzzing the boundary where untrusted text becomes model values: a job
//! body through parsing and `validate`, and CSS selectors. Neither may
//! panic or overflow a stack, and what is accepted must survive a round
//! trip unchanged. (See `accord_test_support::fuzz` for budget and seeds.)

use std::time::Duration;

use accord_model::{CssSelector, Limits, NewJob};
use accord_test_support::fuzz::{fuzz, FuzzTarget};

#[test]
fn job_json_through_parse_and_validate() {
    let target = FuzzTarget {
        name: "job_json",
        dictionary: &[
            r#"{"action":"navigate","url":"http://x/"}"#,
            r#"{"action":"extract","fields":{"a":{"selector":"p"}}}"#,
            r#""selector":":is("#,
            r#""labels":{"#,
            r#""run_at":"#,
            "\\u0000",
            "\\ud800",
            "[",
            "{",
            "\"",
            "1e999",
            "-1",
            "null",
        ],
        max_len: 64 * 1024,
        per_input: Duration::from_secs(5),
    };
    fuzz(&target, |input| {
        let Ok(job) = serde_json::from_slice::<NewJob>(input) else {
            return Ok(());
        };
        if job.validate(&Limits::default()).is_err() {
            return Ok(());
        }
        let text = serde_json::to_string(&job).map_err(|err| format!("serialize: {err}"))?;
        let again: NewJob =
            serde_json::from_str(&text).map_err(|err| format!("reparse {text}: {err}"))?;
        if again != job || again.request_hash() != job.request_hash() {
            return Err(format!("round trip changed the job: {text}"));
        }
        again
            .validate(&Limits::default())
            .map_err(|err| format!("valid once, invalid after a round trip: {err}"))
    });
}

#[test]
fn css_selectors_parse_within_bounds() {
    let target = FuzzTarget {
        name: "css_selector",
        dictionary: &[
            ":is(",
            ":not(",
            ":where(",
            ":has(",
            ":nth-child(",
            "[",
            "]",
            "(",
            ")",
            "\\",
            "\"",
            "'",
            ">",
            "+",
            "~",
            ",",
            "*",
            "#",
            ".",
            "::",
            "|",
            "of ",
        ],
        max_len: 4 * 1024,
        per_input: Duration::from_secs(5),
    };
    fuzz(&target, |input| {
        let text = String::from_utf8_lossy(input);
        let Ok(selector) = CssSelector::parse(&text) else {
            return Ok(());
        };
        let again = CssSelector::parse(selector.as_str())
            .map_err(|err| format!("accepted once, refused after: {err}"))?;
        (again == selector)
            .then_some(())
            .ok_or_else(|| "the selector changed".to_owned())
    });
}
