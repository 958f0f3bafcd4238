//! Chamfer distances between line drawings, via the Euclidean distance transform.
//!
//! The directed chamfer distance from drawing A to drawing B is the mean, over A's ink pixels,
//! of the distance to the nearest ink pixel of B. It measures how far A's lines stray from B's
//! (it does not penalise parts of B that A leaves out); the symmetric version averages both
//! directions.

use crate::contour::{SketchConfig, render_label_map, resolution_scale};
use crate::error::{Result, SketchError};
use image::GrayImage;
use imageproc::distance_transform::euclidean_squared_distance_transform;
use s2m_core::LabelMap;

/// Pixels darker than this count as ink when sketches are compared.
pub const DEFAULT_INK_THRESHOLD: u8 = 128;
/// Pen width (px at 256 px) of the thin "true contours" reference drawing.
pub const REFERENCE_STROKE_WIDTH: f32 = 1.0;

/// Mean distance (pixels) from each ink pixel (`value < ink_threshold`) of `from_sketch` to the
/// nearest ink pixel of `to_sketch`; `None` when either has no ink. Errors when the sizes
/// differ.
pub fn directed_chamfer(
    from_sketch: &GrayImage,
    to_sketch: &GrayImage,
    ink_threshold: u8,
) -> Result<Option<f32>> {
    if from_sketch.dimensions() != to_sketch.dimensions() {
        return Err(SketchError::ImageSizeMismatch {
            first: from_sketch.dimensions(),
            second: to_sketch.dimensions(),
        });
    }
    let is_ink = |v: u8| v < ink_threshold;
    if !from_sketch.as_raw().iter().any(|&v| is_ink(v))
        || !to_sketch.as_raw().iter().any(|&v| is_ink(v))
    {
        return Ok(None);
    }
    // The transform measures distance to non-zero pixels, so mark the target's ink non-zero.
    let target_ink: Vec<u8> = to_sketch
        .as_raw()
        .iter()
        .map(|&v| u8::from(is_ink(v)) * 255)
        .collect();
    let target = GrayImage::from_raw(to_sketch.width(), to_sketch.height(), target_ink).ok_or(
        SketchError::EmptyImage {
            width: to_sketch.width(),
            height: to_sketch.height(),
        },
    )?;
    let squared = euclidean_squared_distance_transform(&target);
    let (sum, count) = from_sketch
        .as_raw()
        .iter()
        .zip(squared.as_raw())
        .filter(|(v, _)| is_ink(**v))
        .fold((0.0f64, 0usize), |(sum, count), (_, d2)| {
            (sum + d2.sqrt(), count + 1)
        });
    Ok(Some((sum / count as f64) as f32))
}

/// Symmetric chamfer distance: the mean of both directed distances; `None` when either image
/// has no ink.
pub fn chamfer_distance(a: &GrayImage, b: &GrayImage, ink_threshold: u8) -> Result<Option<f32>> {
    let forward = directed_chamfer(a, b, ink_threshold)?;
    let backward = directed_chamfer(b, a, ink_threshold)?;
    Ok(forward.zip(backward).map(|(f, b)| 0.5 * (f + b)))
}

/// The thin reference drawing of a label map's true contours (pen width
/// [`REFERENCE_STROKE_WIDTH`]).
pub fn true_contours(labels: &LabelMap) -> Result<GrayImage> {
    let config = SketchConfig {
        stroke_width: REFERENCE_STROKE_WIDTH,
        score_threshold: 0.0,
        ink: 0,
    };
    render_label_map(labels, &config)
}

/// Directed chamfer distance from a sketch to the true contours of `labels`, in pixels at
/// 256 px (the raw distance divided by `size / 256`), with [`DEFAULT_INK_THRESHOLD`].
pub fn chamfer_to_true_contours(sketch: &GrayImage, labels: &LabelMap) -> Result<Option<f32>> {
    let reference = true_contours(labels)?;
    let px = resolution_scale(labels.width(), labels.height());
    Ok(directed_chamfer(sketch, &reference, DEFAULT_INK_THRESHOLD)?.map(|d| d / px))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn vertical_line(x: u32, size: u32) -> GrayImage {
        let mut img = GrayImage::from_pixel(size, size, Luma([255]));
        for y in 0..size {
            img.put_pixel(x, y, Luma([0]));
        }
        img
    }

    #[test]
    fn shifted_line_has_its_shift_as_distance() {
        let a = vertical_line(10, 32);
        let b = vertical_line(15, 32);
        assert_eq!(directed_chamfer(&a, &a, 128), Ok(Some(0.0)));
        let d = directed_chamfer(&a, &b, 128).unwrap().unwrap();
        assert!((d - 5.0).abs() < 1e-5, "{d}");
        let sym = chamfer_distance(&a, &b, 128).unwrap().unwrap();
        assert!((sym - 5.0).abs() < 1e-5, "{sym}");
    }

    #[test]
    fn directed_distance_ignores_what_the_source_leaves_out() {
        // `a` is half of `b`'s ink: a -> b is 0, b -> a is not.
        let mut a = GrayImage::from_pixel(20, 20, Luma([255]));
        for y in 0..20 {
            a.put_pixel(3, y, Luma([0]));
        }
        let mut b = a.clone();
        for y in 0..20 {
            b.put_pixel(13, y, Luma([0]));
        }
        assert_eq!(directed_chamfer(&a, &b, 128), Ok(Some(0.0)));
        let back = directed_chamfer(&b, &a, 128).unwrap().unwrap();
        assert!((back - 5.0).abs() < 1e-5, "{back}");
    }

    #[test]
    fn no_ink_gives_none_and_size_mismatch_errors() {
        let blank = GrayImage::from_pixel(8, 8, Luma([255]));
        let line = vertical_line(2, 8);
        assert_eq!(directed_chamfer(&blank, &line, 128), Ok(None));
        assert_eq!(directed_chamfer(&line, &blank, 128), Ok(None));
        assert_eq!(chamfer_distance(&line, &blank, 128), Ok(None));
        let other = vertical_line(2, 9);
        assert!(matches!(
            directed_chamfer(&line, &other, 128),
            Err(SketchError::ImageSizeMismatch { .. })
        ));
    }
}
