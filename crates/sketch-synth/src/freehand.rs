//! Free-hand sketch simulation: how a person redraws the organ outlines of a throat.
//!
//! Starting from the true contours, a drawer (a [`DrawerStyle`]) leaves parts out, abstracts
//! outlines (Douglas-Peucker, then Chaikin rounding), runs on past stroke ends, misplaces the
//! whole drawing (shift, rotation and scale about the image centre), bends it (a smooth elastic
//! field), trembles (high-frequency jitter along the stroke normal), retraces, varies the pen
//! pressure, and lifts the pen (gaps). Part-wise styles also misplace each part (instance) on
//! its own about its centroid, close parts cut at the image edge into loops, leave out any
//! part, and draw only pieces of outlines; these draw random numbers only when switched on, so
//! styles without them give the same sketches as before they existed. Every random choice comes from the caller's seeded
//! generator in a fixed order, so the same inputs and seed give byte-identical sketches.

use crate::contour::{common_mask_size, instance_strokes, label_map_strokes, resolution_scale};
use crate::error::{Result, SketchError};
use crate::noise::{ElasticField, SmoothNoise1d, gaussian};
use crate::polyline::{
    arc_lengths, chaikin, is_positive, normals, resample, simplify, straight_extension,
};
use crate::raster::draw_strokes;
use crate::stroke::Stroke;
use crate::style::{DrawerStyle, RETRACE_WAVELENGTH_PX};
use image::GrayImage;
use rand::Rng as _;
use s2m_core::rng::Rng;
use s2m_core::{InstanceMask, LabelMap};

/// Spacing of the points of simulated strokes (px at 256 px): fine enough for the tremor.
const POINT_SPACING_PX: f32 = 1.5;
/// Pen width never drops below / rises above these fractions of the style's width.
const PRESSURE_RANGE: (f32, f32) = (0.3, 2.0);

/// A simulated free-hand sketch.
#[derive(Debug, Clone, PartialEq)]
pub struct FreehandSketch {
    /// The drawing: `ink`-coloured strokes on white (255), the size of the masks.
    pub image: GrayImage,
    /// The strokes as drawn (pixel coordinates, widths in pixels).
    pub strokes: Vec<Stroke>,
    /// Number of true contours left out (whole instances dropped, single contours dropped, and
    /// contours too short to bother with).
    pub omitted: usize,
}

/// Simulates a free-hand sketch of instance masks (all drawn, whatever their score). Errors on
/// an empty slice, masks of different or zero sizes, and invalid styles.
pub fn simulate_freehand(
    instances: &[InstanceMask],
    style: &DrawerStyle,
    rng: &mut Rng,
) -> Result<FreehandSketch> {
    style.validate()?;
    let (width, height) = common_mask_size(instances)?.ok_or(SketchError::NoInstances)?;
    let contours = instances
        .iter()
        .map(|i| instance_strokes(i, width, height))
        .collect();
    simulate_from_contours(contours, width, height, style, rng)
}

/// [`simulate_freehand`] on the instances of a label map. A label map without instances gives
/// a blank page.
pub fn simulate_freehand_label_map(
    labels: &LabelMap,
    style: &DrawerStyle,
    rng: &mut Rng,
) -> Result<FreehandSketch> {
    style.validate()?;
    let (width, height) = (labels.width(), labels.height());
    if width == 0 || height == 0 {
        return Err(SketchError::EmptyImage { width, height });
    }
    simulate_from_contours(label_map_strokes(labels), width, height, style, rng)
}

/// The simulation proper, on the true contours grouped per instance.
fn simulate_from_contours(
    contours_per_instance: Vec<Vec<Stroke>>,
    width: u32,
    height: u32,
    style: &DrawerStyle,
    rng: &mut Rng,
) -> Result<FreehandSketch> {
    let px = resolution_scale(width, height);
    let contours_per_instance = if style.close_loops {
        contours_per_instance.into_iter().map(close_loop).collect()
    } else {
        contours_per_instance
    };
    let centroids: Vec<[f32; 2]> = contours_per_instance.iter().map(|c| centroid(c)).collect();
    let (kept, omitted) = choose_contours(contours_per_instance, style, px, rng);

    let placement = Placement::random(style, width, height, px, rng);
    let elastic = ElasticField::new(
        rng,
        style.elastic_amplitude_px * px,
        style.elastic_wavelength_px * px,
    );
    let part_placements: Option<Vec<Placement>> = style.has_part_transforms().then(|| {
        centroids
            .iter()
            .map(|&c| Placement::part(style, c, px, rng))
            .collect()
    });
    let spacing = POINT_SPACING_PX * px;

    let mut strokes = Vec::new();
    for (instance, contour) in kept {
        let mut points = simplify(
            &contour.points,
            style.simplify_epsilon_px * px,
            contour.closed,
        );
        for _ in 0..style.smoothing_iterations {
            points = chaikin(&points, contour.closed);
        }
        let points = resample(&points, spacing, contour.closed);
        let (points, closed) = overshoot(
            points,
            contour.closed,
            style.overshoot_px * px,
            spacing,
            rng,
        );
        let (points, closed) = partial_outline(points, closed, style, rng);
        let part = part_placements.as_ref().map(|parts| &parts[instance]);
        let placed: Vec<[f32; 2]> = points
            .iter()
            .map(|&p| {
                let p = part.map_or(p, |part| part.apply(p));
                let q = placement.apply(p);
                let d = elastic.displacement(q);
                [q[0] + d[0], q[1] + d[1]]
            })
            .collect();
        for _ in 0..style.passes {
            let pass = hand_drawn_pass(&placed, closed, style, px, rng);
            strokes.extend(break_into_pieces(pass, style, px, rng));
        }
    }
    let image = draw_strokes(&strokes, width, height, style.ink)?;
    Ok(FreehandSketch {
        image,
        strokes,
        omitted,
    })
}

/// How many of the longest outlines are never left out at random: people sketching a throat
/// always draw its main structure (in the phantom: the pharyngeal wall and the tongue), and
/// omit smaller parts.
const PROTECTED_LONGEST: usize = 2;

/// Decides which contours are drawn. Returns the kept contours with the index of their instance
/// and how many were left out; at least one contour is kept whenever there is one, and the
/// [`PROTECTED_LONGEST`] longest contours are never dropped by `drop_instance_probability` or
/// `drop_contour_probability` (only by the minimum length and `drop_any_part_probability`).
fn choose_contours(
    contours_per_instance: Vec<Vec<Stroke>>,
    style: &DrawerStyle,
    px: f32,
    rng: &mut Rng,
) -> (Vec<(usize, Stroke)>, usize) {
    let min_length = style.min_contour_length_px * px;
    let mut lengths: Vec<f32> = contours_per_instance
        .iter()
        .flatten()
        .map(Stroke::length)
        .collect();
    lengths.sort_by(|a, b| b.total_cmp(a));
    let protected_from = lengths
        .get(PROTECTED_LONGEST.saturating_sub(1))
        .copied()
        .unwrap_or(f32::INFINITY);
    let mut kept = Vec::new();
    let mut left_out = Vec::new();
    for (instance, contours) in contours_per_instance.into_iter().enumerate() {
        let drop_instance = rng.random_bool(f64::from(style.drop_instance_probability));
        let drop_part = style.drop_any_part_probability > 0.0
            && rng.random_bool(f64::from(style.drop_any_part_probability));
        for contour in contours {
            let drop_contour = rng.random_bool(f64::from(style.drop_contour_probability));
            let length = contour.length();
            let protected = length >= protected_from;
            if (!protected && (drop_instance || drop_contour)) || drop_part || length < min_length {
                left_out.push((instance, contour));
            } else {
                kept.push((instance, contour));
            }
        }
    }
    if kept.is_empty() {
        // Nobody hands in a blank page: the longest outline is always drawn.
        let longest = left_out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.length().total_cmp(&b.1.1.length()))
            .map(|(i, _)| i);
        if let Some(i) = longest {
            kept.push(left_out.swap_remove(i));
        }
    }
    (kept, left_out.len())
}

/// A part's outline cut at the image edge drawn as one closed loop: the open runs of its
/// contours are joined in order (the order in which the border walk met them) with straight
/// chords across the edge. Closed contours (holes, parts inside the frame) are kept as they are.
fn close_loop(contours: Vec<Stroke>) -> Vec<Stroke> {
    let (open, mut out): (Vec<Stroke>, Vec<Stroke>) = contours.into_iter().partition(|c| !c.closed);
    let points: Vec<[f32; 2]> = open.into_iter().flat_map(|c| c.points).collect();
    match points.len() {
        0 => {}
        n if n >= 3 => out.push(Stroke::uniform(points, 1.0, true)),
        _ => out.push(Stroke::uniform(points, 1.0, false)),
    }
    out
}

/// Mean of all points of a part's contours (the origin for a part without points).
fn centroid(contours: &[Stroke]) -> [f32; 2] {
    let (mut sum, mut n) = ([0.0f64; 2], 0usize);
    for p in contours.iter().flat_map(|c| &c.points) {
        sum[0] += f64::from(p[0]);
        sum[1] += f64::from(p[1]);
        n += 1;
    }
    if n == 0 {
        return [0.0, 0.0];
    }
    [(sum[0] / n as f64) as f32, (sum[1] / n as f64) as f32]
}

/// With probability `partial_stroke_probability`, keeps one contiguous piece of the outline, a
/// fraction uniform in `[partial_stroke_min_fraction, 1]` of its points, starting at a random
/// point; the piece is open. Draws no random numbers when the probability is 0.
fn partial_outline(
    points: Vec<[f32; 2]>,
    closed: bool,
    style: &DrawerStyle,
    rng: &mut Rng,
) -> (Vec<[f32; 2]>, bool) {
    let n = points.len();
    if style.partial_stroke_probability <= 0.0
        || !rng.random_bool(f64::from(style.partial_stroke_probability))
        || n < 3
    {
        return (points, closed);
    }
    let fraction = rng.random_range(style.partial_stroke_min_fraction..=1.0);
    let m = ((fraction * n as f32).round() as usize).clamp(2, n);
    let start = if closed {
        rng.random_range(0..n)
    } else {
        rng.random_range(0..=n - m)
    };
    let piece = (0..m).map(|i| points[(start + i) % n]).collect();
    (piece, false)
}

/// A similarity transform of the drawing: scale and rotation about a centre, then a shift.
/// The global one is about the image centre; a part's own is about the part's centroid.
struct Placement {
    centre: [f32; 2],
    scale: f32,
    cos: f32,
    sin: f32,
    shift: [f32; 2],
}

impl Placement {
    /// The global misplacement of the whole drawing.
    fn random(style: &DrawerStyle, width: u32, height: u32, px: f32, rng: &mut Rng) -> Self {
        let centre = [0.5 * width as f32, 0.5 * height as f32];
        let spread = [style.scale_log_std, style.rotation_deg, style.shift_px * px];
        Self::draw(centre, style.scale_mean, spread, rng)
    }

    /// A part's own misplacement about its centroid.
    fn part(style: &DrawerStyle, centroid: [f32; 2], px: f32, rng: &mut Rng) -> Self {
        let spread = [
            style.part_scale_log_std,
            style.part_rotation_deg,
            style.part_shift_px * px,
        ];
        Self::draw(centroid, 1.0, spread, rng)
    }

    /// Draws log-scale, rotation (degrees) and shift (per axis) with the standard deviations
    /// in `spread`, in that order.
    fn draw(centre: [f32; 2], scale_mean: f32, spread: [f32; 3], rng: &mut Rng) -> Self {
        let [scale_log_std, rotation_deg, shift] = spread;
        let scale = scale_mean * (scale_log_std * gaussian(rng)).exp();
        let angle = (rotation_deg * gaussian(rng)).to_radians();
        let shift = [shift * gaussian(rng), shift * gaussian(rng)];
        Self {
            centre,
            scale,
            cos: angle.cos(),
            sin: angle.sin(),
            shift,
        }
    }

    fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let (x, y) = (p[0] - self.centre[0], p[1] - self.centre[1]);
        [
            self.centre[0] + self.scale * (self.cos * x - self.sin * y) + self.shift[0],
            self.centre[1] + self.scale * (self.sin * x + self.cos * y) + self.shift[1],
        ]
    }
}

/// Runs strokes on past their ends. A closed outline is opened at a random point, drawn round,
/// and continued past its starting point along the direction of travel; an open stroke is
/// extended at both ends. Returns the points and whether the stroke is still closed (only
/// when `mean_length` is 0).
fn overshoot(
    points: Vec<[f32; 2]>,
    closed: bool,
    mean_length: f32,
    spacing: f32,
    rng: &mut Rng,
) -> (Vec<[f32; 2]>, bool) {
    let n = points.len();
    if !is_positive(mean_length) || n < 2 {
        return (points, closed);
    }
    if closed {
        let start = rng.random_range(0..n);
        let mut open: Vec<[f32; 2]> = (0..=n).map(|i| points[(start + i) % n]).collect();
        let run_on = mean_length * rng.random_range(0.5f32..1.5);
        // Continue past the start in the direction the pen left it: a tangential run-on.
        let (first, second) = (points[start], points[(start + 1) % n]);
        let behind_first = [2.0 * first[0] - second[0], 2.0 * first[1] - second[1]];
        open.extend(straight_extension(behind_first, first, run_on, spacing));
        (open, false)
    } else {
        let lead_in = mean_length * rng.random_range(0.2f32..1.2);
        let run_on = mean_length * rng.random_range(0.2f32..1.2);
        let mut start_ext = straight_extension(points[1], points[0], lead_in, spacing);
        start_ext.reverse();
        let end_ext = straight_extension(points[n - 2], points[n - 1], run_on, spacing);
        let mut out = start_ext;
        out.extend_from_slice(&points);
        out.extend(end_ext);
        (out, false)
    }
}

/// One tracing of a placed outline: tremor and retrace drift along the normal, and pressure.
fn hand_drawn_pass(
    points: &[[f32; 2]],
    closed: bool,
    style: &DrawerStyle,
    px: f32,
    rng: &mut Rng,
) -> Stroke {
    let s = arc_lengths(points);
    let length = s.last().copied().unwrap_or(0.0);
    let drift = if style.passes > 1 {
        SmoothNoise1d::new(
            rng,
            style.retrace_offset_px * px,
            RETRACE_WAVELENGTH_PX * px,
            length,
        )
    } else {
        SmoothNoise1d::new(rng, 0.0, 1.0, length)
    };
    let tremor = SmoothNoise1d::new(
        rng,
        style.tremor_amplitude_px * px,
        style.tremor_wavelength_px * px,
        length,
    );
    let pressure = SmoothNoise1d::new(
        rng,
        style.pressure_variation,
        style.pressure_wavelength_px * px,
        length,
    );
    let normal = normals(points, closed);
    let pen = (style.stroke_width_px * px).max(crate::contour::MIN_PEN_PX);
    let mut out_points = Vec::with_capacity(points.len());
    let mut widths = Vec::with_capacity(points.len());
    for ((p, n), &si) in points.iter().zip(&normal).zip(&s) {
        let off = drift.at(si) + tremor.at(si);
        out_points.push([p[0] + n[0] * off, p[1] + n[1] * off]);
        widths.push(pen * (1.0 + pressure.at(si)).clamp(PRESSURE_RANGE.0, PRESSURE_RANGE.1));
    }
    Stroke {
        points: out_points,
        widths,
        closed,
    }
}

/// Lifts the pen at random places (a Poisson process along the stroke), splitting it into
/// open pieces; pieces of fewer than two points vanish.
fn break_into_pieces(stroke: Stroke, style: &DrawerStyle, px: f32, rng: &mut Rng) -> Vec<Stroke> {
    let gaps_per_px = style.gaps_per_100px / (100.0 * px);
    if !is_positive(gaps_per_px) || stroke.points.len() < 2 {
        return vec![stroke];
    }
    let mut next_gap = exponential(rng, gaps_per_px);
    let mut gap_end = f32::NEG_INFINITY;
    let s = arc_lengths(&stroke.points);
    let mut pieces = Vec::new();
    let mut current = Stroke {
        points: Vec::new(),
        widths: Vec::new(),
        closed: false,
    };
    let mut any_gap = false;
    for (i, &si) in s.iter().enumerate() {
        if si >= next_gap {
            any_gap = true;
            gap_end = next_gap + style.gap_length_px * px * rng.random_range(0.5f32..1.5);
            next_gap = gap_end + exponential(rng, gaps_per_px);
        }
        if si < gap_end {
            if current.points.len() >= 2 {
                pieces.push(std::mem::replace(
                    &mut current,
                    Stroke {
                        points: Vec::new(),
                        widths: Vec::new(),
                        closed: false,
                    },
                ));
            }
            current.points.clear();
            current.widths.clear();
            continue;
        }
        current.points.push(stroke.points[i]);
        current.widths.push(stroke.widths[i]);
    }
    if !any_gap {
        return vec![stroke];
    }
    if current.points.len() >= 2 {
        pieces.push(current);
    }
    pieces
}

/// An exponential sample with the given rate.
fn exponential(rng: &mut Rng, rate: f32) -> f32 {
    // 1 - U lies in (0, 1], so the logarithm is finite.
    let u: f32 = 1.0 - rng.random::<f32>();
    -u.ln() / rate
}
