//! The contact sheet: for each of `rows` samples, image | mask overlay | synthesized sketch |
//! two free-hand sketches in different drawer styles.

use crate::error::Result;
use crate::sample::{Stream, draw_freehand, generate};
use image::{GrayImage, Rgb, RgbImage};
use rayon::prelude::*;
use s2m_core::anatomy::{LabelMap, decode_label};
use sketch_synth::{SketchConfig, drawer_styles};

/// Columns of the contact sheet, left to right.
pub const COLUMNS: [&str; 5] = [
    "image",
    "mask overlay",
    "synthesized sketch",
    "free-hand (style A)",
    "free-hand (style B)",
];

/// Blends the class colours of `labels` over `image` and darkens instance boundaries.
pub fn mask_overlay(image: &RgbImage, labels: &LabelMap) -> RgbImage {
    let (w, h) = image.dimensions();
    let mut out = image.clone();
    for y in 0..h {
        for x in 0..w {
            let v = labels.get(x, y);
            let Some((class, _)) = decode_label(v) else {
                continue;
            };
            let edge = [(1i32, 0i32), (-1, 0), (0, 1), (0, -1)]
                .iter()
                .any(|(dx, dy)| {
                    let (nx, ny) = (x as i32 + dx, y as i32 + dy);
                    nx >= 0
                        && ny >= 0
                        && (nx as u32) < w
                        && (ny as u32) < h
                        && labels.get(nx as u32, ny as u32) != v
                });
            let c = class.colour();
            let p = out.get_pixel_mut(x, y);
            let alpha = if edge { 0.9 } else { 0.45 };
            for (pk, ck) in p.0.iter_mut().zip(c) {
                *pk = (*pk as f32 * (1.0 - alpha) + ck as f32 * alpha).round() as u8;
            }
        }
    }
    out
}

fn gray_to_rgb(g: &GrayImage) -> RgbImage {
    RgbImage::from_fn(g.width(), g.height(), |x, y| {
        let v = g.get_pixel(x, y).0[0];
        Rgb([v, v, v])
    })
}

/// The most rows a contact sheet may have.
pub const MAX_SHEET_ROWS: usize = 256;

/// Renders the contact sheet for `rows` preview samples of `seed` at `size` px (1 to
/// [`MAX_SHEET_ROWS`] rows).
/// Row `r` uses drawer styles `2r mod 12` and `2r + 1 mod 12`.
pub fn contact_sheet(seed: u64, size: u32, rows: usize, sketch: &SketchConfig) -> Result<RgbImage> {
    if !(1..=MAX_SHEET_ROWS).contains(&rows) {
        return Err(crate::PhantomError::BadArgument {
            name: "rows",
            message: format!("{rows} rows: a contact sheet has 1 to {MAX_SHEET_ROWS} rows"),
        });
    }
    let styles = drawer_styles();
    let pad = 4u32;
    let cols = COLUMNS.len() as u32;
    let tiles: Vec<Vec<RgbImage>> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let s = generate(seed, Stream::Preview, r, size, sketch)?;
            let a = &styles[(2 * r) % styles.len()];
            let b = &styles[(2 * r + 1) % styles.len()];
            let (fa, ..) = draw_freehand(&s, a, seed, 2 * r)?;
            let (fb, ..) = draw_freehand(&s, b, seed, 2 * r + 1)?;
            Ok(vec![
                s.phantom.image.clone(),
                mask_overlay(&s.phantom.image, &s.phantom.labels),
                gray_to_rgb(&s.sketch),
                gray_to_rgb(&fa),
                gray_to_rgb(&fb),
            ])
        })
        .collect::<Result<_>>()?;
    let width = cols * size + (cols + 1) * pad;
    let height = rows as u32 * size + (rows as u32 + 1) * pad;
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([40, 40, 40]));
    for (r, row) in tiles.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            let x = pad + c as u32 * (size + pad);
            let y = pad + r as u32 * (size + pad);
            image::imageops::replace(&mut sheet, tile, x as i64, y as i64);
        }
    }
    Ok(sheet)
}
