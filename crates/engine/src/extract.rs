//! What the HTTP engine does with a loaded page: extraction (CSS text, inner
//! HTML or attributes, nested `items` records, JSON Pointer and JSONPath
//! over a JSON body), assertions, and following the link a `download`
//! step points at. Pure, synchronous CPU work: the engine calls it from
//! `spawn_blocking`, never on the async threads.
//!
//! The page is parsed lazily, once, as HTML or as JSON depending on what
//! the steps ask for, within the page limits. Every walk over the tree
//! checks the [`Budget`] as it goes, and every extracted value counts
//! against the extraction bound, so a hostile page cannot keep the thread
//! busy past the job's end nor fill its memory.
//!
//! Deliberately does not fetch anything (the engine does) nor keep
//! artifacts.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io::Write;

use accord_model::{
    CssSelector, DownloadSource, ExtractedValue, FieldSource, FieldSpec, ItemField, ItemsSpec,
    ReadAs, Step, TargetUrl,
};
use bytes::Bytes;
use scraper::{ElementRef, Html, Selector};
use url::Url;

use crate::bounded::{self, Budget, Exceeded, PageLimits};
use crate::text::{collapse_whitespace, snippet, storable, text_of, CHECK_EVERY};
use crate::StepFailure;

/// A loaded page, as the blocking work sees it.
#[derive(Debug, Clone)]
pub(crate) struct PageData {
    /// The body as served.
    pub(crate) raw: Bytes,
    pub(crate) status: u16,
    /// Where the page was loaded from, after redirects (links resolve
    /// against it); `None` for a page given without one.
    pub(crate) final_url: Option<Url>,
    /// How long the `navigate` that loaded it took.
    pub(crate) load_ms: u64,
}

/// What one step did on the page.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Fields an `extract` step read, in the order read.
    Extracted(Vec<(String, ExtractedValue)>),
    /// An `assert` step's checks all passed.
    Checked,
    /// A `download` step by selector: the link to fetch.
    Follow(TargetUrl),
    /// A `follow` step: the page to go to, or `None` when an optional
    /// link is missing (the job ends there).
    Go(Option<TargetUrl>),
    /// A step with nothing to do on the parsed page (`capture_network`, a
    /// `download` by URL, `save_html`): the engine does it.
    Later,
}

/// A page and its lazily parsed forms.
#[derive(Debug)]
pub(crate) struct Document<'p> {
    page: &'p PageData,
    limits: PageLimits,
    html: OnceCell<Html>,
    json: OnceCell<serde_json::Value>,
    text: OnceCell<String>,
    /// Bytes extracted from this page so far.
    extracted_bytes: usize,
}

impl<'p> Document<'p> {
    pub(crate) fn new(page: &'p PageData, limits: &PageLimits) -> Self {
        Self {
            page,
            limits: *limits,
            html: OnceCell::new(),
            json: OnceCell::new(),
            text: OnceCell::new(),
            extracted_bytes: 0,
        }
    }

    /// Runs one step on the page.
    pub(crate) fn run(&mut self, step: &Step, budget: &Budget<'_>) -> Result<Outcome, StepFailure> {
        match step {
            Step::Extract { fields } => {
                let mut values = Vec::with_capacity(fields.len());
                for (name, field) in fields {
                    let value = self.extract(field, budget)?;
                    self.count(name.len() + extracted_bytes(&value))?;
                    values.push((name.clone(), value));
                }
                Ok(Outcome::Extracted(values))
            }
            Step::Assert {
                no_console_errors: true,
                ..
            } => Err(StepFailure::Unsupported { engine: "http" }),
            Step::Assert {
                status,
                text,
                text_absent,
                selector,
                selector_absent,
                max_load_ms,
                no_console_errors: false,
            } => {
                let checks = Checks {
                    status: *status,
                    text: text.as_deref(),
                    text_absent: text_absent.as_deref(),
                    selector: selector.as_ref(),
                    selector_absent: selector_absent.as_ref(),
                    max_load_ms: *max_load_ms,
                };
                self.check(&checks, budget).map(|()| Outcome::Checked)
            }
            Step::Download { .. } => match step.download_source().expect("a download step") {
                Ok(DownloadSource::Element(selector)) => {
                    self.link(selector, budget).map(Outcome::Follow)
                }
                Ok(DownloadSource::Url(_)) => Ok(Outcome::Later),
                Err(err) => Err(StepFailure::InvalidStep(err.to_string())),
            },
            Step::Follow { selector, optional } => match self.link(selector, budget) {
                Ok(url) => Ok(Outcome::Go(Some(url))),
                Err(StepFailure::NoElement { .. } | StepFailure::NoLink { .. }) if *optional => {
                    Ok(Outcome::Go(None))
                }
                Err(failure) => Err(failure),
            },
            Step::Navigate { .. } | Step::CaptureNetwork { .. } | Step::SaveHtml { .. } => {
                Ok(Outcome::Later)
            }
            Step::WaitFor { .. }
            | Step::Click { .. }
            | Step::Fill { .. }
            | Step::Select { .. }
            | Step::Check { .. }
            | Step::Uncheck { .. }
            | Step::Press { .. }
            | Step::Submit { .. }
            | Step::Scroll { .. }
            | Step::Hover { .. }
            | Step::Screenshot { .. }
            | Step::Evaluate { .. } => Err(StepFailure::Unsupported { engine: "http" }),
        }
    }

    /// Adds `bytes` to what this page has given, failing past the bound.
    fn count(&mut self, bytes: usize) -> Result<(), Exceeded> {
        self.extracted_bytes += bytes;
        if self.extracted_bytes > self.limits.max_extracted_bytes {
            return Err(Exceeded::Extracted(self.limits.max_extracted_bytes));
        }
        Ok(())
    }

    /// The page parsed as HTML (once, within the limits).
    fn html(&self, budget: &Budget<'_>) -> Result<&Html, Exceeded> {
        if let Some(html) = self.html.get() {
            return Ok(html);
        }
        // Pages in other charsets keep their ASCII; the rest is replaced.
        let body = String::from_utf8_lossy(&self.page.raw);
        let html = bounded::parse_document(&body, &self.limits, budget)?;
        Ok(self.html.get_or_init(|| html))
    }

    /// The page parsed as JSON (once). serde_json refuses nesting past 128
    /// levels, so the parse is bounded by the body's size.
    fn json(&self) -> Result<&serde_json::Value, StepFailure> {
        if let Some(json) = self.json.get() {
            return Ok(json);
        }
        let json = serde_json::from_slice(&self.page.raw).map_err(|err| StepFailure::NotJson {
            detail: err.to_string(),
        })?;
        Ok(self.json.get_or_init(|| json))
    }

    fn extract(
        &mut self,
        field: &FieldSpec,
        budget: &Budget<'_>,
    ) -> Result<ExtractedValue, StepFailure> {
        let source = field
            .source()
            .map_err(|err| StepFailure::InvalidStep(err.to_string()))?;
        let max = self.limits.max_extracted_bytes;
        match source {
            FieldSource::Css {
                selector,
                read,
                all,
            } => {
                let root = self.html(budget)?.root_element();
                Ok(read_field(
                    root,
                    Scope::Document,
                    selector,
                    read,
                    all,
                    max,
                    budget,
                )?)
            }
            FieldSource::Items(items) => self.items(items, budget),
            FieldSource::JsonPointer(pointer) => {
                let found = self.json()?.pointer(pointer.as_str());
                match found {
                    Some(value) => bounded_clone(value, max),
                    None => Ok(ExtractedValue::One(None)),
                }
            }
            FieldSource::JsonPath { query, all } => {
                let nodes = query.compiled().query(self.json()?);
                if all {
                    let mut matches = Vec::with_capacity(nodes.len());
                    let mut bytes = 0;
                    for (seen, node) in nodes.iter().enumerate() {
                        if seen.is_multiple_of(CHECK_EVERY) {
                            budget.check()?;
                        }
                        bytes += json_size(node, max.saturating_sub(bytes))?;
                        matches.push((*node).clone());
                    }
                    Ok(ExtractedValue::from_json(serde_json::Value::Array(matches)))
                } else {
                    match nodes.first() {
                        Some(value) => bounded_clone(value, max),
                        None => Ok(ExtractedValue::One(None)),
                    }
                }
            }
        }
    }

    /// One record per element matching the items' selector.
    fn items(
        &mut self,
        items: &ItemsSpec,
        budget: &Budget<'_>,
    ) -> Result<ExtractedValue, StepFailure> {
        let max = self.limits.max_extracted_bytes;
        let root = self.html(budget)?.root_element();
        let mut records = Vec::new();
        let mut bytes = 0;
        for element in select(root, Scope::Document, items.selector.compiled(), budget) {
            let element = element?;
            let mut record = BTreeMap::new();
            for (name, field) in &items.fields {
                let value = read_item_field(element, field, max, budget)?;
                bytes += name.len() + extracted_bytes(&value);
                if bytes > max {
                    return Err(Exceeded::Extracted(max).into());
                }
                record.insert(name.clone(), value);
            }
            records.push(record);
        }
        Ok(ExtractedValue::records(records))
    }

    fn check(&self, checks: &Checks<'_>, budget: &Budget<'_>) -> Result<(), StepFailure> {
        if let Some(expected) = checks.status {
            if expected != self.page.status {
                return Err(StepFailure::AssertFailed {
                    expected: format!("status {expected}"),
                    found: self.page.status.to_string(),
                });
            }
        }
        if let Some(max) = checks.max_load_ms {
            if self.page.load_ms > max {
                return Err(StepFailure::AssertFailed {
                    expected: format!("the page loaded within {max} ms"),
                    found: format!("{} ms", self.page.load_ms),
                });
            }
        }
        if let Some(expected) = checks.text {
            let needle = collapse_whitespace([expected]);
            let page = self.visible_text(budget)?;
            if !page.contains(&needle) {
                return Err(StepFailure::AssertFailed {
                    expected: format!("text {needle:?} in the page"),
                    found: format!("page text {:?}", snippet(page)),
                });
            }
        }
        if let Some(unwanted) = checks.text_absent {
            let needle = collapse_whitespace([unwanted]);
            let page = self.visible_text(budget)?;
            if let Some(at) = page.find(&needle) {
                return Err(StepFailure::AssertFailed {
                    expected: format!("no text {needle:?} in the page"),
                    found: format!("it in {:?}", snippet(around(page, at))),
                });
            }
        }
        if let Some(selector) = checks.selector {
            if self.first(selector, budget)?.is_none() {
                return Err(StepFailure::AssertFailed {
                    expected: format!("an element matching `{selector}`"),
                    found: "none".to_owned(),
                });
            }
        }
        if let Some(selector) = checks.selector_absent {
            if let Some(element) = self.first(selector, budget)? {
                return Err(StepFailure::AssertFailed {
                    expected: format!("no element matching `{selector}`"),
                    found: format!("<{}>", element.value().name()),
                });
            }
        }
        Ok(())
    }

    fn first<'s>(
        &'s self,
        selector: &'s CssSelector,
        budget: &'s Budget<'_>,
    ) -> Result<Option<ElementRef<'s>>, Exceeded> {
        let root = self.html(budget)?.root_element();
        select(root, Scope::Document, selector.compiled(), budget)
            .next()
            .transpose()
    }

    /// The text of the body (of the whole document if it has none), once.
    fn visible_text(&self, budget: &Budget<'_>) -> Result<&str, Exceeded> {
        if let Some(text) = self.text.get() {
            return Ok(text);
        }
        let html = self.html(budget)?;
        let body = Selector::parse("body").expect("`body` is a valid selector");
        let root = html
            .select(&body)
            .next()
            .unwrap_or_else(|| html.root_element());
        let text = text_of(root, budget)?;
        Ok(self.text.get_or_init(|| text))
    }

    /// The absolute URL the first element matching `selector` links to
    /// (its `href`, else its `src`), resolved like a browser would: against
    /// the document's `<base href>` if any, else the page's URL.
    fn link(&self, selector: &CssSelector, budget: &Budget<'_>) -> Result<TargetUrl, StepFailure> {
        let element = self
            .first(selector, budget)?
            .ok_or_else(|| StepFailure::NoElement {
                selector: selector.to_string(),
            })?;
        let link = element
            .value()
            .attr("href")
            .or_else(|| element.value().attr("src"))
            .map(str::trim)
            .ok_or_else(|| StepFailure::NoLink {
                selector: selector.to_string(),
            })?;
        let bad = || StepFailure::BadLink {
            link: snippet(link),
        };
        let base = match &self.page.final_url {
            Some(page_url) => {
                let base_href = Selector::parse("base[href]").expect("a valid selector");
                let declared = self
                    .html(budget)?
                    .select(&base_href)
                    .next()
                    .and_then(|base| base.value().attr("href"))
                    .and_then(|href| page_url.join(href.trim()).ok());
                Some(declared.unwrap_or_else(|| page_url.clone()))
            }
            None => None,
        };
        let url = match base {
            Some(base) => base.join(link),
            None => Url::parse(link),
        }
        .map_err(|_| bad())?;
        TargetUrl::from_url(url).map_err(|_| bad())
    }
}

/// What an `assert` step requires of the page.
#[derive(Debug, Clone, Copy)]
struct Checks<'a> {
    status: Option<u16>,
    text: Option<&'a str>,
    text_absent: Option<&'a str>,
    selector: Option<&'a CssSelector>,
    selector_absent: Option<&'a CssSelector>,
    max_load_ms: Option<u64>,
}

/// Whether a selection covers the whole document, or the inside of one
/// element (a record): then the element itself is not a candidate and
/// `:scope` names it.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    Document,
    Inside(ElementRef<'a>),
}

/// Elements under `root` matching `selector`, in document order, checking
/// the budget every [`CHECK_EVERY`] elements and stopping at its first
/// error.
fn select<'d>(
    root: ElementRef<'d>,
    scope: Scope<'d>,
    selector: &'d Selector,
    budget: &'d Budget<'_>,
) -> impl Iterator<Item = Result<ElementRef<'d>, Exceeded>> + 'd {
    let mut visited = 0usize;
    let skip = usize::from(matches!(scope, Scope::Inside(_)));
    root.descendants()
        .skip(skip)
        .filter_map(ElementRef::wrap)
        .filter_map(move |element| {
            visited += 1;
            if visited.is_multiple_of(CHECK_EVERY) {
                if let Err(exceeded) = budget.check() {
                    return Some(Err(exceeded));
                }
            }
            let matched = match scope {
                Scope::Document => selector.matches(&element),
                Scope::Inside(item) => selector.matches_with_scope(&element, Some(item)),
            };
            matched.then_some(Ok(element))
        })
        .scan(false, |failed, item| {
            if *failed {
                return None;
            }
            *failed = item.is_err();
            Some(item)
        })
}

/// Reads what `read` says from one element; `None` when it lacks the
/// asked attribute.
fn read_element(
    element: ElementRef<'_>,
    read: ReadAs<'_>,
    budget: &Budget<'_>,
) -> Result<Option<String>, Exceeded> {
    let value = match read {
        ReadAs::Text => Some(text_of(element, budget)?),
        ReadAs::Html => Some(element.inner_html()),
        ReadAs::Attribute(name) => element.value().attr(name).map(str::to_owned),
    };
    Ok(value.map(storable))
}

/// A CSS field: the first match (or `null`), or every match with `all`
/// (elements without the asked attribute are left out of lists).
fn read_field(
    root: ElementRef<'_>,
    scope: Scope<'_>,
    selector: &CssSelector,
    read: ReadAs<'_>,
    all: bool,
    max_bytes: usize,
    budget: &Budget<'_>,
) -> Result<ExtractedValue, Exceeded> {
    let mut matches = select(root, scope, selector.compiled(), budget);
    if !all {
        return Ok(ExtractedValue::One(match matches.next().transpose()? {
            Some(element) => read_element(element, read, budget)?,
            None => None,
        }));
    }
    let mut values = Vec::new();
    let mut bytes = 0;
    for element in matches {
        if let Some(value) = read_element(element?, read, budget)? {
            bytes += value.len();
            if bytes > max_bytes {
                return Err(Exceeded::Extracted(max_bytes));
            }
            values.push(value);
        }
    }
    Ok(ExtractedValue::List(values))
}

/// A record's field: inside the record's element, or the element itself
/// when the field has no selector.
fn read_item_field(
    item: ElementRef<'_>,
    field: &ItemField,
    max_bytes: usize,
    budget: &Budget<'_>,
) -> Result<ExtractedValue, StepFailure> {
    let read = field
        .read()
        .map_err(|err| StepFailure::InvalidStep(err.to_string()))?;
    let value = match &field.selector {
        Some(selector) => read_field(
            item,
            Scope::Inside(item),
            selector,
            read,
            field.all,
            max_bytes,
            budget,
        )?,
        None => {
            let value = read_element(item, read, budget)?;
            if field.all {
                ExtractedValue::List(value.into_iter().collect())
            } else {
                ExtractedValue::One(value)
            }
        }
    };
    Ok(value)
}

/// A copy of a JSON value as an extracted value, refused when its JSON text
/// would pass `max_bytes` (checked before anything is copied).
fn bounded_clone(
    value: &serde_json::Value,
    max_bytes: usize,
) -> Result<ExtractedValue, StepFailure> {
    json_size(value, max_bytes)?;
    Ok(ExtractedValue::from_json(value.clone()))
}

/// The length of `value`'s JSON text, stopping as soon as it passes `max`.
fn json_size(value: &serde_json::Value, max: usize) -> Result<usize, Exceeded> {
    struct Counter {
        written: usize,
        max: usize,
    }
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written += buf.len();
            if self.written > self.max {
                return Err(std::io::Error::other("past the bound"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, max };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => Ok(counter.written),
        Err(_) => Err(Exceeded::Extracted(max)),
    }
}

/// Bytes an extracted value holds: its text, or its JSON text.
pub(crate) fn extracted_bytes(value: &ExtractedValue) -> usize {
    match value {
        ExtractedValue::One(one) => one.as_ref().map_or(0, String::len),
        ExtractedValue::List(list) => list.iter().map(String::len).sum(),
        ExtractedValue::Records(records) => records
            .iter()
            .flat_map(|record| record.iter())
            .map(|(name, value)| name.len() + extracted_bytes(value))
            .sum(),
        ExtractedValue::Json(value) => json_size(value, usize::MAX).unwrap_or(usize::MAX),
    }
}

/// The text around byte `at` of `text`, for a message.
fn around(text: &str, at: usize) -> &str {
    let mut start = at.saturating_sub(40);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    &text[start..]
}

/// A page served at `https://x.test/dir/page` in 120 ms, for tests.
#[cfg(test)]
fn page(html: &str) -> PageData {
    PageData {
        raw: Bytes::copy_from_slice(html.as_bytes()),
        status: 200,
        final_url: Some(Url::parse("https://x.test/dir/page").unwrap()),
        load_ms: 120,
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

    fn step(json: &str) -> Step {
        serde_json::from_str(json).unwrap_or_else(|err| panic!("{json}: {err}"))
    }

    /// Runs one extract step of one field `spec` on `body`.
    fn extract(body: &str, spec: &str) -> Result<ExtractedValue, String> {
        let page = page(body);
        let mut doc = Document::new(&page, &PageLimits::default());
        let step = step(&format!(
            r#"{{"action":"extract","fields":{{"f":{spec}}}}}"#
        ));
        match doc.run(&step, &budget()).map_err(|err| err.to_string())? {
            Outcome::Extracted(mut values) => Ok(values.remove(0).1),
            other => panic!("{other:?}"),
        }
    }

    fn check(body: &str, spec: &str, expected: serde_json::Value) {
        let got = extract(body, spec).unwrap_or_else(|err| panic!("{spec}: {err}"));
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            expected,
            "{spec} on {body}"
        );
        assert_eq!(
            got,
            ExtractedValue::from_json(expected),
            "canonical: {spec}"
        );
    }

    fn check_err(body: &str, spec: &str, expected: &str) {
        let err = extract(body, spec).expect_err(spec);
        assert!(err.contains(expected), "{spec}: {err}");
    }

    use serde_json::json;

    #[test]
    fn css_fields() {
        check(
            "<h1>  Hello \n world </h1>",
            r#"{"selector":"h1"}"#,
            json!("Hello world"),
        );
        check(
            "<p>a</p><p>b</p>",
            r#"{"selector":"p","all":true}"#,
            json!(["a", "b"]),
        );
        check("<p>a</p>", r#"{"selector":"h2"}"#, json!(null));
        check("<p>a</p>", r#"{"selector":"h2","all":true}"#, json!([]));
        check(
            "<a href='/1'>1</a><a>2</a><a href='/3'>3</a>",
            r#"{"selector":"a","attribute":"href","all":true}"#,
            json!(["/1", "/3"]),
        );
        check(
            "<a>2</a><a href='/3'>3</a>",
            r#"{"selector":"a","attribute":"href"}"#,
            json!(null),
        );
        check(
            "<a title='a\0b'>x</a>",
            r#"{"selector":"a","attribute":"title"}"#,
            json!("a\u{fffd}b"),
        );
        check(
            "<div id=x><b>bold</b> &amp; <i>it</i></div>",
            r##"{"selector":"#x","html":true}"##,
            json!("<b>bold</b> &amp; <i>it</i>"),
        );
        check(
            "<ul><li><b>1</b></li><li>2</li></ul>",
            r#"{"selector":"li","html":true,"all":true}"#,
            json!(["<b>1</b>", "2"]),
        );
    }

    #[test]
    fn items_are_records() {
        let board = r#"<ul>
            <li class="job" data-id="7"><a href="/jobs/7">Rust engineer</a><span class="loc">Remote</span>
                <span class="tag">rust</span><span class="tag">async</span></li>
            <li class="job" data-id="8"><a href="/jobs/8">SRE</a></li>
        </ul><p class="job">outside</p>"#;
        check(
            board,
            r#"{"items":{"selector":"li.job","fields":{
                "id":{"attribute":"data-id"},
                "title":{"selector":"a"},
                "link":{"selector":"a","attribute":"href"},
                "loc":{"selector":".loc"},
                "tags":{"selector":".tag","all":true}}}}"#,
            json!([
                {"id": "7", "title": "Rust engineer", "link": "/jobs/7", "loc": "Remote", "tags": ["rust", "async"]},
                {"id": "8", "title": "SRE", "link": "/jobs/8", "loc": null, "tags": []}
            ]),
        );
        check(
            board,
            r#"{"items":{"selector":"table tr","fields":{"x":{"selector":"td"}}}}"#,
            json!([]),
        );
        // Selectors inside a record do not reach its siblings nor the record itself.
        check(
            "<div class=r><div class=r>inner</div></div>",
            r#"{"items":{"selector":"body > div.r","fields":{"nested":{"selector":"div.r","all":true},"html":{"html":true}}}}"#,
            json!([{"nested": ["inner"], "html": "<div class=\"r\">inner</div>"}]),
        );
        check(
            "<ul><li><b>a</b></li></ul>",
            r#"{"items":{"selector":"li","fields":{"b":{"selector":":scope > b"}}}}"#,
            json!([{"b": "a"}]),
        );
    }

    #[test]
    fn json_sources() {
        let body = r#"{"total": 2, "jobs": [{"title": "A", "salary": 100, "remote": true},
                       {"title": "B", "tags": ["x"]}], "meta": {"page": 1}, "s": "text"}"#;
        check(body, r#"{"json_pointer":"/total"}"#, json!(2));
        check(body, r#"{"json_pointer":"/jobs/1/title"}"#, json!("B"));
        check(body, r#"{"json_pointer":"/meta"}"#, json!({"page": 1}));
        check(body, r#"{"json_pointer":"/missing"}"#, json!(null));
        check(body, r#"{"json_pointer":"/s"}"#, json!("text"));
        check(body, r#"{"jsonpath":"$.jobs[*].title"}"#, json!("A"));
        check(
            body,
            r#"{"jsonpath":"$.jobs[*].title","all":true}"#,
            json!(["A", "B"]),
        );
        check(
            body,
            r#"{"jsonpath":"$.jobs[?@.salary > 50].title","all":true}"#,
            json!(["A"]),
        );
        check(body, r#"{"jsonpath":"$.nothing[*]","all":true}"#, json!([]));
        check(body, r#"{"jsonpath":"$.nothing"}"#, json!(null));
        check(
            body,
            r#"{"jsonpath":"$.jobs[*]","all":true}"#,
            json!([{"title": "A", "salary": 100, "remote": true}, {"title": "B", "tags": ["x"]}]),
        );
        check(body, r#"{"jsonpath":"$..page","all":true}"#, json!([1]));
        check_err(
            "<html>not json</html>",
            r#"{"json_pointer":"/a"}"#,
            "the page is not JSON",
        );
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        check_err(
            &deep,
            r#"{"json_pointer":""}"#,
            "the page is not JSON: recursion limit exceeded",
        );
    }

    #[test]
    fn json_values_are_bounded_before_they_are_copied() {
        let limits = PageLimits {
            max_extracted_bytes: 100,
            ..PageLimits::default()
        };
        let body = format!(
            r#"{{"big": "{}", "list": [{}]}}"#,
            "x".repeat(200),
            vec!["1"; 80].join(",")
        );
        let page = page(&body);
        for spec in [
            r#"{"json_pointer":"/big"}"#,
            r#"{"json_pointer":""}"#,
            r#"{"jsonpath":"$.list[*]","all":true}"#,
            r#"{"jsonpath":"$..*","all":true}"#,
        ] {
            let mut doc = Document::new(&page, &limits);
            let step = step(&format!(
                r#"{{"action":"extract","fields":{{"f":{spec}}}}}"#
            ));
            let err = doc.run(&step, &budget()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "the page is too costly to process: the extracted data is larger than 100 bytes",
                "{spec}"
            );
        }
    }

    #[test]
    fn extracted_data_is_bounded_per_page() {
        let limits = PageLimits {
            max_extracted_bytes: 100,
            ..PageLimits::default()
        };
        let run = |html: &str, spec: &str| {
            let page = page(html);
            let mut doc = Document::new(&page, &limits);
            doc.run(
                &step(&format!(
                    r#"{{"action":"extract","fields":{{"f":{spec}}}}}"#
                )),
                &budget(),
            )
            .map(|_| ())
            .map_err(|err| err.to_string())
        };
        let too_much = Err(
            "the page is too costly to process: the extracted data is larger than 100 bytes"
                .to_owned(),
        );
        assert_eq!(
            run(
                &"<p>0123456789</p>".repeat(20),
                r#"{"selector":"p","all":true}"#
            ),
            too_much
        );
        assert_eq!(
            run(
                &"<p>0123456789</p>".repeat(20),
                r#"{"selector":"p","html":true,"all":true}"#
            ),
            too_much
        );
        assert_eq!(
            run(
                &"<li>0123456789</li>".repeat(20),
                r#"{"items":{"selector":"li","fields":{"t":{}}}}"#
            ),
            too_much
        );
        assert_eq!(
            run(
                &"<li><b>0123456789</b></li>".repeat(20),
                r#"{"items":{"selector":"li","fields":{"t":{"selector":"b","all":true}}}}"#
            ),
            too_much
        );
        // Nested elements repeat their descendants' text: bounded as well.
        let nested = format!("{}x{}", "<div>".repeat(40), "</div>".repeat(40));
        assert_eq!(run(&nested, r#"{"selector":"div","all":true}"#), Ok(()));
        let many = "<div>".repeat(200) + &"x".repeat(10);
        assert_eq!(run(&many, r#"{"selector":"div","all":true}"#), too_much);
        // Several extract steps on one page share the bound.
        let page = page(&"<p>0123456789</p>".repeat(4));
        let mut doc = Document::new(&page, &limits);
        let extract = step(r#"{"action":"extract","fields":{"f":{"selector":"p","all":true}}}"#);
        doc.run(&extract, &budget()).unwrap();
        doc.run(&extract, &budget()).unwrap();
        assert!(doc.run(&extract, &budget()).is_err());
    }

    #[test]
    fn a_stopped_job_stops_extraction() {
        let stopped = AtomicBool::new(true);
        let page = page(&"<p>x</p>".repeat(5_000));
        let mut doc = Document::new(&page, &PageLimits::default());
        let budget = Budget::new(&PageLimits::default(), &stopped);
        let err = doc
            .run(
                &step(r#"{"action":"extract","fields":{"f":{"selector":"p","all":true}}}"#),
                &budget,
            )
            .unwrap_err();
        assert!(matches!(err, StepFailure::ProcessingCancelled), "{err}");
    }

    #[test]
    fn asserts_check_the_page() {
        let html = "<html><head><title>T</title><script>hidden()</script></head>\
                    <body><h1>Hello</h1><p>big   world</p><script>secret()</script></body></html>";
        let check = |assert: &str, expected: Result<(), &str>| {
            let page = page(html);
            let mut doc = Document::new(&page, &PageLimits::default());
            let got = doc
                .run(
                    &step(&format!(r#"{{"action":"assert",{assert}}}"#)),
                    &budget(),
                )
                .map(|_| ())
                .map_err(|err| err.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{assert}");
        };
        check(r#""status":200"#, Ok(()));
        check(
            r#""status":404"#,
            Err("assert failed: expected status 404, got 200"),
        );
        check(r#""text":"Hello big world""#, Ok(()));
        check(r#""text":"big\nworld""#, Ok(()));
        check(
            r#""text":"secret""#,
            Err("assert failed: expected text \"secret\" in the page, got page text \"Hello big world\""),
        );
        check(
            r#""text":"T Hello""#,
            Err("assert failed: expected text \"T Hello\" in the page, got page text \"Hello big world\""),
        );
        check(r#""text_absent":"secret""#, Ok(()));
        check(
            r#""text_absent":"big  world""#,
            Err("assert failed: expected no text \"big world\" in the page, got it in \"Hello big world\""),
        );
        check(r#""selector":"body > p""#, Ok(()));
        check(
            r#""selector":"div.missing""#,
            Err("assert failed: expected an element matching `div.missing`, got none"),
        );
        check(r#""selector_absent":"div.missing""#, Ok(()));
        check(
            r#""selector_absent":"h1""#,
            Err("assert failed: expected no element matching `h1`, got <h1>"),
        );
        check(r#""max_load_ms":120"#, Ok(()));
        check(
            r#""max_load_ms":119"#,
            Err("assert failed: expected the page loaded within 119 ms, got 120 ms"),
        );
        check(
            r#""status":200,"text":"Hello","selector":"h1","text_absent":"x""#,
            Ok(()),
        );
        check(
            r#""no_console_errors":true"#,
            Err("the http engine cannot run this step; submit the job with `\"engine\": \"browser\"`"),
        );
    }

    #[test]
    fn download_links_resolve_like_a_browser() {
        let check = |html: &str, selector: &str, expected: Result<&str, &str>| {
            let page = page(html);
            let mut doc = Document::new(&page, &PageLimits::default());
            let got = doc
                .run(
                    &step(&format!(
                        r#"{{"action":"download","selector":"{selector}"}}"#
                    )),
                    &budget(),
                )
                .map_err(|err| err.to_string());
            match (got, expected) {
                (Ok(Outcome::Follow(url)), Ok(want)) => assert_eq!(url.as_str(), want),
                (Err(got), Err(want)) => assert_eq!(got, want),
                (got, want) => panic!("{html}: got {got:?}, want {want:?}"),
            }
        };
        check(
            "<a href='report.pdf'>r</a>",
            "a",
            Ok("https://x.test/dir/report.pdf"),
        );
        check("<a href='/f.csv'>r</a>", "a", Ok("https://x.test/f.csv"));
        check(
            "<a href=' https://cdn.test/a.zip '>r</a>",
            "a",
            Ok("https://cdn.test/a.zip"),
        );
        check("<img src='i.png'>", "img", Ok("https://x.test/dir/i.png"));
        check(
            "<base href='https://files.test/v2/'><a href='f.bin'>f</a>",
            "a",
            Ok("https://files.test/v2/f.bin"),
        );
        check("<p>x</p>", "a", Err("no element matches `a`"));
        check(
            "<a>x</a>",
            "a",
            Err("the element matching `a` has no link to follow (no `href` or `src`)"),
        );
        check(
            "<a href='javascript:void(0)'>x</a>",
            "a",
            Err("the link \"javascript:void(0)\" is not an http(s) URL"),
        );
        check(
            "<a href='mailto:x@y.test'>x</a>",
            "a",
            Err("the link \"mailto:x@y.test\" is not an http(s) URL"),
        );
    }

    #[test]
    fn browser_steps_are_refused() {
        for json in [
            r#"{"action":"click","selector":"a"}"#,
            r#"{"action":"screenshot"}"#,
            r#"{"action":"wait_for","delay_ms":1}"#,
            r#"{"action":"evaluate","expression":"1","field":"x"}"#,
            r#"{"action":"scroll"}"#,
        ] {
            let page = page("<p>x</p>");
            let mut doc = Document::new(&page, &PageLimits::default());
            let err = doc.run(&step(json), &budget()).unwrap_err();
            assert!(
                matches!(err, StepFailure::Unsupported { engine: "http" }),
                "{json}"
            );
        }
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
        let page = page(&html);
        let doc = Document::new(&page, &limits);
        assert_eq!(doc.visible_text(&budget()).unwrap(), "deep");
    }
}
