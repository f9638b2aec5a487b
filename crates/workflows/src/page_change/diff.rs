//! A line diff of two normalised texts: a unified diff for people and the
//! same hunks as data (with added and removed line counts) for programs.
//!
//! Line totals are always exact; the lines shown stop after
//! [`MAX_DIFF_LINES`] so a page that changed entirely does not store a copy
//! of itself in every outcome (the snapshots keep both texts).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use similar::{Algorithm, ChangeTag, DiffOp};
use utoipa::ToSchema;

/// Most lines (context included) the hunks of one diff show.
pub const MAX_DIFF_LINES: usize = 2_000;
/// Unchanged lines shown around each change.
const CONTEXT_LINES: usize = 3;
/// Myers' algorithm is quadratic on texts with nothing in common; past this
/// it settles for a correct but longer diff. Ordinary pages take
/// milliseconds, so the outcome does not depend on the machine's speed.
const DIFF_DEADLINE: Duration = Duration::from_secs(2);

/// What a line of a hunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Unchanged, shown for context.
    Context,
    Added,
    Removed,
}

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiffLine {
    pub kind: LineKind,
    pub text: String,
}

/// A run of changes with their context, as in a unified diff: lines
/// `old_start..old_start + old_lines` of the previous text became lines
/// `new_start..` of the current one (1-based; a start is the line before
/// when its count is 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Hunk {
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
    pub added: u32,
    pub removed: u32,
    pub lines: Vec<DiffLine>,
}

/// The difference between two texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TextDiff {
    /// Lines added, over the whole diff.
    pub added: u32,
    /// Lines removed, over the whole diff.
    pub removed: u32,
    /// The unified diff (`--- previous`, `+++ current`, `@@` hunks).
    pub unified: String,
    pub hunks: Vec<Hunk>,
    /// Lines were left out of `unified` and `hunks` past [`MAX_DIFF_LINES`].
    pub truncated: bool,
}

impl TextDiff {
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.removed == 0
    }
}

/// The line diff from `old` to `new`.
pub fn diff_texts(old: &str, new: &str) -> TextDiff {
    let diff = similar::TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .deadline(Instant::now() + DIFF_DEADLINE)
        .diff_lines(old, new);
    let (added, removed) = diff.ops().iter().fold((0, 0), |(a, r), op| {
        let (removed, added) = op_lens(op);
        (a + added, r + removed)
    });
    let mut out = TextDiff {
        added: count(added),
        removed: count(removed),
        unified: String::new(),
        hunks: Vec::new(),
        truncated: false,
    };
    if out.is_empty() {
        return out;
    }
    out.unified.push_str("--- previous\n+++ current\n");
    let mut shown = 0usize;
    for group in diff.grouped_ops(CONTEXT_LINES) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        if shown >= MAX_DIFF_LINES {
            out.truncated = true;
            break;
        }
        let (old_start, old_lines) = range(first.old_range().start, last.old_range().end);
        let (new_start, new_lines) = range(first.new_range().start, last.new_range().end);
        let mut hunk = Hunk {
            old_start,
            old_lines,
            new_start,
            new_lines,
            added: 0,
            removed: 0,
            lines: Vec::new(),
        };
        for op in &group {
            let (removed, added) = op_lens(op);
            hunk.added += count(added);
            hunk.removed += count(removed);
        }
        let _ = writeln!(
            out.unified,
            "@@ -{} +{} @@",
            header_range(old_start, old_lines),
            header_range(new_start, new_lines)
        );
        'lines: for op in &group {
            for change in diff.iter_changes(op) {
                if shown >= MAX_DIFF_LINES {
                    out.truncated = true;
                    break 'lines;
                }
                shown += 1;
                let (kind, sign) = match change.tag() {
                    ChangeTag::Equal => (LineKind::Context, ' '),
                    ChangeTag::Insert => (LineKind::Added, '+'),
                    ChangeTag::Delete => (LineKind::Removed, '-'),
                };
                let text = change.value().trim_end_matches(['\n', '\r']);
                let _ = writeln!(out.unified, "{sign}{text}");
                hunk.lines.push(DiffLine {
                    kind,
                    text: text.to_owned(),
                });
            }
        }
        out.hunks.push(hunk);
    }
    out
}

/// Lines an operation removes from the old text and adds to the new one.
fn op_lens(op: &DiffOp) -> (usize, usize) {
    match *op {
        DiffOp::Equal { .. } => (0, 0),
        DiffOp::Delete { old_len, .. } => (old_len, 0),
        DiffOp::Insert { new_len, .. } => (0, new_len),
        DiffOp::Replace {
            old_len, new_len, ..
        } => (old_len, new_len),
    }
}

/// A hunk's side as a unified diff numbers it: 1-based start and length,
/// the start being the line before when the length is 0.
fn range(start: usize, end: usize) -> (u32, u32) {
    let len = end.saturating_sub(start);
    let first = if len == 0 { start } else { start + 1 };
    (count(first), count(len))
}

/// `start,len`, or `start` alone for one line, as `diff -u` writes it.
fn header_range(start: u32, len: u32) -> String {
    if len == 1 {
        start.to_string()
    } else {
        format!("{start},{len}")
    }
}

/// Line counts fit a u32: a page has far fewer than 4 billion lines.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> String {
        text.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn equal_texts_have_an_empty_diff() {
        let text = lines(&["a", "b"]);
        let diff = diff_texts(&text, &text);
        assert!(diff.is_empty());
        assert_eq!(diff.unified, "");
        assert!(diff.hunks.is_empty());
    }

    #[test]
    fn a_replaced_line_reads_like_diff_u() {
        let old = lines(&[
            "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        ]);
        let new = lines(&[
            "one", "two", "three", "four", "FIVE", "six", "seven", "eight", "nine", "ten",
        ]);
        let diff = diff_texts(&old, &new);
        insta::assert_snapshot!(diff.unified, @r"
        --- previous
        +++ current
        @@ -2,8 +2,9 @@
         two
         three
         four
        -five
        +FIVE
         six
         seven
         eight
         nine
        +ten
        ");
        assert_eq!((diff.added, diff.removed, diff.truncated), (2, 1, false));
    }

    #[test]
    fn distant_changes_are_separate_hunks() {
        let old: Vec<String> = (1..=20).map(|i| format!("line {i}")).collect();
        let mut new = old.clone();
        new[1] = "line two".to_owned();
        new.remove(17);
        let as_text = |v: &[String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
        let diff = diff_texts(&as_text(&old), &as_text(&new));
        insta::assert_json_snapshot!(diff.hunks);
    }

    #[test]
    fn additions_to_an_empty_text_start_at_line_zero() {
        let diff = diff_texts("", &lines(&["first"]));
        assert_eq!(
            diff.unified,
            "--- previous\n+++ current\n@@ -0,0 +1 @@\n+first\n"
        );
        assert_eq!((diff.hunks[0].old_start, diff.hunks[0].old_lines), (0, 0));
    }

    #[test]
    fn long_diffs_are_cut_but_counted() {
        let old: String = (0..3_000).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..3_000).map(|i| format!("new {i}\n")).collect();
        let diff = diff_texts(&old, &new);
        assert_eq!(
            (diff.added, diff.removed, diff.truncated),
            (3_000, 3_000, true)
        );
        let shown: usize = diff.hunks.iter().map(|h| h.lines.len()).sum();
        assert_eq!(shown, MAX_DIFF_LINES);
        // Header lines plus one hunk header plus the lines shown.
        assert_eq!(diff.unified.lines().count(), 3 + MAX_DIFF_LINES);
    }
}
