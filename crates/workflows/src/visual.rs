//! Visual comparison of two PNG screenshots: the share of pixels that
//! changed (each channel may move by a small tolerance without counting),
//! whether that passes the threshold, where the change is, and a highlight
//! image: the current screenshot dimmed to a dark grey, the changed pixels
//! (and a two-pixel halo around them) seen through a red highlighter
//! (salmon where the current page is light, deep red where it is dark, so
//! the new text stays readable), and a yellow frame around the changed
//! region.
//!
//! Screenshots of different sizes are compared over the area covering
//! both: a pixel only one of them has counts as changed (a page that grew
//! by a screen has changed there).
//!
//! This is the heaviest post-processing there is: one pass over the rows,
//! no per-pixel allocation, PNGs written with fast compression. Screenshots
//! over [`MAX_PIXELS`] are refused rather than allowed to take the control
//! plane's memory. Deliberately does not take screenshots or store the
//! highlight (the engine and the control plane do).

use std::io::Cursor;

use accord_model::{ArtifactName, JobId, Sha256Digest, ValidationError};
use image::codecs::png::{CompressionType, FilterType, PngDecoder, PngEncoder};
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, RgbaImage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::invalid;

/// Most pixels a screenshot may have (1280 x 13,107): decoded, each takes
/// four bytes, and a comparison holds two screenshots and a highlight.
pub const MAX_PIXELS: u64 = 16 * 1024 * 1024;

/// Colour of a changed pixel only the previous screenshot has (the current
/// one is smaller); changed pixels the current one has are tinted from it
/// (see [`changed_colour`]).
const CHANGED: [u8; 3] = [255, 0, 0];
/// Colour of the frame around the changed region: it must stand apart from
/// both the red of the changes and the grey of the dimmed page.
const FRAME_COLOUR: [u8; 3] = [255, 214, 0];
/// Colour of the area neither screenshot covers.
const UNCOVERED: [u8; 3] = [40, 40, 40];
/// Width of the frame drawn around the changed region, in pixels.
const FRAME: u32 = 3;
/// How far, in pixels, the highlighter spreads around changed pixels.
const HALO: usize = 2;

/// How screenshots are compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisualRule {
    /// Share of pixels, from 0 to 1, that must change for the page to count
    /// as visually changed: 0.01 is 1%. A change must exceed it.
    #[serde(default = "default_threshold")]
    #[schema(minimum = 0, maximum = 1, default = 0.01)]
    pub threshold: f64,
    /// How much (0 to 255) a colour channel may move and still be the same
    /// pixel: absorbs anti-aliasing and compression noise.
    #[serde(default = "default_tolerance")]
    #[schema(maximum = 255, default = 16)]
    pub tolerance: u8,
}

fn default_threshold() -> f64 {
    0.01
}

fn default_tolerance() -> u8 {
    16
}

impl Default for VisualRule {
    fn default() -> Self {
        Self {
            threshold: default_threshold(),
            tolerance: default_tolerance(),
        }
    }
}

impl VisualRule {
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(invalid(
                format!("{field}.threshold"),
                "must be between 0 and 1 (a share of pixels: 0.01 is 1%)",
            ));
        }
        Ok(())
    }
}

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

/// A rectangle in pixels, from the top left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// What the comparison of two screenshots found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VisualComparison {
    /// More than `threshold` of the pixels changed.
    pub changed: bool,
    /// Share of the compared pixels that changed, from 0 to 1.
    pub changed_ratio: f64,
    #[schema(format = "uint64")]
    pub changed_pixels: u64,
    /// Pixels of the area covering both screenshots.
    #[schema(format = "uint64")]
    pub compared_pixels: u64,
    pub threshold: f64,
    pub previous_size: Size,
    pub current_size: Size,
    /// The smallest rectangle holding every changed pixel.
    pub changed_region: Option<Region>,
    /// The highlight image (PNG, the size of the area covering both
    /// screenshots), stored by the control plane as an artifact of the
    /// run's job when the change counts (`changed`). Absent when nothing
    /// counted, or when the workspace's artifact quota had no room for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlight: Option<Box<HighlightArtifact>>,
}

/// Where a run's highlight image is stored: an artifact of the run's job,
/// read at `GET /api/v1/jobs/{job_id}/artifacts/{name}` (or
/// `accord jobs artifact JOB_ID visual-diff.png`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HighlightArtifact {
    pub job_id: JobId,
    /// Always [`HIGHLIGHT_ARTIFACT`].
    pub name: ArtifactName,
    /// `image/png`.
    pub content_type: String,
    #[schema(format = "uint64")]
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// The name of the highlight image among the run's job's artifacts.
pub const HIGHLIGHT_ARTIFACT: &str = "visual-diff.png";

/// A comparison and its highlight image.
#[derive(Debug, Clone, PartialEq)]
pub struct VisualDiff {
    pub comparison: VisualComparison,
    /// PNG: the current screenshot dimmed, changed pixels in red.
    pub highlight_png: Vec<u8>,
}

/// Which of the two screenshots a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Screenshot {
    Previous,
    Current,
}

impl std::fmt::Display for Screenshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Previous => "previous",
            Self::Current => "current",
        })
    }
}

/// Why two screenshots could not be compared; reads after "failed to".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisualError {
    #[error("decode the {which} screenshot as PNG: {message}")]
    Decode { which: Screenshot, message: String },
    #[error(
        "compare the {which} screenshot: it is {width}x{height}, more than {MAX_PIXELS} pixels"
    )]
    TooLarge {
        which: Screenshot,
        width: u32,
        height: u32,
    },
    #[error("encode the highlight image: {0}")]
    Encode(String),
}

/// Compares two PNG screenshots under `rule`.
pub fn compare_screenshots(
    previous_png: &[u8],
    current_png: &[u8],
    rule: &VisualRule,
) -> Result<VisualDiff, VisualError> {
    let previous = decode(previous_png, Screenshot::Previous)?;
    let current = decode(current_png, Screenshot::Current)?;
    let mut canvas = Canvas::new(&previous, &current);
    let changed_pixels = canvas.compare(&previous, &current, rule.tolerance);
    let compared_pixels = u64::from(canvas.width) * u64::from(canvas.height);
    let changed_ratio = if compared_pixels == 0 {
        0.0
    } else {
        changed_pixels as f64 / compared_pixels as f64
    };
    let changed_region = canvas.region();
    if let Some(region) = changed_region {
        canvas.frame(region);
    }
    let comparison = VisualComparison {
        changed: changed_ratio > rule.threshold,
        changed_ratio,
        changed_pixels,
        compared_pixels,
        threshold: rule.threshold,
        previous_size: size_of(&previous),
        current_size: size_of(&current),
        changed_region,
        highlight: None,
    };
    Ok(VisualDiff {
        comparison,
        highlight_png: canvas.encode()?,
    })
}

fn size_of(image: &RgbaImage) -> Size {
    Size {
        width: image.width(),
        height: image.height(),
    }
}

fn decode(png: &[u8], which: Screenshot) -> Result<RgbaImage, VisualError> {
    let failed = |err: image::ImageError| VisualError::Decode {
        which,
        message: err.to_string(),
    };
    let decoder = PngDecoder::new(Cursor::new(png)).map_err(failed)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(VisualError::TooLarge {
            which,
            width,
            height,
        });
    }
    Ok(DynamicImage::from_decoder(decoder)
        .map_err(failed)?
        .into_rgba8())
}

/// The highlight being drawn (RGB) and the bounds of the changed pixels.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    /// Left, top, right, bottom (inclusive) of the changed pixels so far.
    bounds: Option<(u32, u32, u32, u32)>,
}

impl Canvas {
    fn new(previous: &RgbaImage, current: &RgbaImage) -> Self {
        let width = previous.width().max(current.width());
        let height = previous.height().max(current.height());
        Self {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * 3],
            bounds: None,
        }
    }

    /// Paints every pixel and returns how many changed.
    fn compare(&mut self, previous: &RgbaImage, current: &RgbaImage, tolerance: u8) -> u64 {
        let row_bytes = self.width as usize * 3;
        let mut changed = 0u64;
        let mut out_rows = self.pixels.chunks_exact_mut(row_bytes);
        let mut bounds = self.bounds;
        let width = self.width as usize;
        let mut mask = vec![false; width * self.height as usize];
        for y in 0..self.height {
            let Some(out) = out_rows.next() else { break };
            let mask_row = &mut mask[y as usize * width..(y as usize + 1) * width];
            let before = row(previous, y);
            let after = row(current, y);
            // Columns both screenshots have on this row.
            let common = match (before, after) {
                (Some(b), Some(a)) => (b.len().min(a.len()) / 4) as u32,
                _ => 0,
            };
            let mut first = None;
            let mut last = 0;
            if let (Some(b), Some(a)) = (before, after) {
                let pairs = b.chunks_exact(4).zip(a.chunks_exact(4));
                for (x, ((p, c), o)) in pairs.zip(out.chunks_exact_mut(3)).enumerate() {
                    let moved = p[0]
                        .abs_diff(c[0])
                        .max(p[1].abs_diff(c[1]))
                        .max(p[2].abs_diff(c[2]))
                        .max(p[3].abs_diff(c[3]));
                    if moved > tolerance {
                        o.copy_from_slice(&changed_colour(c));
                        mask_row[x] = true;
                        changed += 1;
                        first.get_or_insert(x as u32);
                        last = x as u32;
                    } else {
                        o.copy_from_slice(&dimmed(c));
                    }
                }
            }
            // Past the common columns: covered by one screenshot (changed)
            // or by none.
            let width_before = before.map_or(0, |b| (b.len() / 4) as u32);
            let width_after = after.map_or(0, |a| (a.len() / 4) as u32);
            for x in common..self.width {
                let o = &mut out[x as usize * 3..x as usize * 3 + 3];
                if x < width_after {
                    // Only the current page has it: show it, in red.
                    let at = x as usize * 4;
                    let pixel = after.and_then(|a| a.get(at..at + 4)).unwrap_or(&[0; 4]);
                    o.copy_from_slice(&changed_colour(pixel));
                    mask_row[x as usize] = true;
                    changed += 1;
                    first.get_or_insert(x);
                    last = x;
                } else if x < width_before {
                    o.copy_from_slice(&CHANGED);
                    mask_row[x as usize] = true;
                    changed += 1;
                    first.get_or_insert(x);
                    last = x;
                } else {
                    o.copy_from_slice(&UNCOVERED);
                }
            }
            if let Some(first) = first {
                bounds = Some(match bounds {
                    None => (first, y, last, y),
                    Some((l, t, r, _)) => (l.min(first), t, r.max(last), y),
                });
            }
        }
        self.bounds = bounds;
        self.halo(&mask, current);
        changed
    }

    /// Marks the unchanged pixels within [`HALO`] pixels of a change like
    /// the changed ones, so a changed line of text reads as one band of
    /// highlighter with the current text in it, not as loose red specks.
    fn halo(&mut self, mask: &[bool], current: &RgbaImage) {
        let (width, height) = (self.width as usize, self.height as usize);
        let mut marked = vec![false; mask.len()];
        for (at, _) in mask.iter().enumerate().filter(|(_, changed)| **changed) {
            let (x, y) = (at % width, at / width);
            for ny in y.saturating_sub(HALO)..(y + HALO + 1).min(height) {
                for nx in x.saturating_sub(HALO)..(x + HALO + 1).min(width) {
                    let near = ny * width + nx;
                    if mask[near] || marked[near] {
                        continue;
                    }
                    marked[near] = true;
                    // An unchanged pixel is on both screenshots, or on
                    // neither (then it stays the uncovered grey).
                    if let Some(pixel) = current.get_pixel_checked(nx as u32, ny as u32) {
                        self.pixels[near * 3..near * 3 + 3]
                            .copy_from_slice(&changed_colour(&pixel.0));
                    }
                }
            }
        }
    }

    fn region(&self) -> Option<Region> {
        self.bounds.map(|(left, top, right, bottom)| Region {
            x: left,
            y: top,
            width: right - left + 1,
            height: bottom - top + 1,
        })
    }

    /// Draws a frame just outside `region` (clipped to the canvas), so a
    /// change of a few pixels is easy to find; the frame is a colour of its
    /// own so it never reads as a change.
    fn frame(&mut self, region: Region) {
        let left = region.x.saturating_sub(FRAME);
        let top = region.y.saturating_sub(FRAME);
        let right = (region.x + region.width + FRAME).min(self.width);
        let bottom = (region.y + region.height + FRAME).min(self.height);
        for y in top..bottom {
            let edge_row = y < region.y || y >= region.y + region.height;
            for x in left..right {
                let edge_col = x < region.x || x >= region.x + region.width;
                if edge_row || edge_col {
                    let at = (y as usize * self.width as usize + x as usize) * 3;
                    self.pixels[at..at + 3].copy_from_slice(&FRAME_COLOUR);
                }
            }
        }
    }

    fn encode(&self) -> Result<Vec<u8>, VisualError> {
        let mut png = Vec::new();
        PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Adaptive)
            .write_image(
                &self.pixels,
                self.width,
                self.height,
                ExtendedColorType::Rgb8,
            )
            .map_err(|err| VisualError::Encode(err.to_string()))?;
        Ok(png)
    }
}

/// Row `y` of `image` as RGBA bytes, if the image has that row.
fn row(image: &RgbaImage, y: u32) -> Option<&[u8]> {
    if y >= image.height() {
        return None;
    }
    let len = image.width() as usize * 4;
    let start = y as usize * len;
    image.as_raw().get(start..start + len)
}

/// The grey level (0 to 255) of an RGBA pixel.
fn luma(rgba: &[u8]) -> u32 {
    (u32::from(rgba[0]) * 77 + u32::from(rgba[1]) * 150 + u32::from(rgba[2]) * 29) >> 8
}

/// An unchanged pixel in the highlight: its grey level dimmed into 30 to
/// 110, so the page stays recognisable and every red stands out.
fn dimmed(rgba: &[u8]) -> [u8; 3] {
    let grey = (30 + luma(rgba) * 80 / 255) as u8;
    [grey, grey, grey]
}

/// A changed pixel in the highlight: the current page seen through a red
/// highlighter, so the current text of a changed area stays readable: a
/// light background salmon (255, 120, 120), a dark glyph deep red
/// (110, 0, 0).
fn changed_colour(rgba: &[u8]) -> [u8; 3] {
    let luma = luma(rgba);
    let tint = (luma * 120 / 255) as u8;
    [(110 + luma * 145 / 255) as u8, tint, tint]
}

#[cfg(test)]
mod tests {
    use image::Rgba;

    use super::*;

    /// A `width` x `height` PNG: white, with the given rectangles painted.
    fn png(width: u32, height: u32, rects: &[(u32, u32, u32, u32, [u8; 4])]) -> Vec<u8> {
        let mut image = RgbaImage::from_pixel(width, height, Rgba([255, 255, 255, 255]));
        for &(x, y, w, h, colour) in rects {
            for yy in y..y + h {
                for xx in x..x + w {
                    image.put_pixel(xx, yy, Rgba(colour));
                }
            }
        }
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(image.as_raw(), width, height, ExtendedColorType::Rgba8)
            .unwrap();
        out
    }

    const BLACK: [u8; 4] = [0, 0, 0, 255];

    /// Changed, changed pixels, and the changed region as (x, y, width, height).
    type Expected = (bool, u64, Option<(u32, u32, u32, u32)>);

    /// Compares and checks (changed, changed pixels, changed region).
    fn check(previous: &[u8], current: &[u8], rule: VisualRule, expected: Expected) -> VisualDiff {
        let diff = compare_screenshots(previous, current, &rule).unwrap();
        let c = &diff.comparison;
        let region = c.changed_region.map(|r| (r.x, r.y, r.width, r.height));
        assert_eq!((c.changed, c.changed_pixels, region), expected, "{c:?}");
        diff
    }

    fn rule(threshold: f64) -> VisualRule {
        VisualRule {
            threshold,
            ..VisualRule::default()
        }
    }

    #[test]
    fn identical_screenshots_have_no_change() {
        let page = png(100, 100, &[(10, 10, 20, 5, BLACK)]);
        let diff = check(&page, &page, rule(0.0), (false, 0, None));
        assert_eq!(diff.comparison.changed_ratio, 0.0);
        assert_eq!(diff.comparison.compared_pixels, 10_000);
    }

    #[test]
    fn a_change_above_the_threshold_counts() {
        let before = png(100, 100, &[]);
        // 10 x 20 = 200 pixels = 2% of the page.
        let after = png(100, 100, &[(40, 50, 10, 20, BLACK)]);
        let diff = check(
            &before,
            &after,
            rule(0.01),
            (true, 200, Some((40, 50, 10, 20))),
        );
        assert_eq!(diff.comparison.changed_ratio, 0.02);
    }

    #[test]
    fn a_change_below_the_threshold_does_not() {
        let before = png(100, 100, &[]);
        let after = png(100, 100, &[(40, 50, 10, 20, BLACK)]);
        check(
            &before,
            &after,
            rule(0.05),
            (false, 200, Some((40, 50, 10, 20))),
        );
        // The threshold must be exceeded, not met.
        check(
            &before,
            &after,
            rule(0.02),
            (false, 200, Some((40, 50, 10, 20))),
        );
    }

    #[test]
    fn small_colour_noise_is_within_tolerance() {
        let before = png(50, 50, &[(0, 0, 50, 50, [200, 200, 200, 255])]);
        let after = png(50, 50, &[(0, 0, 50, 50, [210, 195, 200, 255])]);
        check(&before, &after, rule(0.0), (false, 0, None));
        let strict = VisualRule {
            threshold: 0.0,
            tolerance: 5,
        };
        check(&before, &after, strict, (true, 2_500, Some((0, 0, 50, 50))));
    }

    #[test]
    fn a_size_change_counts_as_changed_area() {
        // The page grew by 50 rows: 100 x 50 new pixels.
        let before = png(100, 100, &[]);
        let after = png(100, 150, &[]);
        let diff = check(
            &before,
            &after,
            rule(0.1),
            (true, 5_000, Some((0, 100, 100, 50))),
        );
        assert_eq!(diff.comparison.compared_pixels, 15_000);
        assert_eq!(
            diff.comparison.current_size,
            Size {
                width: 100,
                height: 150
            }
        );
        // Wider and shorter: the columns only the previous one had and the
        // rows only the current one has; the corner neither has is not counted.
        let wide = png(120, 80, &[]);
        let tall = png(100, 100, &[]);
        check(
            &wide,
            &tall,
            rule(0.1),
            (true, 20 * 80 + 100 * 20, Some((0, 0, 120, 100))),
        );
    }

    #[test]
    fn the_highlight_shows_changes_in_red_on_a_dimmed_page() {
        let before = png(60, 40, &[(5, 5, 10, 10, BLACK)]);
        // Two new squares with a gap of six pixels between them.
        let after = png(
            60,
            40,
            &[
                (5, 5, 10, 10, BLACK),
                (30, 20, 4, 4, BLACK),
                (40, 20, 4, 4, BLACK),
            ],
        );
        let diff = check(
            &before,
            &after,
            rule(0.0),
            (true, 32, Some((30, 20, 14, 4))),
        );
        let highlight = image::load_from_memory(&diff.highlight_png)
            .unwrap()
            .into_rgb8();
        assert_eq!(highlight.dimensions(), (60, 40));
        // A changed pixel (black on the current page) is deep red; an
        // unchanged one within two pixels of a change (white on the current
        // page) is salmon; one farther away is dimmed like the rest of the
        // page (black and white alike); the frame is yellow.
        assert_eq!(highlight.get_pixel(31, 21).0, [110, 0, 0]);
        assert_eq!(highlight.get_pixel(35, 21).0, [255, 120, 120]);
        assert_eq!(highlight.get_pixel(36, 21).0, [110, 110, 110]);
        assert_eq!(highlight.get_pixel(38, 21).0, [255, 120, 120]);
        assert_eq!(highlight.get_pixel(7, 7).0, [30, 30, 30]);
        assert_eq!(highlight.get_pixel(50, 5).0, [110, 110, 110]);
        assert_eq!(highlight.get_pixel(28, 21).0, FRAME_COLOUR);
        assert_eq!(highlight.get_pixel(45, 21).0, FRAME_COLOUR);
        // Where the current page went white, the change is salmon.
        let diff = check(
            &after,
            &before,
            rule(0.0),
            (true, 32, Some((30, 20, 14, 4))),
        );
        let highlight = image::load_from_memory(&diff.highlight_png)
            .unwrap()
            .into_rgb8();
        assert_eq!(highlight.get_pixel(31, 21).0, [255, 120, 120]);
    }

    #[test]
    fn bad_screenshots_are_clear_errors() {
        let good = png(10, 10, &[]);
        let err = compare_screenshots(b"not a png", &good, &VisualRule::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("decode the previous screenshot as PNG: "),
            "{err}"
        );
        // Only the header claims the size: the check comes before decoding.
        let huge = with_size(&good, 4_097, 4_096);
        let err = compare_screenshots(&good, &huge, &VisualRule::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "compare the current screenshot: it is 4097x4096, more than 16777216 pixels"
        );
    }

    /// `png` with the size in its header replaced (and the header's CRC
    /// recomputed).
    fn with_size(png: &[u8], width: u32, height: u32) -> Vec<u8> {
        // Signature (8), then IHDR: length (4), type (4), data (13), CRC (4).
        let mut out = png.to_vec();
        out[16..20].copy_from_slice(&width.to_be_bytes());
        out[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&out[12..29]);
        out[29..33].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = u32::MAX;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
