//! The HTTP engine's half of `auto`: telling, from the HTML it fetched,
//! that a page is rendered on the client, so an extraction that came back
//! empty means "run me in a browser", not "nothing there".
//!
//! Deliberately only the reading of the page: the decision to hand a job
//! over is the engine's (`http.rs`), and the memory per domain is the
//! control plane's.

use scraper::{ElementRef, Html, Selector};

/// Visible text shorter than this, with scripts on the page, reads as a
/// shell that scripts fill in.
const NEAR_EMPTY_TEXT: usize = 200;

/// Mount points of the common client-side frameworks.
const FRAMEWORK_ROOTS: &str = "#root, #app, #__next, #__nuxt, #___gatsby, #svelte, #q-app, \
     [data-reactroot], [ng-app], [ng-version], app-root";

/// Why the page looks rendered on the client, or `None` when it does not.
pub fn client_rendered(html: &str) -> Option<String> {
    let document = Html::parse_document(html);
    let selector = |css: &str| Selector::parse(css).expect("a fixed, valid selector");

    if let Some(root) = document
        .select(&selector(FRAMEWORK_ROOTS))
        .find(|root| is_empty(*root))
    {
        return Some(format!(
            "its `{}` mount point is empty until scripts fill it",
            describe(root)
        ));
    }
    let scripts = document.select(&selector("script")).count();
    if scripts == 0 {
        return None;
    }
    let asks_for_javascript = document.select(&selector("noscript")).any(|notice| {
        notice
            .text()
            .collect::<String>()
            .to_ascii_lowercase()
            .contains("javascript")
    });
    if asks_for_javascript {
        return Some("its `noscript` notice asks for JavaScript".to_owned());
    }
    let text = visible_text_len(&document, &selector);
    (text < NEAR_EMPTY_TEXT).then(|| {
        format!("its body is near empty ({text} characters of text) with {scripts} scripts")
    })
}

fn is_empty(element: ElementRef<'_>) -> bool {
    element.children().all(|child| match child.value() {
        scraper::Node::Text(text) => text.trim().is_empty(),
        scraper::Node::Comment(_) => true,
        _ => false,
    })
}

fn describe(element: ElementRef<'_>) -> String {
    let value = element.value();
    match value.id() {
        Some(id) => format!("#{id}"),
        None => value.name().to_owned(),
    }
}

/// Characters of text a reader would see in the body.
fn visible_text_len(document: &Html, selector: &impl Fn(&str) -> Selector) -> usize {
    let Some(body) = document.select(&selector("body")).next() else {
        return 0;
    };
    let mut len = 0;
    for node in body.descendants() {
        if let scraper::Node::Text(text) = node.value() {
            let hidden = node.ancestors().any(|ancestor| {
                ancestor.value().as_element().is_some_and(|element| {
                    matches!(element.name(), "script" | "style" | "noscript" | "template")
                })
            });
            if !hidden {
                len += text
                    .split_whitespace()
                    .map(|word| word.chars().count())
                    .sum::<usize>();
            }
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(html: &str, expected: Option<&str>) {
        let found = client_rendered(html);
        match (found.as_deref(), expected) {
            (None, None) => {}
            (Some(found), Some(want)) => {
                assert!(
                    found.contains(want),
                    "{html}: {found:?} should say {want:?}"
                )
            }
            (found, want) => panic!("{html}: got {found:?}, want {want:?}"),
        }
    }

    #[test]
    fn client_rendered_pages_are_told_apart_from_server_rendered_ones() {
        let article = format!(
            "<html><body><h1>News</h1><p>{}</p><script src=/a.js></script></body></html>",
            "A paragraph of real text. ".repeat(20)
        );
        check(&article, None);
        check(
            "<html><body><p>Short page, no scripts.</p></body></html>",
            None,
        );
        check(
            r#"<html><body><div id="root"></div><script src="/bundle.js"></script></body></html>"#,
            Some("`#root` mount point is empty"),
        );
        check(
            r#"<html><body><div id="__next">  <!-- filled later --> </div></body></html>"#,
            Some("`#__next`"),
        );
        check(
            r#"<html><body><app-root></app-root><script src=main.js></script></body></html>"#,
            Some("`app-root`"),
        );
        // A server-rendered React page has a full root: not client rendered.
        let ssr = format!(
            r#"<html><body><div id="root"><main>{}</main></div><script src=/hydrate.js></script></body></html>"#,
            "Server rendered text. ".repeat(20)
        );
        check(&ssr, None);
        check(
            r#"<html><body><noscript>You need to enable JavaScript to run this app.</noscript><div id=main></div><script>boot()</script></body></html>"#,
            Some("noscript"),
        );
        check(
            r#"<html><body><div class="shell">Loading…</div><script src="/app.js"></script><script>init()</script></body></html>"#,
            Some("near empty (8 characters of text) with 2 scripts"),
        );
        check("", None);
    }
}
