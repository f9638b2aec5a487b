//! An HTML parse that stops at a node count and a nesting depth.
//!
//! Post-processing parses pages on the control plane, so a hostile page
//! must not cost it more than a bounded amount of CPU: the HTML parser
//! does quadratic work on deep nesting (each start tag scans the stack of
//! open elements). The parser is fed the page in small chunks and stops
//! after the chunk where a limit was passed. The limits are the engine's
//! defaults, so a page the engine could read is readable here too.
//!
//! This mirrors `accord-engine`'s bounded parse without its deadline and
//! cancellation: post-processing is deterministic, so it is bounded by size
//! alone.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use ego_tree::NodeId;
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, QualName};
use scraper::{Html, HtmlTreeSink};

/// Most nodes (elements, text runs, comments) a page may have.
pub const MAX_PAGE_NODES: usize = 500_000;
/// Deepest element nesting a page may have. Chromium's own parser stops
/// nesting at 512.
pub const MAX_PAGE_DEPTH: usize = 512;

/// Bytes of markup fed to the parser between two limit checks. Small enough
/// that even quadratic work on one chunk ends in milliseconds.
const CHUNK_BYTES: usize = 4 * 1024;

/// Why a captured page was not read; reads after "failed to read the page: ".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageTooComplex {
    #[error("the page has more than {MAX_PAGE_NODES} nodes")]
    Nodes,
    #[error("the page nests elements more than {MAX_PAGE_DEPTH} deep")]
    Depth,
}

/// Parses `body` as an HTML document within the limits.
pub(crate) fn parse_document(body: &str) -> Result<Html, PageTooComplex> {
    let sink = BoundedSink {
        inner: HtmlTreeSink::new(Html::new_document()),
        nodes: Cell::new(0),
        depths: RefCell::new(HashMap::new()),
        exceeded: Cell::new(None),
    };
    let mut parser = html5ever::driver::parse_document(sink, Default::default());
    let mut rest = body;
    while !rest.is_empty() {
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
    Ok(parser.finish())
}

/// scraper's tree sink, counting nodes and tracking each element's depth.
///
/// Past a limit it records why and keeps building (the tree builder cannot
/// be told to stop); the feeding loop stops at the end of the chunk.
struct BoundedSink {
    inner: HtmlTreeSink,
    nodes: Cell<usize>,
    /// Depth of each element placed in the tree; the document is depth 0.
    depths: RefCell<HashMap<NodeId, u32>>,
    exceeded: Cell<Option<PageTooComplex>>,
}

impl BoundedSink {
    fn count_node(&self) {
        let nodes = self.nodes.get() + 1;
        self.nodes.set(nodes);
        if nodes > MAX_PAGE_NODES {
            self.exceed(PageTooComplex::Nodes);
        }
    }

    fn exceed(&self, why: PageTooComplex) {
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
                if depth as usize > MAX_PAGE_DEPTH {
                    self.exceed(PageTooComplex::Depth);
                }
            }
            NodeOrText::AppendText(_) => self.count_node(),
        }
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

    fn check(body: &str, expected: Result<(), PageTooComplex>) {
        let got = parse_document(body).map(|_| ());
        assert_eq!(got, expected, "{}", &body[..body.len().min(60)]);
    }

    #[test]
    fn ordinary_pages_parse_as_unbounded_ones_do() {
        let page = "<!doctype html><html><head><title>T</title></head><body>\
                    <table><tr><td>a</td></tr></table><p>é ü 漢字</p><!-- c --></body></html>";
        assert_eq!(
            parse_document(page).unwrap().html(),
            Html::parse_document(page).html()
        );
        // Multi-byte characters straddling a chunk boundary survive.
        let long = format!("<p>{}</p>", "漢".repeat(10_000));
        assert_eq!(
            parse_document(&long).unwrap().html(),
            Html::parse_document(&long).html()
        );
    }

    #[test]
    fn limits_stop_the_parse() {
        // `html` and `body` take the first two levels.
        check(&"<div>".repeat(MAX_PAGE_DEPTH - 2), Ok(()));
        check(
            &"<div>".repeat(MAX_PAGE_DEPTH - 1),
            Err(PageTooComplex::Depth),
        );
        check(
            &"<p>x</p>".repeat(MAX_PAGE_NODES / 2 + 1),
            Err(PageTooComplex::Nodes),
        );
    }

    /// Regression guard: 150,000 nested `<div>`s cost minutes of quadratic
    /// parsing before the depth limit existed.
    #[test]
    fn deep_nesting_stops_early() {
        check(&"<div>".repeat(150_000), Err(PageTooComplex::Depth));
    }
}
