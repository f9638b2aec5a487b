//! Extraction and assertions over a parsed page. Pure, synchronous CPU work:
//! the engine calls it from `spawn_blocking`, never on the async threads.
//! Every walk over the tree checks the [`Budget`] as it goes, so a hostile
//! page cannot keep the thread busy past the job's end.
//!
//! Text is read the way a user would read it: text nodes in document order,
//! a break between block-level elements, `script`/`style`/`template` content
//! left out, whitespace collapsed to single spaces and trimmed.

use std::collections::BTreeMap;

use accord_model::{CssSelector, ExtractedValue, FieldSpec, Step};
use scraper::{ElementRef, Html, Node, Selector};

use crate::bounded::{self, Budget, Exceeded, PageLimits};
use crate::StepFailure;

/// A step that works on the current page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PageStep<'a> {
    Extract(&'a BTreeMap<String, FieldSpec>),
    Assert(Checks<'a>),
}

/// What an `assert` step requires of the page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checks<'a> {
    status: Option<u16>,
    text: Option<&'a str>,
    selector: Option<&'a CssSelector>,
}

impl<'a> PageStep<'a> {
    /// The page step `step` is, if it is one.
    pub(crate) fn of(step: &'a Step) -> Option<Self> {
        match step {
            Step::Extract { fields } => Some(Self::Extract(fields)),
            Step::Assert {
                status,
                text,
                selector,
                text_absent: None,
                selector_absent: None,
                max_load_ms: None,
                no_console_errors: false,
            } => Some(Self::Assert(Checks {
                status: *status,
                text: text.as_deref(),
                selector: selector.as_ref(),
            })),
            _ => None,
        }
    }
}

/// A parsed page and the status it was served with.
#[derive(Debug)]
pub(crate) struct Document {
    html: Html,
    status: u16,
    max_extracted_bytes: usize,
}

/// Elements visited between two budget checks.
const CHECK_EVERY: usize = 1024;

impl Document {
    pub(crate) fn parse(
        body: &str,
        status: u16,
        limits: &PageLimits,
        budget: &Budget<'_>,
    ) -> Result<Self, Exceeded> {
        Ok(Self {
            html: bounded::parse_document(body, limits, budget)?,
            status,
            max_extracted_bytes: limits.max_extracted_bytes,
        })
    }

    /// Runs one page step; extracted fields are added to `extracted`, a later
    /// field of the same name replacing an earlier one.
    pub(crate) fn apply(
        &self,
        step: PageStep<'_>,
        budget: &Budget<'_>,
        extracted: &mut BTreeMap<String, ExtractedValue>,
    ) -> Result<(), StepFailure> {
        match step {
            PageStep::Extract(fields) => {
                for (name, field) in fields {
                    let value = self.extract(field, budget)?;
                    extracted.insert(name.clone(), value);
                    let total: usize = extracted.values().map(extracted_bytes).sum();
                    if total > self.max_extracted_bytes {
                        return Err(Exceeded::Extracted(self.max_extracted_bytes).into());
                    }
                }
                Ok(())
            }
            PageStep::Assert(checks) => self.check(checks, budget),
        }
    }

    fn extract(
        &self,
        field: &FieldSpec,
        budget: &Budget<'_>,
    ) -> Result<ExtractedValue, StepFailure> {
        let Ok(accord_model::FieldSource::Css {
            selector,
            read: read_as,
            all,
        }) = field.source()
        else {
            return Err(StepFailure::Unsupported {
                step: 0,
                action: "extract",
            });
        };
        let read = |element: ElementRef<'_>| -> Result<Option<String>, Exceeded> {
            let value = match read_as {
                accord_model::ReadAs::Attribute(name) => {
                    element.value().attr(name).map(str::to_owned)
                }
                _ => Some(text_of(element, budget)?),
            };
            Ok(value.map(storable))
        };
        let selector = selector.compiled();
        if all {
            // Elements without the asked attribute are left out of lists.
            let mut values = Vec::new();
            let mut bytes = 0;
            for element in self.select(selector, budget) {
                if let Some(value) = read(element?)? {
                    bytes += value.len();
                    if bytes > self.max_extracted_bytes {
                        return Err(Exceeded::Extracted(self.max_extracted_bytes).into());
                    }
                    values.push(value);
                }
            }
            Ok(ExtractedValue::List(values))
        } else {
            let first = self.select(selector, budget).next().transpose()?;
            Ok(ExtractedValue::One(match first {
                Some(element) => read(element)?,
                None => None,
            }))
        }
    }

    /// Elements matching `selector` in document order, checking the budget
    /// every [`CHECK_EVERY`] elements.
    fn select<'d>(
        &'d self,
        selector: &'d Selector,
        budget: &'d Budget<'_>,
    ) -> impl Iterator<Item = Result<ElementRef<'d>, Exceeded>> + 'd {
        let mut visited = 0usize;
        self.html
            .root_element()
            .descendants()
            .filter_map(ElementRef::wrap)
            .filter_map(move |element| {
                visited += 1;
                if visited.is_multiple_of(CHECK_EVERY) {
                    if let Err(exceeded) = budget.check() {
                        return Some(Err(exceeded));
                    }
                }
                selector.matches(&element).then_some(Ok(element))
            })
            // Stop at the first error instead of checking again on every element.
            .scan(false, |failed, item| {
                if *failed {
                    return None;
                }
                *failed = item.is_err();
                Some(item)
            })
    }

    fn check(&self, checks: Checks<'_>, budget: &Budget<'_>) -> Result<(), StepFailure> {
        if let Some(expected) = checks.status {
            if expected != self.status {
                return Err(StepFailure::AssertFailed {
                    expected: format!("status {expected}"),
                    found: self.status.to_string(),
                });
            }
        }
        if let Some(expected) = checks.text {
            let needle = collapse_whitespace([expected]);
            let page = self.visible_text(budget)?;
            if !page.contains(&needle) {
                return Err(StepFailure::AssertFailed {
                    expected: format!("text {needle:?} in the page"),
                    found: format!("page text {:?}", snippet(&page)),
                });
            }
        }
        if let Some(selector) = checks.selector {
            if self
                .select(selector.compiled(), budget)
                .next()
                .transpose()?
                .is_none()
            {
                return Err(StepFailure::AssertFailed {
                    expected: format!("an element matching `{selector}`"),
                    found: "none".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The text of the body (of the whole document if it has none).
    fn visible_text(&self, budget: &Budget<'_>) -> Result<String, Exceeded> {
        let body = Selector::parse("body").expect("`body` is a valid selector");
        let root = self
            .html
            .select(&body)
            .next()
            .unwrap_or_else(|| self.html.root_element());
        text_of(root, budget)
    }
}

/// The text with any NUL replaced, as browsers do: no store can keep NUL in
/// text, and a result the control plane refuses could never be reported.
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

/// Bytes of text an extracted value holds.
fn extracted_bytes(value: &ExtractedValue) -> usize {
    match value {
        ExtractedValue::One(one) => one.as_ref().map_or(0, String::len),
        ExtractedValue::List(list) => list.iter().map(String::len).sum(),
        ExtractedValue::Records(records) => records
            .iter()
            .flat_map(|record| record.iter())
            .map(|(name, value)| name.len() + extracted_bytes(value))
            .sum(),
        ExtractedValue::Json(value) => serde_json::to_string(value).map_or(0, |text| text.len()),
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
fn text_of(element: ElementRef<'_>, budget: &Budget<'_>) -> Result<String, Exceeded> {
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
fn collapse_whitespace<'a>(pieces: impl IntoIterator<Item = &'a str>) -> String {
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
fn snippet(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    static RUNNING: AtomicBool = AtomicBool::new(false);

    fn budget() -> Budget<'static> {
        Budget::new(&PageLimits::default(), &RUNNING)
    }

    fn doc(html: &str) -> Document {
        Document::parse(html, 200, &PageLimits::default(), &budget()).unwrap()
    }

    fn field(selector: &str, attribute: Option<&str>, all: bool) -> FieldSpec {
        FieldSpec {
            selector: Some(CssSelector::parse(selector).unwrap()),
            attribute: attribute.map(str::to_owned),
            all,
            ..FieldSpec::default()
        }
    }

    fn one(text: &str) -> ExtractedValue {
        ExtractedValue::One(Some(text.to_owned()))
    }

    fn list(items: &[&str]) -> ExtractedValue {
        ExtractedValue::List(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn extracts_fields() {
        let check = |html: &str, field: FieldSpec, expected: ExtractedValue| {
            let got = doc(html).extract(&field, &budget()).unwrap();
            assert_eq!(got, expected, "{html} / {field:?}");
        };
        check(
            "<h1>  Hello \n\t world </h1>",
            field("h1", None, false),
            one("Hello world"),
        );
        check(
            "<p>a <b>bold</b>word</p>",
            field("p", None, false),
            one("a boldword"),
        );
        check(
            "<ul><li>A</li><li>B</li></ul>",
            field("ul", None, false),
            one("A B"),
        );
        check(
            "<p>x<script>var y;</script>z</p>",
            field("p", None, false),
            one("xz"),
        );
        check(
            "<p>a</p><p>b</p>",
            field("p", None, true),
            list(&["a", "b"]),
        );
        check(
            "<p>a</p>",
            field("h2", None, false),
            ExtractedValue::One(None),
        );
        check("<p>a</p>", field("h2", None, true), list(&[]));
        check(
            "<a href='/1'>1</a><a>2</a><a href='/3'>3</a>",
            field("a", Some("href"), true),
            list(&["/1", "/3"]),
        );
        check(
            "<a>2</a><a href='/3'>3</a>",
            field("a", Some("href"), false),
            ExtractedValue::One(None),
        );
        check(
            "<p>&amp; &lt;ok&gt;</p>",
            field("p", None, false),
            one("& <ok>"),
        );
        check(
            "<a title='a\0b'>x</a>",
            field("a", Some("title"), false),
            one("a\u{fffd}b"),
        );
        check(
            "<p>\u{a0}nbsp\u{a0}</p>",
            field("p", None, false),
            one("nbsp"),
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let html = format!(
            "{}deep{}",
            "<span>".repeat(50_000),
            "</span>".repeat(50_000)
        );
        let limits = PageLimits {
            max_depth: 100_000,
            ..PageLimits::default()
        };
        let doc = Document::parse(&html, 200, &limits, &budget()).unwrap();
        assert_eq!(doc.visible_text(&budget()).unwrap(), "deep");
    }

    #[test]
    fn extracted_data_is_bounded() {
        let limits = PageLimits {
            max_extracted_bytes: 100,
            ..PageLimits::default()
        };
        let html = "<p>0123456789</p>".repeat(20);
        let doc = Document::parse(&html, 200, &limits, &budget()).unwrap();
        let mut extracted = BTreeMap::new();
        let fields = BTreeMap::from([("p".to_owned(), field("p", None, true))]);
        let err = doc
            .apply(PageStep::Extract(&fields), &budget(), &mut extracted)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the page is too costly to process: the extracted data is larger than 100 bytes"
        );
        // Nested elements repeat their descendants' text: bounded as well.
        let nested = format!("{}x{}", "<div>".repeat(40), "</div>".repeat(40));
        let fields = BTreeMap::from([("d".to_owned(), field("div", None, true))]);
        let doc = Document::parse(&nested, 200, &limits, &budget()).unwrap();
        assert!(doc
            .apply(PageStep::Extract(&fields), &budget(), &mut BTreeMap::new())
            .is_ok());
        let many = "<div>".repeat(200) + &"x".repeat(10);
        let doc = Document::parse(&many, 200, &limits, &budget()).unwrap();
        assert!(doc
            .apply(PageStep::Extract(&fields), &budget(), &mut BTreeMap::new())
            .is_err());
    }

    #[test]
    fn a_stopped_job_stops_extraction() {
        let stopped = AtomicBool::new(true);
        let page = doc(&"<p>x</p>".repeat(5_000));
        let budget = Budget::new(&PageLimits::default(), &stopped);
        let err = page.extract(&field("p", None, true), &budget).unwrap_err();
        assert!(matches!(err, StepFailure::ProcessingCancelled), "{err}");
    }

    #[test]
    fn asserts_check_the_page() {
        let html = "<html><head><title>T</title><script>hidden()</script></head>\
                    <body><h1>Hello</h1><p>big   world</p><script>secret()</script></body></html>";
        let check = |status: Option<u16>,
                     text: Option<&str>,
                     selector: Option<&str>,
                     expected: Result<(), &str>| {
            let selector = selector.map(|s| CssSelector::parse(s).unwrap());
            let got = doc(html)
                .check(
                    Checks {
                        status,
                        text,
                        selector: selector.as_ref(),
                    },
                    &budget(),
                )
                .map_err(|err| err.to_string());
            assert_eq!(got, expected.map_err(str::to_owned));
        };
        check(Some(200), None, None, Ok(()));
        check(
            Some(404),
            None,
            None,
            Err("assert failed: expected status 404, got 200"),
        );
        check(None, Some("Hello big world"), None, Ok(()));
        check(None, Some("big\nworld"), None, Ok(()));
        check(
            None,
            Some("secret"),
            None,
            Err("assert failed: expected text \"secret\" in the page, got page text \"Hello big world\""),
        );
        check(
            None,
            Some("T Hello"),
            None,
            Err("assert failed: expected text \"T Hello\" in the page, got page text \"Hello big world\""),
        );
        check(None, None, Some("body > p"), Ok(()));
        check(
            None,
            None,
            Some("div.missing"),
            Err("assert failed: expected an element matching `div.missing`, got none"),
        );
        check(Some(200), Some("Hello"), Some("h1"), Ok(()));
    }

    #[test]
    fn snippets_are_cut() {
        assert_eq!(snippet("short"), "short");
        assert_eq!(snippet(&"é".repeat(300)), format!("{}...", "é".repeat(200)));
    }
}
