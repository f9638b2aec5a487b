//! Accord's post-processing: pure functions from captured data plus the
//! previous snapshot to an outcome.
mod html;
mod items;
mod outcome;
mod page_change;
mod pattern;
mod smoke;
mod text;
mod validate;
mod values;
mod version;
mod visual;
