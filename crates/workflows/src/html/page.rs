//! Reading text out of captured HTML the way a person reads it: text in
//! document order, a line break around block-level elements, table cells
//! of a row on one line, `script`, `style`, `template` and `head` left out.
//! Elements can be removed by selector first (clocks, ads, banners).
//!
//! The page is parsed within bounds (see `bounded`) and the walk over the
//! tree is iterative, so a hostile page can neither burn the CPU nor
//! exhaust the stack of the thread reading it. Lines come out raw; callers
//! collapse white space with [`crate::text`].

use accord_model::CssSelector;
use ego_tree::iter::Edge;
use ego_tree::NodeRef;
use scraper::{Html, Node};

use super::bounded::{parse_document, PageTooComplex};

/// Elements whose content is never shown as text.
const HIDDEN: &[&str] = &[
    "head", "script", "style", "template", "noscript", "svg", "iframe", "object", "canvas",
];

/// Elements that start a new line before and after their content.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
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
    "legend",
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
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// Table cells: separated by a space, so a row reads as one line.
const CELLS: &[&str] = &["td", "th"];

/// A parsed page that elements can be removed from.
#[derive(Debug)]
pub(crate) struct Page {
    html: Html,
}

impl Page {
    pub(crate) fn parse(body: &str) -> Result<Self, PageTooComplex> {
        Ok(Self {
            html: parse_document(body)?,
        })
    }

    /// Removes every element matching any of `selectors`, with its content.
    pub(crate) fn remove(&mut self, selectors: &[CssSelector]) {
        let ids: Vec<_> = selectors
            .iter()
            .flat_map(|selector| self.html.select(selector.compiled()).map(|el| el.id()))
            .collect();
        for id in ids {
            if let Some(mut node) = self.html.tree.get_mut(id) {
                node.detach();
            }
        }
    }

    /// The text of the whole page: the `body`, or the document when there
    /// is none.
    pub(crate) fn text(&self) -> String {
        let root = self.html.root_element();
        let body = root.children().find(|node| {
            node.value()
                .as_element()
                .is_some_and(|el| el.name() == "body")
        });
        let mut out = String::new();
        render(&mut out, body.unwrap_or(*root));
        out
    }

    /// The text of every element matching `selector`, one entry per match in
    /// document order.
    pub(crate) fn texts(&self, selector: &CssSelector) -> Vec<String> {
        self.html
            .select(selector.compiled())
            .map(|el| {
                let mut out = String::new();
                render(&mut out, *el);
                out
            })
            .collect()
    }

    /// The text of the first element matching `selector`, on one line.
    pub(crate) fn first_text(&self, selector: &CssSelector) -> Option<String> {
        let el = self.html.select(selector.compiled()).next()?;
        let mut out = String::new();
        render(&mut out, *el);
        Some(crate::text::collapse(&out))
    }
}

/// Appends the text of `root` and its descendants to `out`, with `\n` where a
/// reader sees a line break. White space inside a line is left as found.
fn render(out: &mut String, root: NodeRef<'_, Node>) {
    // The hidden element being skipped, until its close edge.
    let mut hidden = None;
    let mut pre_depth = 0usize;
    for edge in root.traverse() {
        match edge {
            Edge::Open(node) => {
                if hidden.is_some() {
                    continue;
                }
                match node.value() {
                    Node::Element(el) => {
                        let name = el.name();
                        if HIDDEN.contains(&name) {
                            hidden = Some(node.id());
                        } else if name == "br" || BLOCKS.contains(&name) {
                            out.push('\n');
                        } else if CELLS.contains(&name) {
                            out.push(' ');
                        }
                        if name == "pre" {
                            pre_depth += 1;
                        }
                    }
                    // Outside `pre`, a line break in the source is only
                    // white space.
                    Node::Text(text) if pre_depth > 0 => out.push_str(text),
                    Node::Text(text) => out.extend(text.chars().map(|c| match c {
                        '\n' | '\r' => ' ',
                        c => c,
                    })),
                    _ => {}
                }
            }
            Edge::Close(node) => {
                if let Some(id) = hidden {
                    if id == node.id() {
                        hidden = None;
                    }
                    continue;
                }
                if let Node::Element(el) = node.value() {
                    if BLOCKS.contains(&el.name()) {
                        out.push('\n');
                    }
                    if el.name() == "pre" {
                        pre_depth = pre_depth.saturating_sub(1);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::lines;

    fn sel(s: &str) -> CssSelector {
        CssSelector::parse(s).unwrap()
    }

    /// Lines of the whole page after removing `remove`.
    fn check(html: &str, remove: &[&str], expected: &[&str]) {
        let mut page = Page::parse(html).unwrap();
        let remove: Vec<_> = remove.iter().map(|s| sel(s)).collect();
        page.remove(&remove);
        assert_eq!(lines(&page.text()), expected, "{html}");
    }

    #[test]
    fn reads_text_like_a_person() {
        check(
            "<p>Hello <b>world</b></p><p>Bye</p>",
            &[],
            &["Hello world", "Bye"],
        );
        check(
            "<head><title>T</title><style>p{}</style></head><body><h1>A</h1>\n<div>b\nc</div></body>",
            &[],
            &["A", "b c"],
        );
        check("<ul><li>one</li><li>two</li></ul>", &[], &["one", "two"]);
        check("a<br>b<br/>c", &[], &["a", "b", "c"]);
        check(
            "<table><tr><th>Name</th><th>Price</th></tr><tr><td>Tea</td><td>3</td></tr></table>",
            &[],
            &["Name Price", "Tea 3"],
        );
        check("<pre>line 1\nline 2</pre>", &[], &["line 1", "line 2"]);
        check(
            "<p>x<script>var a = '<p>no</p>';</script><template><p>t</p></template>y</p>",
            &[],
            &["xy"],
        );
        check("<!-- hidden --><p>shown</p>", &[], &["shown"]);
    }

    #[test]
    fn removes_elements_by_selector() {
        let html = r#"<div class="ad">Buy now</div><p>News <span id="clock">12:01</span></p>
                      <footer>Footer <div class="ad">nested ad</div></footer>"#;
        check(html, &[".ad", "#clock"], &["News", "Footer"]);
        check(html, &["footer", ".ad"], &["News 12:01"]);
        check(
            html,
            &["p.missing"],
            &["Buy now", "News 12:01", "Footer", "nested ad"],
        );
    }

    #[test]
    fn selects_parts_of_the_page() {
        let page = Page::parse(
            r#"<div class="job"><h2>Rust dev</h2><p>Berlin</p></div><div class="job"><h2>Go dev</h2></div>"#,
        )
        .unwrap();
        let texts: Vec<_> = page.texts(&sel(".job")).iter().map(|t| lines(t)).collect();
        assert_eq!(texts, [vec!["Rust dev", "Berlin"], vec!["Go dev"]]);
        assert_eq!(
            page.first_text(&sel(".job")).as_deref(),
            Some("Rust dev Berlin")
        );
        assert_eq!(page.first_text(&sel(".none")), None);
    }

    /// A page nested as deep as the parse allows is read without recursion.
    #[test]
    fn the_deepest_page_allowed_is_read() {
        let depth = crate::html::MAX_PAGE_DEPTH - 2;
        let html = format!("{}deep{}", "<div>".repeat(depth), "</div>".repeat(depth));
        let page = Page::parse(&html).unwrap();
        assert_eq!(lines(&page.text()), ["deep"]);
    }
}
