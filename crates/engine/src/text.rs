//! Page text as a user reads it: text nodes in document order, a break
//! between block-level elements, `script`/`style`/`template` content left
//! out, whitespace collapsed to single spaces and trimmed.
//!
//! The walks are iterative (pages can nest deeper than a thread's stack
//! allows) and check the [`Budget`] as they go. Deliberately does not
//! select elements (extraction does).

use scraper::{ElementRef, Node};

use crate::bounded::{Budget, Exceeded};

/// Nodes visited between two budget checks.
pub(crate) const CHECK_EVERY: usize = 1024;

/// The text with any NUL replaced, as browsers do: no store can keep NUL in
/// text, and a result the control plane refuses could never be reported.
pub(crate) fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

/// Elements whose content is never shown as text.
const HIDDEN: &[&str] = &["script", "style", "template", "noscript", "head"];

/// Elements that start a new line when rendered, so their words must not run
/// into their neighbours' (`<li>A</li><li>B</li>` reads "A B", not "AB").
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "option",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "ul",
];

/// Work left while walking a tree: a node to visit or a block boundary.
enum Visit<N> {
    Node(N),
    Break,
}

/// The readable text of an element, whitespace collapsed.
///
/// The walk is iterative (pages can nest deeper than a thread's stack
/// allows) and checks the budget as it goes.
pub(crate) fn text_of(element: ElementRef<'_>, budget: &Budget<'_>) -> Result<String, Exceeded> {
    let mut pieces: Vec<&str> = Vec::new();
    let mut work = vec![Visit::Node(*element)];
    let mut visited = 0usize;
    while let Some(next) = work.pop() {
        visited += 1;
        if visited.is_multiple_of(CHECK_EVERY) {
            budget.check()?;
        }
        let node = match next {
            Visit::Break => {
                pieces.push(" ");
                continue;
            }
            Visit::Node(node) => node,
        };
        match node.value() {
            Node::Text(text) => pieces.push(text),
            Node::Element(el) if node != *element && HIDDEN.contains(&el.name()) => {}
            Node::Element(el) => {
                let block = BLOCKS.contains(&el.name());
                if block {
                    work.push(Visit::Break);
                }
                work.extend(node.children().rev().map(Visit::Node));
                if block {
                    work.push(Visit::Break);
                }
            }
            _ => {}
        }
    }
    Ok(collapse_whitespace(pieces))
}

/// Joins the pieces, then collapses every run of whitespace to one space and
/// trims both ends.
pub(crate) fn collapse_whitespace<'a>(pieces: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut pending_space = false;
    for piece in pieces {
        for c in piece.chars() {
            if c.is_whitespace() {
                pending_space = !out.is_empty();
            } else {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(c);
            }
        }
    }
    out
}

/// The start of a long text, for error messages.
pub(crate) fn snippet(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use scraper::{Html, Selector};

    use super::*;
    use crate::PageLimits;

    static RUNNING: AtomicBool = AtomicBool::new(false);

    fn check(html: &str, selector: &str, expected: &str) {
        let budget = Budget::new(&PageLimits::default(), &RUNNING);
        let doc = Html::parse_document(html);
        let selector = Selector::parse(selector).unwrap();
        let element = doc.select(&selector).next().unwrap();
        assert_eq!(text_of(element, &budget).unwrap(), expected, "{html}");
    }

    #[test]
    fn text_reads_as_a_user_sees_it() {
        check("<h1>  Hello \n\t world </h1>", "h1", "Hello world");
        check("<p>a <b>bold</b>word</p>", "p", "a boldword");
        check("<ul><li>A</li><li>B</li></ul>", "ul", "A B");
        check("<p>x<script>var y;</script>z</p>", "p", "xz");
        check("<p>&amp; &lt;ok&gt;</p>", "p", "& <ok>");
        check("<p>\u{a0}nbsp\u{a0}</p>", "p", "nbsp");
        check(
            "<div><style>p{}</style><p>a</p><p>b</p></div>",
            "div",
            "a b",
        );
    }

    #[test]
    fn storable_text_has_no_nul() {
        assert_eq!(storable("a\0b".to_owned()), "a\u{fffd}b");
        assert_eq!(storable("ab".to_owned()), "ab");
    }

    #[test]
    fn snippets_are_cut() {
        assert_eq!(snippet("short"), "short");
        assert_eq!(snippet(&"é".repeat(300)), format!("{}...", "é".repeat(200)));
    }
}
