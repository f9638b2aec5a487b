//! Bounded page processing: an HTML parse that stops at a node count, a
//! nesting depth, a deadline or a cancellation, and the [`Budget`] that
//! extraction checks as it walks the tree.
//!
//! A hostile page can make an HTML parser do quadratic work (every start
//! tag inside deeply nested elements scans the stack of open elements), and
//! a parse cannot be interrupted from outside its thread. So the parser is
//! fed the page in small chunks and the budget is checked between them:
//! whatever the page, the work stops soon after the job's timeout or
//! cancellation, and within the page limits.
//!
//! Deliberately does not decide what a limit hit means for the job (the
//! caller turns it into a permanent step failure).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ego_tree::NodeId;
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, QualName};
use scraper::{Html, HtmlTreeSink};

/// Bounds on the work one page may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Most nodes (elements, text runs, comments) a page may have.
    pub max_nodes: usize,
    /// Deepest element nesting a page may have. Chromium's own parser stops
    /// nesting at 512.
    pub max_depth: usize,
    /// Longest time parsing and processing one page may take.
    pub max_processing: Duration,
    /// Most bytes of text one page's extract steps may produce.
    pub max_extracted_bytes: usize,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            max_nodes: 500_000,
            max_depth: 512,
            max_processing: Duration::from_secs(10),
            max_extracted_bytes: 1024 * 1024,
        }
    }
}

/// Why processing a page stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error("the page has more than {0} nodes")]
    Nodes(usize),
    #[error("the page nests elements more than {0} deep")]
    Depth(usize),
    #[error("processing the page took longer than {0:?}")]
    Time(Duration),
    #[error("the extracted data is larger than {0} bytes")]
    Extracted(usize),
    #[error("the job was stopped")]
    Cancelled,
}

/// The time and cancellation side of the limits, checked as work goes.
#[derive(Debug)]
pub(crate) struct Budget<'a> {
    deadline: Instant,
    max_processing: Duration,
    cancelled: &'a AtomicBool,
}

impl<'a> Budget<'a> {
    pub(crate) fn new(limits: &PageLimits, cancelled: &'a AtomicBool) -> Self {
        Self {
            deadline: Instant::now() + limits.max_processing,
            max_processing: limits.max_processing,
            cancelled,
        }
    }

    /// Fails once the job is stopped or the deadline has passed.
    pub(crate) fn check(&self) -> Result<(), Exceeded> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(Exceeded::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(Exceeded::Time(self.max_processing));
        }
        Ok(())
    }
}

/// Bytes of markup fed to the parser between two budget checks. Small
/// enough that even quadratic work on one chunk ends in milliseconds.
const CHUNK_BYTES: usize = 4 * 1024;

/// Parses `body` as an HTML document within `limits` and `budget`.
pub(crate) fn parse_document(
    body: &str,
    limits: &PageLimits,
    budget: &Budget<'_>,
) -> Result<Html, Exceeded> {
    let sink = BoundedSink {
        inner: HtmlTreeSink::new(Html::new_document()),
        limits: *limits,
        nodes: Cell::new(0),
        depths: RefCell::new(HashMap::default()),
        exceeded: Cell::new(None),
    };
    let mut parser = html5ever::driver::parse_document(sink, Default::default());
    let mut rest = body;
    while !rest.is_empty() {
        budget.check()?;
        let mut cut = rest.len().min(CHUNK_BYTES);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        parser.process(StrTendril::from_slice(chunk));
        rest = tail;
        if let Some(exceeded) = parser.tokenizer.sink.sink.exceeded.take() {
            return Err(exceeded);
        }
    }
    budget.check()?;
    let sink = &parser.tokenizer.sink.sink;
    if let Some(exceeded) = sink.exceeded.take() {
        return Err(exceeded);
    }
    Ok(parser.finish())
}

/// scraper's tree sink, counting nodes and tracking each element's depth.
///
/// Past a limit it records why and keeps building (the tree builder cannot
/// be told to stop); the feeding loop stops at the end of the chunk.
struct BoundedSink {
    inner: HtmlTreeSink,
    limits: PageLimits,
    nodes: Cell<usize>,
    /// Depth of each element placed in the tree; the document is depth 0.
    depths: RefCell<HashMap<NodeId, u32, BuildHasherDefault<NodeIdHasher>>>,
    exceeded: Cell<Option<Exceeded>>,
}

impl BoundedSink {
    fn count_node(&self) {
        let nodes = self.nodes.get() + 1;
        self.nodes.set(nodes);
        if nodes > self.limits.max_nodes {
            self.exceed(Exceeded::Nodes(self.limits.max_nodes));
        }
    }

    fn exceed(&self, why: Exceeded) {
        let first = self.exceeded.take().unwrap_or(why);
        self.exceeded.set(Some(first));
    }

    fn depth_of(&self, node: &NodeId) -> u32 {
        self.depths.borrow().get(node).copied().unwrap_or(0)
    }

    /// Records that `child` now sits at `depth`.
    fn place(&self, child: &NodeOrText<NodeId>, depth: u32) {
        match child {
            NodeOrText::AppendNode(node) => {
                self.depths.borrow_mut().insert(*node, depth);
                if depth as usize > self.limits.max_depth {
                    self.exceed(Exceeded::Depth(self.limits.max_depth));
                }
            }
            NodeOrText::AppendText(_) => self.count_node(),
        }
    }
}

/// Hashes a [`NodeId`] (an index into the tree, written as one `usize`)
/// with one multiplication (Fibonacci hashing, which spreads small integers
/// over every bit): ids are distinct integers the parser makes, not input
/// an attacker can choose, so SipHash's cost buys nothing here.
#[derive(Default)]
struct NodeIdHasher(u64);

impl Hasher for NodeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `NodeId`; kept correct for any other key all the same.
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

impl TreeSink for BoundedSink {
    type Handle = NodeId;
    type Output = Html;
    type ElemName<'a> = <HtmlTreeSink as TreeSink>::ElemName<'a>;

    fn finish(self) -> Html {
        self.inner.finish()
    }

    fn parse_error(&self, msg: Cow<'static, str>) {
        self.inner.parse_error(msg);
    }

    fn get_document(&self) -> NodeId {
        self.inner.get_document()
    }

    fn elem_name<'a>(&'a self, target: &'a NodeId) -> Self::ElemName<'a> {
        self.inner.elem_name(target)
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> NodeId {
        self.count_node();
        self.inner.create_element(name, attrs, flags)
    }

    fn create_comment(&self, text: StrTendril) -> NodeId {
        self.count_node();
        self.inner.create_comment(text)
    }

    fn create_pi(&self, target: StrTendril, data: StrTendril) -> NodeId {
        self.count_node();
        self.inner.create_pi(target, data)
    }

    fn append(&self, parent: &NodeId, child: NodeOrText<NodeId>) {
        self.place(&child, self.depth_of(parent) + 1);
        self.inner.append(parent, child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &NodeId,
        prev_element: &NodeId,
        child: NodeOrText<NodeId>,
    ) {
        // The child goes next to `element` or into `prev_element`: count the deeper.
        let depth = self.depth_of(element).max(self.depth_of(prev_element) + 1);
        self.place(&child, depth);
        self.inner
            .append_based_on_parent_node(element, prev_element, child);
    }

    fn append_doctype_to_document(
        &self,
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    ) {
        self.count_node();
        self.inner
            .append_doctype_to_document(name, public_id, system_id);
    }

    fn mark_script_already_started(&self, node: &NodeId) {
        self.inner.mark_script_already_started(node);
    }

    fn pop(&self, node: &NodeId) {
        self.inner.pop(node);
    }

    fn get_template_contents(&self, target: &NodeId) -> NodeId {
        self.inner.get_template_contents(target)
    }

    fn same_node(&self, x: &NodeId, y: &NodeId) -> bool {
        self.inner.same_node(x, y)
    }

    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.inner.set_quirks_mode(mode);
    }

    fn append_before_sibling(&self, sibling: &NodeId, new_node: NodeOrText<NodeId>) {
        self.place(&new_node, self.depth_of(sibling));
        self.inner.append_before_sibling(sibling, new_node);
    }

    fn add_attrs_if_missing(&self, target: &NodeId, attrs: Vec<Attribute>) {
        self.inner.add_attrs_if_missing(target, attrs);
    }

    fn associate_with_form(
        &self,
        target: &NodeId,
        form: &NodeId,
        nodes: (&NodeId, Option<&NodeId>),
    ) {
        self.inner.associate_with_form(target, form, nodes);
    }

    fn remove_from_parent(&self, target: &NodeId) {
        self.inner.remove_from_parent(target);
    }

    fn reparent_children(&self, node: &NodeId, new_parent: &NodeId) {
        self.inner.reparent_children(node, new_parent);
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &NodeId) -> bool {
        self.inner
            .is_mathml_annotation_xml_integration_point(handle)
    }

    fn set_current_line(&self, line_number: u64) {
        self.inner.set_current_line(line_number);
    }

    fn allow_declarative_shadow_roots(&self, intended_parent: &NodeId) -> bool {
        self.inner.allow_declarative_shadow_roots(intended_parent)
    }

    fn attach_declarative_shadow(
        &self,
        location: &NodeId,
        attrs: Vec<Attribute>,
    ) -> Result<(), String> {
        self.inner.attach_declarative_shadow(location, attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, limits: PageLimits) -> Result<Html, Exceeded> {
        let cancelled = AtomicBool::new(false);
        parse_document(body, &limits, &Budget::new(&limits, &cancelled))
    }

    #[test]
    fn ordinary_pages_parse_as_before() {
        let page = "<!doctype html><html><head><title>T</title></head><body>\
                    <table><tr><td>a</td></tr></table><p>é ü 漢字</p><!-- c --></body></html>";
        let bounded = parse(page, PageLimits::default()).unwrap();
        assert_eq!(bounded.html(), Html::parse_document(page).html());
        // Multi-byte characters straddling a chunk boundary survive.
        let long = format!("<p>{}</p>", "漢".repeat(10_000));
        let bounded = parse(&long, PageLimits::default()).unwrap();
        assert_eq!(bounded.html(), Html::parse_document(&long).html());
    }

    #[test]
    fn limits_stop_the_parse() {
        let limits = PageLimits {
            max_nodes: 1_000,
            max_depth: 100,
            ..PageLimits::default()
        };
        // `html` and `body` take the first two levels.
        let deep = "<div>".repeat(99);
        assert_eq!(parse(&deep, limits).unwrap_err(), Exceeded::Depth(100));
        let shallow = "<div>".repeat(98);
        assert!(parse(&shallow, limits).is_ok());
        let wide = "<p>x</p>".repeat(600);
        assert_eq!(parse(&wide, limits).unwrap_err(), Exceeded::Nodes(1_000));
    }

    /// Regression: 150,000 nested `<div>`s kept a core busy long after the
    /// job had timed out, and blocked shutdown.
    #[test]
    fn nested_divs_kept_burning_cpu() {
        let page = "<div>".repeat(150_000);
        let err = parse(&page, PageLimits::default()).unwrap_err();
        assert_eq!(err, Exceeded::Depth(512));
    }

    #[test]
    fn a_cancelled_budget_stops_at_the_next_chunk() {
        let cancelled = AtomicBool::new(true);
        let limits = PageLimits::default();
        let page = "<p>x</p>".repeat(10_000);
        let err = parse_document(&page, &limits, &Budget::new(&limits, &cancelled)).unwrap_err();
        assert_eq!(err, Exceeded::Cancelled);
    }

    #[test]
    fn a_spent_budget_stops_the_parse() {
        let limits = PageLimits {
            max_processing: Duration::ZERO,
            ..PageLimits::default()
        };
        assert_eq!(
            parse("<p>x</p>", limits).unwrap_err(),
            Exceeded::Time(Duration::ZERO)
        );
    }
}
