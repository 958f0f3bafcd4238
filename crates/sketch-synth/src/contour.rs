//! Training sketches: the contours of instance masks drawn as dark anti-aliased strokes.
//!
//! Each instance contributes its outer and hole borders (Suzuki-Abe border following from
//! imageproc) as polylines through pixel centres. Where a border runs along the image edge it is
//! the frame, not an anatomical edge, so the polyline is cut there and the edge points dropped.

use crate::error::{Result, SketchError};
use crate::raster::draw_strokes;
use crate::stroke::Stroke;
use image::GrayImage;
use imageproc::contours::find_contours_with_threshold;
use s2m_core::anatomy::decode_label;
use s2m_core::{InstanceMask, LabelMap};
use serde::{Deserialize, Serialize};

/// The image size at which pixel parameters (stroke widths, jitter amplitudes) are specified.
pub const REFERENCE_SIZE: f32 = 256.0;

/// Thinnest pen actually drawn, in pixels: below about one pixel an anti-aliased stroke never
/// reaches full ink and small sketches (e.g. 64 px) would fade to grey.
pub const MIN_PEN_PX: f32 = 1.0;

/// The pen width in pixels for a width given at 256 px, at this image size (never below
/// [`MIN_PEN_PX`]).
pub fn pen_width_px(width_at_256: f32, width: u32, height: u32) -> f32 {
    (width_at_256 * resolution_scale(width, height)).max(MIN_PEN_PX)
}

/// Factor that converts pixel parameters given at 256 px to a `width` x `height` image
/// (the shorter side decides).
pub fn resolution_scale(width: u32, height: u32) -> f32 {
    width.min(height) as f32 / REFERENCE_SIZE
}

/// How training sketches are drawn from masks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SketchConfig {
    /// Pen width in pixels at 256 px; scaled by `size / 256` for other sizes, never below
    /// [`MIN_PEN_PX`].
    pub stroke_width: f32,
    /// Instances with a score below this are not drawn (the paper's delta).
    pub score_threshold: f32,
    /// Grey value of the ink (0 = black) on the white (255) page.
    pub ink: u8,
}

impl Default for SketchConfig {
    fn default() -> Self {
        Self {
            stroke_width: 1.5,
            score_threshold: 0.35,
            ink: 0,
        }
    }
}

impl SketchConfig {
    /// Checks that the width is finite and positive and the threshold lies in [0, 1].
    pub fn validate(&self) -> Result<()> {
        validate_threshold(self.score_threshold)?;
        if !(self.stroke_width.is_finite() && self.stroke_width > 0.0) {
            return Err(SketchError::InvalidStrokeWidth(self.stroke_width));
        }
        Ok(())
    }
}

/// The contours of every instance with `score >= score_threshold`, as unit-width strokes
/// (set the widths before drawing). Closed borders give closed strokes; borders touching the
/// image edge give open strokes with the edge runs removed.
pub fn contour_strokes(instances: &[InstanceMask], score_threshold: f32) -> Result<Vec<Stroke>> {
    validate_threshold(score_threshold)?;
    let Some((width, height)) = common_mask_size(instances)? else {
        return Ok(Vec::new());
    };
    let mut strokes = Vec::new();
    for instance in instances.iter().filter(|i| i.score >= score_threshold) {
        strokes.extend(instance_strokes(instance, width, height));
    }
    Ok(strokes)
}

/// Renders the training sketch of (predicted or true) instance masks: their contours in
/// `config.ink` on white. Instances below the score threshold are skipped; if none is left the
/// page is blank. Errors on an empty slice (the size would be unknown), on masks of different
/// sizes, and on an invalid config.
pub fn render_sketch(instances: &[InstanceMask], config: &SketchConfig) -> Result<GrayImage> {
    config.validate()?;
    let (width, height) = common_mask_size(instances)?.ok_or(SketchError::NoInstances)?;
    let mut strokes = contour_strokes(instances, config.score_threshold)?;
    let pen_width = pen_width_px(config.stroke_width, width, height);
    strokes
        .iter_mut()
        .for_each(|s| s.set_uniform_width(pen_width));
    draw_strokes(&strokes, width, height, config.ink)
}

/// Renders the ground-truth sketch of a label map (every instance has score 1, so the threshold
/// never drops anything). Gives the same image as [`render_sketch`] on
/// [`LabelMap::to_instance_masks`], without building a full-size mask per instance.
pub fn render_label_map(labels: &LabelMap, config: &SketchConfig) -> Result<GrayImage> {
    config.validate()?;
    let (width, height) = (labels.width(), labels.height());
    if width == 0 || height == 0 {
        return Err(SketchError::EmptyImage { width, height });
    }
    let pen_width = pen_width_px(config.stroke_width, width, height);
    let mut strokes: Vec<Stroke> = label_map_strokes(labels).into_iter().flatten().collect();
    strokes
        .iter_mut()
        .for_each(|s| s.set_uniform_width(pen_width));
    draw_strokes(&strokes, width, height, config.ink)
}

/// The unit-width contour strokes of one instance mask of a `width` x `height` image.
pub(crate) fn instance_strokes(instance: &InstanceMask, width: u32, height: u32) -> Vec<Stroke> {
    let raw = instance.mask.as_raw();
    let inside = |x: u32, y: u32| raw[(y * width + x) as usize] != 0;
    match bounding_box(width, height, inside) {
        Some(bbox) => region_strokes(width, height, bbox, inside),
        None => Vec::new(),
    }
}

/// The unit-width contour strokes of every instance of a label map, grouped per instance in
/// label order. Values that do not decode to a class are ignored.
pub(crate) fn label_map_strokes(labels: &LabelMap) -> Vec<Vec<Stroke>> {
    let (width, height) = (labels.width(), labels.height());
    let raw = labels.as_raw();
    // One pass for the bounding boxes of all 256 possible labels, then one cropped contour
    // search per instance: far cheaper than a full-size mask per instance.
    let mut boxes: [Option<PixelBox>; 256] = [None; 256];
    for (y, row) in raw.chunks_exact(width as usize).enumerate() {
        for (x, &value) in row.iter().enumerate() {
            if value != 0 {
                let (x, y) = (x as u32, y as u32);
                boxes[value as usize] = Some(match boxes[value as usize] {
                    Some(b) => b.include(x, y),
                    None => PixelBox::point(x, y),
                });
            }
        }
    }
    (1..=255u8)
        .filter(|&label| decode_label(label).is_some())
        .filter_map(|label| {
            let bbox = boxes[label as usize]?;
            let inside = |x: u32, y: u32| raw[(y * width + x) as usize] == label;
            Some(region_strokes(width, height, bbox, inside))
        })
        .collect()
}

/// The size shared by all masks, `None` for an empty slice.
pub(crate) fn common_mask_size(instances: &[InstanceMask]) -> Result<Option<(u32, u32)>> {
    let Some(first) = instances.first() else {
        return Ok(None);
    };
    let expected = first.mask.dimensions();
    if expected.0 == 0 || expected.1 == 0 {
        return Err(SketchError::EmptyImage {
            width: expected.0,
            height: expected.1,
        });
    }
    for (index, instance) in instances.iter().enumerate().skip(1) {
        let found = instance.mask.dimensions();
        if found != expected {
            return Err(SketchError::MaskSizeMismatch {
                index,
                expected,
                found,
            });
        }
    }
    Ok(Some(expected))
}

fn validate_threshold(threshold: f32) -> Result<()> {
    if (0.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(SketchError::InvalidThreshold(threshold))
    }
}

/// Inclusive pixel bounding box.
#[derive(Debug, Clone, Copy)]
struct PixelBox {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl PixelBox {
    fn point(x: u32, y: u32) -> Self {
        Self {
            x0: x,
            y0: y,
            x1: x,
            y1: y,
        }
    }

    fn include(self, x: u32, y: u32) -> Self {
        Self {
            x0: self.x0.min(x),
            y0: self.y0.min(y),
            x1: self.x1.max(x),
            y1: self.y1.max(y),
        }
    }
}

fn bounding_box(width: u32, height: u32, inside: impl Fn(u32, u32) -> bool) -> Option<PixelBox> {
    let mut bbox: Option<PixelBox> = None;
    for y in 0..height {
        for x in 0..width {
            if inside(x, y) {
                bbox = Some(bbox.map_or(PixelBox::point(x, y), |b| b.include(x, y)));
            }
        }
    }
    bbox
}

/// Contours of the region `inside` (within `bbox`) of a `width` x `height` image.
fn region_strokes(
    width: u32,
    height: u32,
    bbox: PixelBox,
    inside: impl Fn(u32, u32) -> bool,
) -> Vec<Stroke> {
    // Crop to the bounding box plus a one-pixel background frame, so the border search only
    // visits the region's neighbourhood; crop pixel (cx, cy) is image pixel (x0+cx-1, y0+cy-1).
    let crop_w = bbox.x1 - bbox.x0 + 3;
    let crop_h = bbox.y1 - bbox.y0 + 3;
    let mut crop = GrayImage::new(crop_w, crop_h);
    for y in bbox.y0..=bbox.y1 {
        for x in bbox.x0..=bbox.x1 {
            if inside(x, y) {
                crop.put_pixel(x - bbox.x0 + 1, y - bbox.y0 + 1, image::Luma([255]));
            }
        }
    }
    let mut strokes = Vec::new();
    for contour in find_contours_with_threshold::<u32>(&crop, 0) {
        let points: Vec<[u32; 2]> = contour
            .points
            .iter()
            .map(|p| [p.x + bbox.x0 - 1, p.y + bbox.y0 - 1])
            .collect();
        for (run, closed) in cut_at_image_border(&points, width, height) {
            let centres = run
                .iter()
                .map(|p| [p[0] as f32 + 0.5, p[1] as f32 + 0.5])
                .collect();
            strokes.push(Stroke::uniform(centres, 1.0, closed));
        }
    }
    strokes
}

/// Splits a closed border into the runs that do not lie on the image edge. A border that never
/// touches the edge is returned whole and closed; runs of fewer than two points are dropped.
fn cut_at_image_border(points: &[[u32; 2]], width: u32, height: u32) -> Vec<(Vec<[u32; 2]>, bool)> {
    let on_edge = |p: &[u32; 2]| p[0] == 0 || p[1] == 0 || p[0] + 1 == width || p[1] + 1 == height;
    let Some(first_edge) = points.iter().position(on_edge) else {
        return vec![(points.to_vec(), true)];
    };
    // Start the walk on an edge point, so that every run ends before the walk wraps around.
    let mut runs = Vec::new();
    let mut run: Vec<[u32; 2]> = Vec::new();
    for i in 0..points.len() {
        let p = points[(first_edge + i) % points.len()];
        if on_edge(&p) {
            if run.len() >= 2 {
                runs.push((std::mem::take(&mut run), false));
            }
            run.clear();
        } else {
            run.push(p);
        }
    }
    if run.len() >= 2 {
        runs.push((run, false));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_cut_splits_runs_and_drops_edge_points() {
        // A 4x3 image: the border runs from the left edge to the right edge and back along
        // the bottom edge (y = 2), so only the top run survives.
        let pts = [[0, 1], [1, 1], [2, 1], [3, 1], [2, 2], [1, 2], [0, 2]];
        let runs = cut_at_image_border(&pts, 4, 3);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].0, vec![[1, 1], [2, 1]]);
        assert!(!runs[0].1);
        // [2,2],[1,2] is a second run (y = 2 is not the edge of a 4-high image).
        let runs = cut_at_image_border(&[[1, 0], [1, 1], [2, 1], [3, 1], [2, 2], [1, 2]], 4, 4);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(runs[1].0, vec![[2, 2], [1, 2]]);
        let inner = [[1, 1], [2, 1], [2, 2], [1, 2]];
        assert_eq!(
            cut_at_image_border(&inner, 4, 4),
            vec![(inner.to_vec(), true)]
        );
    }
}
