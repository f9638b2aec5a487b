//! An item history as CSV (RFC 4180): one row per item, the history's
//! columns first (`key`, `status`, first and last seen run and time, the
//! run and time it was removed, its count of changes), then one column per
//! field name any item of the history has, sorted.
//!
//! The cells that come from the page (the key and the fields) are the
//! page's text, which anyone can write: one that a spreadsheet would run as
//! a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
//! gets a leading `'`, unless it is a plain number such as `-5` or `+1.5`
//! (OWASP's advice against CSV injection). The JSON answer is never
//! altered.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use accord_model::ItemRecord;

const HEAD: [&str; 9] = [
    "key",
    "status",
    "first_seen_run",
    "first_seen_at",
    "last_seen_run",
    "last_seen_at",
    "removed_run",
    "removed_at",
    "changes",
];

/// The field names of the history (sorted), minus those the history's own
/// columns take.
pub(crate) fn field_columns(names: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|name| !HEAD.contains(&name.as_str()))
        .cloned()
        .collect()
}

/// `items` as CSV with the field `columns`, header first, CRLF line ends.
pub(crate) fn items_csv(items: &[ItemRecord], columns: &[String]) -> String {
    let mut out = String::new();
    let header: Vec<&str> = HEAD
        .iter()
        .copied()
        .chain(columns.iter().map(String::as_str))
        .collect();
    row(&mut out, header);
    for item in items {
        let first_run = item.first_seen.run_id.to_string();
        let first_at = item.first_seen.at.to_rfc3339();
        let last_run = item.last_seen.run_id.to_string();
        let last_at = item.last_seen.at.to_rfc3339();
        let removed_run = item
            .removed
            .map(|seen| seen.run_id.to_string())
            .unwrap_or_default();
        let removed_at = item
            .removed
            .map(|seen| seen.at.to_rfc3339())
            .unwrap_or_default();
        let changes = item.changes.to_string();
        let key = inert(&item.key);
        let fields: Vec<std::borrow::Cow<'_, str>> = columns
            .iter()
            .map(|name| {
                inert(
                    item.fields
                        .get(name)
                        .and_then(|value| value.as_deref())
                        .unwrap_or(""),
                )
            })
            .collect();
        let cells: Vec<&str> = [
            key.as_ref(),
            item.status.as_str(),
            &first_run,
            &first_at,
            &last_run,
            &last_at,
            &removed_run,
            &removed_at,
            &changes,
        ]
        .into_iter()
        .chain(fields.iter().map(AsRef::as_ref))
        .collect();
        row(&mut out, cells);
    }
    out
}

/// A page's text as a cell a spreadsheet shows rather than runs.
fn inert(cell: &str) -> std::borrow::Cow<'_, str> {
    let runs = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if runs && cell.trim().parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

fn row<'a>(out: &mut String, cells: impl IntoIterator<Item = &'a str>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            let _ = write!(out, "\"{}\"", cell.replace('"', "\"\""));
        } else {
            out.push_str(cell);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use accord_model::{ItemStatus, SeenAt};
    use chrono::{TimeZone, Utc};

    use super::*;

    fn item(key: &str, status: ItemStatus, fields: &[(&str, Option<&str>)]) -> ItemRecord {
        let seen = |run_id, minute| SeenAt {
            run_id,
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap(),
        };
        ItemRecord {
            key: key.to_owned(),
            status,
            first_seen: seen(1, 1),
            last_seen: seen(2, 2),
            removed: (status == ItemStatus::Removed).then(|| seen(3, 3)),
            changes: 1,
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    fn check(items: &[ItemRecord], expected: &str) {
        let names: BTreeSet<String> = items
            .iter()
            .flat_map(|item| item.fields.keys().cloned())
            .collect();
        assert_eq!(items_csv(items, &field_columns(&names)), expected);
    }

    #[test]
    fn plain_values_are_written_as_they_are() {
        check(
            &[
                item(
                    "/a",
                    ItemStatus::Current,
                    &[("title", Some("Rust")), ("city", None)],
                ),
                item("/b", ItemStatus::Removed, &[("title", Some("Go"))]),
            ],
            "key,status,first_seen_run,first_seen_at,last_seen_run,last_seen_at,removed_run,removed_at,changes,city,title\r\n\
             /a,current,1,2026-01-01T00:01:00+00:00,2,2026-01-01T00:02:00+00:00,,,1,,Rust\r\n\
             /b,removed,1,2026-01-01T00:01:00+00:00,2,2026-01-01T00:02:00+00:00,3,\
             2026-01-01T00:03:00+00:00,1,,Go\r\n",
        );
    }

    #[test]
    fn page_text_a_spreadsheet_would_run_is_made_inert() {
        check(
            &[item(
                "=HYPERLINK(\"http://x.test\")",
                ItemStatus::Current,
                &[
                    ("a", Some("+SUM(A1)")),
                    ("b", Some("@cmd")),
                    ("c", Some("-5")),
                    ("d", Some("+1.5")),
                    ("e", Some("-1+2")),
                    ("f", Some("\tx")),
                    ("g", Some("a=b")),
                ],
            )],
            "key,status,first_seen_run,first_seen_at,last_seen_run,last_seen_at,removed_run,removed_at,changes,a,b,c,d,e,f,g\r\n\
             \"'=HYPERLINK(\"\"http://x.test\"\")\",current,1,2026-01-01T00:01:00+00:00,2,\
             2026-01-01T00:02:00+00:00,,,1,'+SUM(A1),'@cmd,-5,+1.5,'-1+2,'\tx,a=b\r\n",
        );
    }

    #[test]
    fn commas_quotes_and_line_breaks_are_quoted() {
        check(
            &[item(
                "k",
                ItemStatus::Current,
                &[("t", Some("a, \"b\"\nc")), ("key", Some("shadowed"))],
            )],
            "key,status,first_seen_run,first_seen_at,last_seen_run,last_seen_at,removed_run,removed_at,changes,t\r\n\
             k,current,1,2026-01-01T00:01:00+00:00,2,2026-01-01T00:02:00+00:00,,,1,\"a, \"\"b\"\"\nc\"\r\n",
        );
    }
}
