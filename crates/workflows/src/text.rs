//! Whitespace and case rules every workflow shares, so "the same text"
//! means the same thing in a diff, a trigger, a keyword filter and a check.
//!
//! Whitespace is any Unicode white space (including the no-break spaces
//! pages use around prices); a run of it counts as one space. Comparisons
//! that ignore case fold with Unicode lower-casing.

/// `text` with every run of white space replaced by one space, trimmed.
pub(crate) fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The non-blank lines of `text`, each collapsed.
pub(crate) fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(collapse)
        .filter(|line| !line.is_empty())
        .collect()
}

/// `text` collapsed and lower-cased, for case-insensitive containment.
pub(crate) fn fold(text: &str) -> String {
    collapse(text).to_lowercase()
}

/// Whether `folded_haystack` (already [`fold`]ed) contains `needle`, ignoring
/// case and differences in white space.
pub(crate) fn contains_folded(folded_haystack: &str, needle: &str) -> bool {
    folded_haystack.contains(&fold(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_every_kind_of_white_space() {
        let check =
            |input: &str, expected: &str| assert_eq!(collapse(input), expected, "{input:?}");
        check("  a   b  ", "a b");
        check("a\tb\r\nc", "a b c");
        check("1\u{a0}299,00\u{202f}€", "1 299,00 €");
        check("\u{2003}", "");
    }

    #[test]
    fn lines_drop_blank_ones() {
        assert_eq!(lines(" a \n\n  \t\n b  c\n"), ["a", "b c"]);
    }

    #[test]
    fn containment_ignores_case_and_spacing() {
        let hay = fold("Now  HIRING:\nSenior   Engineer");
        assert!(contains_folded(&hay, "hiring: senior engineer"));
        assert!(contains_folded(&hay, "SENIOR\tengineer"));
        assert!(!contains_folded(&hay, "junior"));
    }
}
