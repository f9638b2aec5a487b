//! `Pattern`: a regular expression a user supplied, bounded and compiled
//! once, when it enters the system.
//!
//! The `regex` crate matches in time linear in the input, so the risk left
//! is the size of the compiled program: `\w{100}{100}` compiles to hundreds
//! of megabytes. The source length is bounded before compiling and the
//! compiled program and the lazy DFA's cache are capped; a pattern over a
//! cap is refused as too costly. Compile errors are described in one line.
//!
//! Deliberately does not decide where patterns apply (the workflow that
//! holds them does).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 512;
/// Largest compiled program accepted, in bytes. Ordinary patterns for
/// timestamps and counters take a few kilobytes.
const COMPILED_SIZE_LIMIT: usize = 256 * 1024;
/// Cache of the lazy DFA while matching, in bytes.
const DFA_SIZE_LIMIT: usize = 1024 * 1024;

/// A valid regular expression within Accord's bounds, with its compiled form.
///
/// Serializes as the text it was given; deserializing checks and compiles it
/// again, so a value of this type is always usable.
#[derive(Clone)]
pub struct Pattern {
    regex: regex::Regex,
}

/// Why a pattern was refused; reads after "invalid regex: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("it is empty")]
    Empty,
    #[error("it is {len} bytes long; at most {MAX_PATTERN_BYTES} bytes are allowed")]
    TooLong { len: usize },
    #[error("it is too costly: its compiled form exceeds {COMPILED_SIZE_LIMIT} bytes (large repetitions such as `{{1000}}` multiply its size)")]
    TooCostly,
    #[error("{0}")]
    Syntax(String),
}

impl Pattern {
    /// Checks the bounds, then compiles.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        if source.is_empty() {
            return Err(PatternError::Empty);
        }
        if source.len() > MAX_PATTERN_BYTES {
            return Err(PatternError::TooLong { len: source.len() });
        }
        let regex = regex::RegexBuilder::new(source)
            .size_limit(COMPILED_SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build()
            .map_err(|err| match err {
                regex::Error::CompiledTooBig(_) => PatternError::TooCostly,
                regex::Error::Syntax(text) => PatternError::Syntax(last_line(&text)),
                other => PatternError::Syntax(last_line(&other.to_string())),
            })?;
        Ok(Self { regex })
    }

    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// The compiled form, for matching.
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }
}

/// The regex crate explains a syntax error over several lines (the pattern,
/// a caret, then `error: ...`); the last line says what is wrong.
fn last_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text);
    line.trim().trim_start_matches("error: ").to_owned()
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::parse(&source).map_err(|err| {
            let mut shown: String = source.chars().take(40).collect();
            if shown.len() < source.len() {
                shown.push_str("...");
            }
            serde::de::Error::custom(format_args!("invalid regex {shown:?}: {err}"))
        })
    }
}

impl utoipa::PartialSchema for Pattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_PATTERN_BYTES))
            .description(Some(format!(
                "A regular expression (Rust `regex` syntax, no look-around or \
                 back-references): at most {MAX_PATTERN_BYTES} bytes, and refused \
                 when its compiled form is too large."
            )))
            .examples([r"\d{1,2}:\d{2}"])
            .into()
    }
}

impl utoipa::ToSchema for Pattern {}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, expected: Result<(), &str>) {
        let got = Pattern::parse(source)
            .map(|_| ())
            .map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => assert!(got.contains(want), "{source:?}: got {got:?}"),
            _ => panic!("{source:?}: got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn accepts_patterns_for_timestamps_and_counters() {
        check(r"\d{1,2}:\d{2}(:\d{2})?", Ok(()));
        check(r"\d+ (views|comments)", Ok(()));
        check(r"(?i)updated .* ago", Ok(()));
        check(r"\b\d{4}-\d{2}-\d{2}T[\d:.]+Z?\b", Ok(()));
    }

    #[test]
    fn refuses_bad_and_costly_patterns() {
        check("", Err("it is empty"));
        check(&"a".repeat(513), Err("at most 512 bytes"));
        check("(abc", Err("unclosed group"));
        check("a{2,1}", Err("invalid repetition count range"));
        check(r"(?<=x)y", Err("look-around"));
        check(r"\w{100}{100}", Err("too costly"));
        check(r"(\w{50}){50}", Err("too costly"));
    }

    #[test]
    fn deserializing_names_the_pattern() {
        let err = serde_json::from_str::<Pattern>(r#""(abc""#).unwrap_err();
        assert_eq!(err.to_string(), r#"invalid regex "(abc": unclosed group"#);
        let ok: Pattern = serde_json::from_str(r#""\\d+""#).unwrap();
        assert_eq!(ok.as_str(), r"\d+");
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#""\\d+""#);
    }
}
