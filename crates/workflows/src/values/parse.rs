//! `parse_number`: the first number in a text, read the way its page meant it.
//!
//! The heuristic for separators, in order:
//! 1. A space (also no-break and thin spaces) or an apostrophe between
//!    digits groups thousands only when exactly three digits follow it
//!    (`1 299,00`, `1'234.50`); otherwise the number ends there
//!    (`2 items` is 2).
//! 2. When both `.` and `,` appear, the last of them is the decimal mark
//!    and the other groups thousands (`1,299.00` and `1.299,00` are both
//!    1299).
//! 3. One kind appearing several times groups thousands (`1,234,567`).
//! 4. One kind appearing once is the decimal mark, unless exactly three
//!    digits follow it and the digits before it are not `0`: then it groups
//!    thousands. So `1,234` and `1.234` are both 1234, while `0.125`, `3,5`
//!    and `12.50` are decimals. After a space used as a group separator it is
//!    always the decimal mark (`1 234,567` is 1234.567).
//! 5. A group separator must be followed by exactly three digits; the number
//!    ends before one that is not (`12.5.2024` reads as 12).
//!
//! Rule 4 is a guess for `1,234` and `1.234`: a user who knows the page's
//! convention sets [`DecimalSeparator::Dot`] or [`DecimalSeparator::Comma`],
//! and then `.` (or `,`) is always the decimal mark and the other always
//! groups.
//!
//! A `-` or `−` right before the digits, or before a currency sign right
//! before them (`-$3.50`), makes the number negative. What follows the
//! number (`%`, `€`, a unit) is ignored.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most digits a number may have; more is not a price or a count.
const MAX_DIGITS: usize = 40;
/// Only this many characters of a text are searched for a number.
const MAX_SCANNED_CHARS: usize = 1_024;

/// Which character marks decimals in the page's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecimalSeparator {
    /// Guess from the text (see the rules of `parse_number`).
    #[default]
    Auto,
    /// `1,234.5`: a dot marks decimals, commas group thousands.
    Dot,
    /// `1.234,5`: a comma marks decimals, dots group thousands.
    Comma,
}

/// Why no number came out of a text; reads after "found no number: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("the text has no digits")]
    NoDigits,
    #[error("the number has more than {MAX_DIGITS} digits")]
    TooLong,
}

/// The first number in `text`; see the module documentation for how
/// separators are read.
pub fn parse_number(text: &str, decimal: DecimalSeparator) -> Result<f64, NumberError> {
    let chars: Vec<char> = text.chars().take(MAX_SCANNED_CHARS).collect();
    let start = chars
        .iter()
        .position(char::is_ascii_digit)
        .ok_or(NumberError::NoDigits)?;
    let negative = is_negative(&chars[..start]);
    let token = Token::scan(&chars[start..]);
    let (integer, fraction) = token.read(decimal);
    if integer.len() + fraction.len() > MAX_DIGITS {
        return Err(NumberError::TooLong);
    }
    let mut number = String::with_capacity(integer.len() + fraction.len() + 2);
    if negative {
        number.push('-');
    }
    number.push_str(&integer);
    if !fraction.is_empty() {
        number.push('.');
        number.push_str(&fraction);
    }
    // Only ASCII digits, one dot and a leading minus were pushed.
    number.parse().map_err(|_| NumberError::NoDigits)
}

fn is_minus(c: char) -> bool {
    matches!(c, '-' | '\u{2212}')
}

/// Whether the characters before the first digit end in a minus, directly
/// or before a currency sign.
fn is_negative(before: &[char]) -> bool {
    match before {
        [.., c] if is_minus(*c) => true,
        [.., m, sign] if is_minus(*m) && is_currency_sign(*sign) => true,
        _ => false,
    }
}

fn is_currency_sign(c: char) -> bool {
    matches!(
        c,
        '$' | '€' | '£' | '¥' | '₹' | '₽' | '₩' | '₺' | '₪' | '¢' | '₫' | '₴' | '฿'
    )
}

fn is_space_group(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '\'' | '\u{2019}'
    )
}

/// A run of digit groups and the separators between them.
#[derive(Debug)]
struct Token {
    groups: Vec<String>,
    separators: Vec<char>,
}

impl Token {
    /// Digits and separators from the start of `chars` (a digit); a
    /// separator belongs to the number only when digits follow it.
    fn scan(chars: &[char]) -> Self {
        let mut groups = vec![String::new()];
        let mut separators = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_digit() {
                if let Some(group) = groups.last_mut() {
                    group.push(c);
                }
                i += 1;
                continue;
            }
            let digits_after = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            let belongs = match c {
                '.' | ',' => digits_after > 0,
                c if is_space_group(c) => digits_after == 3,
                _ => false,
            };
            if !belongs {
                break;
            }
            separators.push(c);
            groups.push(String::new());
            i += 1;
        }
        Self { groups, separators }
    }

    /// Keeps the first `n` groups.
    fn truncate(&mut self, groups: usize) {
        self.groups.truncate(groups);
        self.separators.truncate(groups.saturating_sub(1));
    }

    /// The integer and fraction digits. A misplaced separator ends the
    /// number before it, and the rest is read again.
    fn read(mut self, hint: DecimalSeparator) -> (String, String) {
        loop {
            let decimal_at = self.decimal_index(hint);
            match self.misplaced(decimal_at) {
                Some(keep) => self.truncate(keep),
                None => {
                    let Some(d) = decimal_at else {
                        return (self.groups.concat(), String::new());
                    };
                    return (self.groups[..=d].concat(), self.groups[d + 1..].concat());
                }
            }
        }
    }

    /// How many groups to keep when a separator is misplaced: a group
    /// separator not followed by exactly three digits, or any separator
    /// after the decimal mark. Each cut drops at least one separator, so
    /// `read` ends.
    fn misplaced(&self, decimal_at: Option<usize>) -> Option<usize> {
        (0..self.separators.len())
            .find(|&i| match decimal_at {
                Some(d) if i == d => false,
                Some(d) if i > d => true,
                _ => self.groups[i + 1].len() != 3,
            })
            .map(|i| i + 1)
    }

    /// Which separator (by index) is the decimal mark, if any.
    fn decimal_index(&self, hint: DecimalSeparator) -> Option<usize> {
        let find = |mark: char| self.separators.iter().position(|&c| c == mark);
        match hint {
            DecimalSeparator::Dot => find('.'),
            DecimalSeparator::Comma => find(','),
            DecimalSeparator::Auto => {
                let marks: Vec<(usize, char)> = self
                    .separators
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|(_, c)| matches!(c, '.' | ','))
                    .collect();
                let &(last_at, last) = marks.last()?;
                let same_kind = marks.iter().filter(|(_, c)| *c == last).count();
                let other_kind = marks.len() - same_kind;
                if same_kind > 1 {
                    // Rule 3 (and nonsense like `1.234,567,890`): grouping.
                    return None;
                }
                if other_kind > 0 || self.separators.iter().any(|&c| is_space_group(c)) {
                    // Rules 2 and 4's exception: the last mark is decimal.
                    return Some(last_at);
                }
                let before = &self.groups[..=last_at].concat();
                let after = &self.groups[last_at + 1];
                if after.len() == 3 && before != "0" {
                    None
                } else {
                    Some(last_at)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, decimal: DecimalSeparator, expected: Result<f64, NumberError>) {
        assert_eq!(
            parse_number(text, decimal),
            expected,
            "{text:?} with {decimal:?}"
        );
    }

    #[test]
    fn reads_prices_and_counts_by_the_documented_heuristic() {
        use DecimalSeparator::Auto;
        let table: &[(&str, f64)] = &[
            ("$1,299.00", 1299.0),
            ("1 299,00 €", 1299.0),
            ("1\u{a0}299,00\u{a0}€", 1299.0),
            ("1\u{202f}299,00 €", 1299.0),
            ("1.299,00", 1299.0),
            ("12%", 12.0),
            ("-3.5", -3.5),
            ("1,234", 1234.0),
            ("1.234", 1234.0),
            ("0.125", 0.125),
            ("0,125", 0.125),
            ("1,5", 1.5),
            ("12.50", 12.5),
            ("3,14289", 3.14289),
            ("€ 12,50", 12.5),
            ("-$3.50", -3.5),
            ("$-3.50", -3.5),
            ("\u{2212}7 °C", -7.0),
            ("1'234.50 CHF", 1234.5),
            ("1,234,567.89", 1_234_567.89),
            ("1.234.567,89", 1_234_567.89),
            ("1,234,567", 1_234_567.0),
            ("1 234,567", 1234.567),
            ("10 000", 10_000.0),
            ("Price: 42", 42.0),
            ("2 items", 2.0),
            ("Page 2 of 10", 2.0),
            ("12.5.2024", 12.0),
            ("Total 1299.", 1299.0),
            ("range 5-10", 5.0),
            ("007", 7.0),
        ];
        for &(text, expected) in table {
            check(text, Auto, Ok(expected));
        }
    }

    #[test]
    fn a_declared_separator_settles_the_ambiguous_cases() {
        use DecimalSeparator::{Comma, Dot};
        check("1,234", Dot, Ok(1234.0));
        check("1.234", Dot, Ok(1.234));
        check("1.234", Comma, Ok(1234.0));
        check("1,234", Comma, Ok(1.234));
        check("1.299,00", Comma, Ok(1299.0));
        check("$1,299.00", Dot, Ok(1299.0));
        // The declared mark wins even where the guess would differ.
        check("1,299.00", Comma, Ok(1.299));
    }

    #[test]
    fn refuses_texts_without_a_number() {
        use DecimalSeparator::Auto;
        check("", Auto, Err(NumberError::NoDigits));
        check("sold out", Auto, Err(NumberError::NoDigits));
        check("-", Auto, Err(NumberError::NoDigits));
        check(&"9".repeat(41), Auto, Err(NumberError::TooLong));
    }
}
