//! Accord's post-processing: pure functions from captured data plus the
//! previous snapshot to an outcome.
mod html;
mod page_change;
mod pattern;
mod text;
mod validate;
mod values;
mod version;
mod visual;
