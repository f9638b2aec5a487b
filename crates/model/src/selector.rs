//! `CssSelector`: a CSS selector checked against Accord's bounds and parsed
//! once, when it enters the system.
//!
//! The selector parser recurses once per nested block (`:is(`, `:not(`,
//! `[`, ...), so an unbounded selector can exhaust a thread's stack and
//! abort the process. The length and nesting bounds are checked by a flat
//! scan before the parser sees a byte. Parser errors are described in
//! Accord's own words: no parser debug text reaches a client.
//!
//! Deliberately does not match selectors against pages (the engine does).

use std::fmt;
use std::sync::Arc;

use cssparser::ToCss;
use scraper::error::SelectorErrorKind;
use selectors::parser::SelectorParseErrorKind;
use serde::{Deserialize, Serialize};

/// Longest selector accepted, in bytes.
pub const MAX_SELECTOR_BYTES: usize = 1_024;
/// Deepest nesting of brackets (`(`, `[`, `{`) accepted.
pub const MAX_SELECTOR_NESTING: usize = 16;

/// A valid CSS selector within Accord's bounds, with its parsed form.
///
/// Serializes as the text it was given; deserializing checks and parses it
/// again, so a value of this type is always valid.
#[derive(Clone)]
pub struct CssSelector {
    source: String,
    parsed: Arc<scraper::Selector>,
}

/// Why a selector was refused; reads after "invalid CSS selector: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("it is empty")]
    Empty,
    #[error("it is {len} bytes long; at most {MAX_SELECTOR_BYTES} bytes are allowed")]
    TooLong { len: usize },
    #[error("it nests brackets more than {MAX_SELECTOR_NESTING} deep")]
    TooDeep,
    #[error("it contains a NUL character")]
    Nul,
    #[error("{0}")]
    Syntax(String),
}

impl CssSelector {
    /// Checks the bounds, then parses.
    pub fn parse(source: &str) -> Result<Self, SelectorError> {
        check_bounds(source)?;
        let parsed = scraper::Selector::parse(source).map_err(|err| describe(&err))?;
        Ok(Self {
            source: source.to_owned(),
            parsed: Arc::new(parsed),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The parsed form, for matching.
    pub fn compiled(&self) -> &scraper::Selector {
        &self.parsed
    }
}

/// The flat pre-check: length, NUL, and bracket nesting outside strings.
fn check_bounds(source: &str) -> Result<(), SelectorError> {
    if source.trim().is_empty() {
        return Err(SelectorError::Empty);
    }
    if source.len() > MAX_SELECTOR_BYTES {
        return Err(SelectorError::TooLong { len: source.len() });
    }
    if source.contains('\0') {
        return Err(SelectorError::Nul);
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            // An escape hides the next character from the nesting count.
            (_, '\\') => {
                chars.next();
            }
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[' | '{') => {
                depth += 1;
                if depth > MAX_SELECTOR_NESTING {
                    return Err(SelectorError::TooDeep);
                }
            }
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (None, _) => {}
        }
    }
    Ok(())
}

/// The parser's error in a sentence of our own.
fn describe(err: &SelectorErrorKind<'_>) -> SelectorError {
    use SelectorParseErrorKind as P;
    let token = |token: &cssparser::Token<'_>| format!("`{}`", token.to_css_string());
    let text = match err {
        SelectorErrorKind::UnexpectedToken(t) => format!("unexpected {}", token(t)),
        SelectorErrorKind::EndOfLine => "it ends too early".to_owned(),
        SelectorErrorKind::InvalidAtRule(_) | SelectorErrorKind::InvalidAtRuleBody => {
            "at-rules are not selectors".to_owned()
        }
        SelectorErrorKind::QualRuleInvalid => "it is not a selector".to_owned(),
        SelectorErrorKind::ExpectedColonOnPseudoElement(t) => {
            format!("expected `:` in a pseudo-element, found {}", token(t))
        }
        SelectorErrorKind::ExpectedIdentityOnPseudoElement(t) => {
            format!("expected a pseudo-element name, found {}", token(t))
        }
        SelectorErrorKind::UnexpectedSelectorParseError(kind) => match kind {
            P::EmptySelector => "a selector in the list is empty".to_owned(),
            P::DanglingCombinator => "a combinator has nothing after it".to_owned(),
            P::NonCompoundSelector | P::InvalidState => "it is not a valid selector".to_owned(),
            P::NonPseudoElementAfterSlotted
            | P::InvalidPseudoElementAfterSlotted
            | P::InvalidPseudoElementInsideWhere => {
                "a pseudo-element is used where none is allowed".to_owned()
            }
            P::UnsupportedPseudoClassOrElement(name) => {
                format!("`:{name}` is not a supported pseudo-class or pseudo-element")
            }
            P::UnexpectedIdent(name) => format!("unexpected `{name}`"),
            P::ExpectedNamespace(name) => format!("unknown namespace `{name}`"),
            P::NoQualifiedNameInAttributeSelector(t)
            | P::UnexpectedTokenInAttributeSelector(t)
            | P::ExpectedBarInAttr(t)
            | P::BadValueInAttr(t)
            | P::InvalidQualNameInAttr(t) => {
                format!("unexpected {} in an attribute selector", token(t))
            }
            P::PseudoElementExpectedColon(t)
            | P::PseudoElementExpectedIdent(t)
            | P::NoIdentForPseudo(t) => {
                format!(
                    "expected a pseudo-class or pseudo-element name, found {}",
                    token(t)
                )
            }
            P::ExplicitNamespaceUnexpectedToken(t) => {
                format!("unexpected {} after a namespace", token(t))
            }
            P::ClassNeedsIdent(t) => format!("expected a class name after `.`, found {}", token(t)),
        },
    };
    SelectorError::Syntax(text)
}

impl fmt::Debug for CssSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CssSelector").field(&self.source).finish()
    }
}

impl fmt::Display for CssSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for CssSelector {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CssSelector {}

impl Serialize for CssSelector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for CssSelector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::parse(&source).map_err(|err| {
            // Inside a step the error's path ends at the step, so the
            // message quotes the selector (the start of a long one).
            let mut shown: String = source.chars().take(40).collect();
            if shown.len() < source.len() {
                shown.push_str("...");
            }
            serde::de::Error::custom(format_args!("invalid CSS selector {shown:?}: {err}"))
        })
    }
}

impl utoipa::PartialSchema for CssSelector {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_SELECTOR_BYTES))
            .description(Some(format!(
                "A CSS selector: at most {MAX_SELECTOR_BYTES} bytes, brackets nested at most \
                 {MAX_SELECTOR_NESTING} deep."
            )))
            .examples(["h1"])
            .into()
    }
}

impl utoipa::ToSchema for CssSelector {}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, expected: Result<(), &str>) {
        let got = CssSelector::parse(source)
            .map(|_| ())
            .map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => assert!(got.contains(want), "{source:?}: got {got:?}"),
            _ => panic!("{source:?}: got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn accepts_ordinary_selectors() {
        check("h1", Ok(()));
        check("ul > li.item:nth-child(2n+1) a[href^='/jobs/']", Ok(()));
        check(":is(h1, h2):not(.hidden)", Ok(()));
        check(r#"a[title="(((((((((((((((((((((("]"#, Ok(()));
        check(r"a\(\(\(\(\(\(\(\(\(\(\(\(\(\(\(\(\(\(\(", Ok(()));
        let nested = format!("{}a{}", ":is(".repeat(15), ")".repeat(15));
        check(&nested, Ok(()));
    }

    #[test]
    fn refuses_what_is_out_of_bounds() {
        check("", Err("it is empty"));
        check("   ", Err("it is empty"));
        check(&"a".repeat(1_025), Err("at most 1024 bytes"));
        check("a\0b", Err("NUL"));
        let nested = format!("{}a{}", ":is(".repeat(17), ")".repeat(17));
        check(&nested, Err("more than 16 deep"));
    }

    /// Regression: `:is(` about 700 deep overflowed the stack of the thread
    /// parsing a submission and aborted the whole server.
    #[test]
    fn deeply_nested_is_overflowed_the_stack() {
        for opener in [":is(", ":not(", ":where(", "[", "("] {
            for depth in [17, 500, 700, 1_000, 100_000] {
                let source = format!("{}a", opener.repeat(depth));
                let err = CssSelector::parse(&source).unwrap_err();
                assert!(
                    matches!(err, SelectorError::TooLong { .. } | SelectorError::TooDeep),
                    "{opener} x {depth}: {err}"
                );
            }
        }
    }

    #[test]
    fn syntax_errors_are_in_our_words() {
        check("h1[[", Err("unexpected `[`"));
        check("a >", Err("combinator has nothing after it"));
        check("a, , b", Err("empty"));
        check(":bogus", Err("`:bogus` is not a supported"));
        check("..x", Err("expected a class name"));
        for bad in [
            "h1[[", "a >", ":bogus", "..x", "a[=x]", "::", "@media", "a,", "#",
        ] {
            let err = CssSelector::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("developer"), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{bad:?}: {err}");
        }
    }

    #[test]
    fn round_trips_as_text() {
        let selector: CssSelector = serde_json::from_str(r#""a.b""#).unwrap();
        assert_eq!(selector.as_str(), "a.b");
        assert_eq!(serde_json::to_string(&selector).unwrap(), r#""a.b""#);
        let err = serde_json::from_str::<CssSelector>(r#""a[""#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"invalid CSS selector "a[": "#),
            "{err}"
        );
        let long = format!(r#""{}""#, "a".repeat(2_000));
        let err = serde_json::from_str::<CssSelector>(&long).unwrap_err();
        let expected = format!(
            r#"invalid CSS selector "{}...": it is 2000 bytes"#,
            "a".repeat(40)
        );
        assert!(err.to_string().starts_with(&expected), "{err}");
    }
}
