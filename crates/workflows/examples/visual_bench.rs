//! Measures the visual comparison of two full-page screenshots
//! (1280 x 4000, the size of a long page at desktop width).
//!
//! The screenshots are synthetic but page-like: white paper, lines of dark
//! "glyphs", coloured blocks; the second one has a rewritten paragraph and
//! a new banner. Both are encoded the way a browser does (PNG, RGBA), then
//! compared several times; the figures are printed.
//!
//!     cargo run --release -p accord-workflows --example visual_bench [HIGHLIGHT.png]
//!
//! With a path, the highlight image is written there to look at.

use std::io::Write as _;
use std::time::{Duration, Instant};

use accord_workflows::{compare_screenshots, VisualRule};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgba, RgbaImage};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 4000;
const ROUNDS: usize = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::io::stdout();
    let mut out = out.lock();
    let before = page(false);
    let after = page(true);
    let before_png = encode(&before)?;
    let after_png = encode(&after)?;
    writeln!(
        out,
        "screenshots: {WIDTH}x{HEIGHT}, PNG {} KiB and {} KiB",
        before_png.len() / 1024,
        after_png.len() / 1024
    )?;

    let mut decode_times = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let a = image::load_from_memory(&before_png)?;
        let b = image::load_from_memory(&after_png)?;
        decode_times.push(start.elapsed());
        assert_eq!(a.width() + b.width(), 2 * WIDTH);
    }

    let rule = VisualRule::default();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let diff = compare_screenshots(&before_png, &after_png, &rule)?;
        times.push(start.elapsed());
        last = Some(diff);
    }
    let diff = last.ok_or("no rounds")?;
    let c = &diff.comparison;
    writeln!(
        out,
        "changed: {} ({} of {} pixels, ratio {:.4}, threshold {}), region {:?}",
        c.changed,
        c.changed_pixels,
        c.compared_pixels,
        c.changed_ratio,
        c.threshold,
        c.changed_region
    )?;
    writeln!(
        out,
        "highlight PNG: {} KiB",
        diff.highlight_png.len() / 1024
    )?;
    writeln!(
        out,
        "decoding both PNGs alone: median {:.1} ms, min {:.1} ms",
        ms(median(&mut decode_times)),
        ms(min(&decode_times))
    )?;
    writeln!(
        out,
        "compare_screenshots (decode both, compare, encode highlight), {ROUNDS} rounds: median {:.1} ms, min {:.1} ms",
        ms(median(&mut times)),
        ms(min(&times))
    )?;
    if let Some(path) = std::env::args().nth(1) {
        std::fs::write(&path, &diff.highlight_png)?;
        writeln!(out, "highlight written to {path}")?;
    }
    Ok(())
}

/// A page-like screenshot; `edited` rewrites a paragraph and adds a banner.
fn page(edited: bool) -> RgbaImage {
    let mut image = RgbaImage::from_pixel(WIDTH, HEIGHT, Rgba([255, 255, 255, 255]));
    // A header bar and a sidebar.
    fill(&mut image, 0, 0, WIDTH, 90, [32, 60, 120, 255]);
    fill(&mut image, 980, 120, 260, 1400, [240, 242, 245, 255]);
    // Lines of glyphs: 24 px per line, glyph widths from a fixed sequence.
    let mut seed = 0x2545_f491_u32;
    let mut y = 130;
    while y + 16 < HEIGHT {
        let mut x = 60;
        let line_end = if y < 1520 { 940 } else { 1220 };
        while x < line_end {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let glyph = 6 + (seed >> 28);
            let gap = 2 + ((seed >> 24) & 3);
            let rewritten = edited && (1800..2000).contains(&y);
            let ink = if rewritten {
                [30, 30, 30, 255]
            } else {
                [20, 20, 20, 255]
            };
            // A rewritten paragraph has its glyphs in other places.
            let shift = if rewritten { 3 } else { 0 };
            fill(&mut image, x + shift, y, glyph, 14, ink);
            x += glyph + gap + if (seed >> 20) & 7 == 0 { 8 } else { 0 };
        }
        y += if (seed >> 16) & 15 == 0 { 48 } else { 24 };
    }
    if edited {
        // A new banner.
        fill(&mut image, 60, 3000, 1160, 120, [250, 200, 40, 255]);
    }
    image
}

fn fill(image: &mut RgbaImage, x: u32, y: u32, w: u32, h: u32, colour: [u8; 4]) {
    for yy in y..(y + h).min(image.height()) {
        for xx in x..(x + w).min(image.width()) {
            image.put_pixel(xx, yy, Rgba(colour));
        }
    }
}

fn encode(image: &RgbaImage) -> Result<Vec<u8>, image::ImageError> {
    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        ExtendedColorType::Rgba8,
    )?;
    Ok(png)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn min(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
