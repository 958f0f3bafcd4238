//! Anti-aliased drawing of pen strokes onto a white page, via tiny-skia.

use crate::error::{Result, SketchError};
use crate::stroke::Stroke;
use image::GrayImage;
use tiny_skia::{Color, FillRule, LineCap, LineJoin, Paint, PathBuilder, Pixmap, Transform};

/// Consecutive segments whose widths differ by less than this fraction are drawn as one path
/// (seamless joins, far fewer draw calls); a new path starts when pressure has drifted further.
const WIDTH_RUN_TOLERANCE: f32 = 0.04;

/// Draws strokes as dark (`ink`) anti-aliased lines with round caps and joins on a white
/// (255) `width` x `height` page.
///
/// Strokes of constant width are drawn as one path; strokes of varying width are drawn as runs
/// of segments of nearly equal width, each with the mean width of its segments (the round caps
/// hide the width steps). A single-point stroke is drawn as a dot.
pub fn draw_strokes(strokes: &[Stroke], width: u32, height: u32, ink: u8) -> Result<GrayImage> {
    // Validate everything first so that an error never leaves work half done.
    for (index, stroke) in strokes.iter().enumerate() {
        validate_stroke(index, stroke)?;
    }
    let mut pixmap = Pixmap::new(width, height).ok_or(SketchError::EmptyImage { width, height })?;
    pixmap.fill(Color::WHITE);
    let mut paint = Paint::default();
    paint.set_color_rgba8(ink, ink, ink, 255);
    paint.anti_alias = true;
    for stroke in strokes {
        draw_stroke(&mut pixmap, &paint, stroke);
    }
    // The page is opaque and grey, so the red channel of the (premultiplied) RGBA is the value.
    let gray: Vec<u8> = pixmap.data().chunks_exact(4).map(|px| px[0]).collect();
    GrayImage::from_raw(width, height, gray).ok_or(SketchError::EmptyImage { width, height })
}

/// Whether an image is a blank page: every pixel pure white (255).
pub fn is_blank(image: &GrayImage) -> bool {
    image.as_raw().iter().all(|&v| v == 255)
}

fn validate_stroke(index: usize, stroke: &Stroke) -> Result<()> {
    if stroke.widths.len() != stroke.points.len() {
        return Err(SketchError::WidthCountMismatch {
            stroke: index,
            points: stroke.points.len(),
            widths: stroke.widths.len(),
        });
    }
    if let Some(&bad) = stroke.widths.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(SketchError::InvalidStrokeWidth(bad));
    }
    if let Some(point) = stroke
        .points
        .iter()
        .position(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        return Err(SketchError::NonFinitePoint {
            stroke: index,
            point,
        });
    }
    Ok(())
}

fn draw_stroke(pixmap: &mut Pixmap, paint: &Paint, stroke: &Stroke) {
    let points = &stroke.points;
    let widths = &stroke.widths;
    match points.len() {
        0 => {}
        1 => draw_dot(pixmap, paint, points[0], widths[0]),
        n => {
            let uniform = widths.iter().all(|&w| w == widths[0]);
            if uniform {
                draw_path(pixmap, paint, points, stroke.closed, widths[0]);
                return;
            }
            // Segment i joins point i to point i + 1 (mod n for the closing segment).
            let segments = if stroke.closed { n } else { n - 1 };
            let segment_width = |i: usize| 0.5 * (widths[i] + widths[(i + 1) % n]);
            let mut run_start = 0;
            while run_start < segments {
                let reference = segment_width(run_start);
                let mut run_end = run_start + 1;
                let mut width_sum = reference;
                while run_end < segments
                    && (segment_width(run_end) - reference).abs() <= WIDTH_RUN_TOLERANCE * reference
                {
                    width_sum += segment_width(run_end);
                    run_end += 1;
                }
                let run: Vec<[f32; 2]> = (run_start..=run_end).map(|i| points[i % n]).collect();
                let mean_width = width_sum / (run_end - run_start) as f32;
                draw_path(pixmap, paint, &run, false, mean_width);
                run_start = run_end;
            }
        }
    }
}

fn draw_path(pixmap: &mut Pixmap, paint: &Paint, points: &[[f32; 2]], closed: bool, width: f32) {
    let mut builder = PathBuilder::with_capacity(points.len() + 1, points.len() + 1);
    builder.move_to(points[0][0], points[0][1]);
    for p in &points[1..] {
        builder.line_to(p[0], p[1]);
    }
    if closed {
        builder.close();
    }
    let Some(path) = builder.finish() else {
        // tiny-skia rejects degenerate paths (all points equal): draw them as the pen's dot.
        draw_dot(pixmap, paint, points[0], width);
        return;
    };
    let pen = tiny_skia::Stroke {
        width,
        line_cap: LineCap::Round,
        line_join: LineJoin::Round,
        ..tiny_skia::Stroke::default()
    };
    pixmap.stroke_path(&path, paint, &pen, Transform::identity(), None);
}

fn draw_dot(pixmap: &mut Pixmap, paint: &Paint, centre: [f32; 2], width: f32) {
    if let Some(circle) = PathBuilder::from_circle(centre[0], centre[1], 0.5 * width) {
        pixmap.fill_path(
            &circle,
            paint,
            FillRule::Winding,
            Transform::identity(),
            None,
        );
    }
}
