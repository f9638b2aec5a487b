//! Checks shared by every workflow input: the bounds on user-supplied lists
//! and texts, field names, and turning a JSON document into a typed input
//! whose errors name the offending field.
//!
//! Each input's own `validate()` (in its module) decides what to check;
//! this file only holds the checks more than one input makes.

use accord_model::{ValidationError, MAX_FIELD_NAME_BYTES};
use serde::de::DeserializeOwned;

/// Most entries a user-supplied list (selectors, texts, patterns) may hold.
pub const MAX_LIST_LEN: usize = 32;
/// Longest user-supplied text (a required text, a keyword, a trigger), in bytes.
pub const MAX_TEXT_BYTES: usize = 1_024;

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

/// At most [`MAX_LIST_LEN`] entries.
pub(crate) fn check_len<T>(field: &str, list: &[T]) -> Result<(), ValidationError> {
    if list.len() > MAX_LIST_LEN {
        return Err(invalid(
            field,
            format!("at most {MAX_LIST_LEN} entries are allowed"),
        ));
    }
    Ok(())
}

/// A text a user wants found on a page: not blank, bounded, no NUL.
pub(crate) fn check_text(field: &str, text: &str) -> Result<(), ValidationError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "must not be blank"));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(invalid(
            field,
            format!("must be at most {MAX_TEXT_BYTES} bytes long"),
        ));
    }
    if text.contains('\0') {
        return Err(invalid(field, "must not contain a NUL character"));
    }
    Ok(())
}

/// A bounded list of texts; errors name the entry (`field[2]`).
pub(crate) fn check_texts(field: &str, texts: &[String]) -> Result<(), ValidationError> {
    check_len(field, texts)?;
    for (i, text) in texts.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), text)?;
    }
    Ok(())
}

/// A record field's name, as a job's `extract` step accepts it.
pub(crate) fn check_field_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(invalid(field, "a field name must not be empty"));
    }
    if name.len() > MAX_FIELD_NAME_BYTES {
        return Err(invalid(
            field,
            format!("a field name must be at most {MAX_FIELD_NAME_BYTES} bytes long"),
        ));
    }
    if name.contains('\0') {
        return Err(invalid(
            field,
            "a field name must not contain a NUL character",
        ));
    }
    Ok(())
}

/// Deserializes `value` as `T`; an error names the field it is about (a
/// dotted path such as `values[0].condition`), or `input` for the whole
/// document.
pub(crate) fn from_json<T: DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "input".to_owned()
        } else {
            path
        };
        invalid(field, err.into_inner().to_string())
    })
}
