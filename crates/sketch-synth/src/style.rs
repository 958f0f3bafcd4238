//! Drawer styles: the parameters of one kind of free-hand drawer, and the twelve built-in ones.
//!
//! Lengths are pixels at 256 px and are scaled by `size / 256` (see
//! [`resolution_scale`](crate::resolution_scale)); probabilities, ratios and counts are not.

use crate::error::{Result, SketchError};
use serde::{Deserialize, Serialize};

/// How one kind of person draws a throat from memory or from a picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawerStyle {
    /// Short name, unique among the built-in styles.
    pub name: String,

    /// Standard deviation of the global shift of the drawing, per axis (px).
    pub shift_px: f32,
    /// Standard deviation of the global rotation about the image centre (degrees).
    pub rotation_deg: f32,
    /// Mean global scale about the image centre (1 = true size).
    pub scale_mean: f32,
    /// Standard deviation of the log of the global scale.
    pub scale_log_std: f32,

    /// Size of the smooth elastic distortion of the page (px).
    pub elastic_amplitude_px: f32,
    /// Typical wavelength of the elastic distortion (px); long waves bend whole organs.
    pub elastic_wavelength_px: f32,

    /// Douglas-Peucker tolerance that abstracts outlines into few corners (px; 0 = off).
    pub simplify_epsilon_px: f32,
    /// Rounds of Chaikin corner cutting after simplification (0 = keep corners).
    pub smoothing_iterations: u32,

    /// Standard deviation of the hand tremor along the stroke normal (px).
    pub tremor_amplitude_px: f32,
    /// Typical wavelength of the tremor along the stroke (px).
    pub tremor_wavelength_px: f32,

    /// Mean pen width (px).
    pub stroke_width_px: f32,
    /// Relative standard deviation of the pen width along a stroke (pressure), e.g. 0.3.
    pub pressure_variation: f32,
    /// Typical length over which pressure changes (px).
    pub pressure_wavelength_px: f32,
    /// Grey value of the ink (0 = black pen, ~80 = soft pencil).
    pub ink: u8,

    /// Expected number of pen lifts (gaps) per 100 px of stroke.
    pub gaps_per_100px: f32,
    /// Mean length of a gap (px).
    pub gap_length_px: f32,

    /// Mean length by which strokes run on past their ends, or past the closing point of a
    /// closed outline (px; 0 = closed outlines stay closed).
    pub overshoot_px: f32,

    /// How many times each outline is traced (sketchy drawers retrace, 1 = once).
    pub passes: u32,
    /// Standard deviation of the smooth drift of each retrace away from the outline (px).
    pub retrace_offset_px: f32,

    /// Probability of leaving a whole instance out.
    pub drop_instance_probability: f32,
    /// Probability of leaving one contour (outline or hole) out.
    pub drop_contour_probability: f32,
    /// Contours shorter than this are not drawn (px); people skip specks.
    pub min_contour_length_px: f32,

    /// Standard deviation of each part's own shift, per axis (px), on top of the global shift:
    /// every instance is misplaced on its own (0 = off).
    #[serde(default)]
    pub part_shift_px: f32,
    /// Standard deviation of each part's own rotation about its centroid (degrees; 0 = off).
    #[serde(default)]
    pub part_rotation_deg: f32,
    /// Standard deviation of the log of each part's own scale about its centroid (0 = off).
    #[serde(default)]
    pub part_scale_log_std: f32,
    /// Whether a part whose outline is cut at the image edge is drawn as one closed loop: its
    /// runs are joined in order with straight chords across the edge (false = drawn as cut).
    #[serde(default)]
    pub close_loops: bool,
    /// Probability of leaving out a whole part, any part, the main structure included (unlike
    /// `drop_instance_probability`, which never drops the longest outlines); the longest
    /// outline is still drawn when everything else is left out (0 = off).
    #[serde(default)]
    pub drop_any_part_probability: f32,
    /// Probability that an outline is drawn only in part: one contiguous piece of it (0 = off).
    #[serde(default)]
    pub partial_stroke_probability: f32,
    /// Smallest fraction of a partial outline's length that is drawn; the fraction is uniform
    /// in `[partial_stroke_min_fraction, 1]` (used only when `partial_stroke_probability > 0`).
    #[serde(default = "default_partial_fraction")]
    pub partial_stroke_min_fraction: f32,

    /// Calibrated range `[low, high]` of the mean directed chamfer distance from this style's
    /// sketches to the true contours (px at 256 px), averaged over about 16-20 sketches of
    /// pharynx-like label maps. See `docs/SKETCHES.md`.
    pub expected_chamfer: [f32; 2],
}

/// Wavelength of the slow drift of a retrace away from the outline (px): a hand retracing a
/// line wanders off and back over a few centimetres, not at tremor frequency.
pub(crate) const RETRACE_WAVELENGTH_PX: f32 = 40.0;

fn default_partial_fraction() -> f32 {
    PARTIAL_STROKE_MIN_FRACTION
}

/// Default of [`DrawerStyle::partial_stroke_min_fraction`].
pub const PARTIAL_STROKE_MIN_FRACTION: f32 = 0.5;

impl DrawerStyle {
    /// Whether any per-part transform is switched on.
    pub fn has_part_transforms(&self) -> bool {
        self.part_shift_px > 0.0 || self.part_rotation_deg > 0.0 || self.part_scale_log_std > 0.0
    }

    /// A faithful drawer with no misalignment, abstraction or omission: the base that the
    /// built-in styles modify.
    pub fn faithful(name: &str) -> Self {
        Self {
            name: name.to_string(),
            shift_px: 0.0,
            rotation_deg: 0.0,
            scale_mean: 1.0,
            scale_log_std: 0.0,
            elastic_amplitude_px: 0.0,
            elastic_wavelength_px: 128.0,
            simplify_epsilon_px: 0.0,
            smoothing_iterations: 0,
            tremor_amplitude_px: 0.0,
            tremor_wavelength_px: 6.0,
            stroke_width_px: 1.5,
            pressure_variation: 0.0,
            pressure_wavelength_px: 40.0,
            ink: 0,
            gaps_per_100px: 0.0,
            gap_length_px: 4.0,
            overshoot_px: 0.0,
            passes: 1,
            retrace_offset_px: 0.0,
            drop_instance_probability: 0.0,
            drop_contour_probability: 0.0,
            min_contour_length_px: 0.0,
            part_shift_px: 0.0,
            part_rotation_deg: 0.0,
            part_scale_log_std: 0.0,
            close_loops: false,
            drop_any_part_probability: 0.0,
            partial_stroke_probability: 0.0,
            partial_stroke_min_fraction: PARTIAL_STROKE_MIN_FRACTION,
            expected_chamfer: [0.0, f32::MAX],
        }
    }

    /// Checks every parameter's range: lengths finite and >= 0, wavelengths, pen width and
    /// scale > 0, probabilities in [0, 1], the partial-stroke fraction in (0, 1], at least one
    /// pass, and a well-ordered chamfer range.
    pub fn validate(&self) -> Result<()> {
        let non_negative = [
            ("shift_px", self.shift_px),
            ("rotation_deg", self.rotation_deg),
            ("scale_log_std", self.scale_log_std),
            ("elastic_amplitude_px", self.elastic_amplitude_px),
            ("simplify_epsilon_px", self.simplify_epsilon_px),
            ("tremor_amplitude_px", self.tremor_amplitude_px),
            ("pressure_variation", self.pressure_variation),
            ("gaps_per_100px", self.gaps_per_100px),
            ("gap_length_px", self.gap_length_px),
            ("overshoot_px", self.overshoot_px),
            ("retrace_offset_px", self.retrace_offset_px),
            ("min_contour_length_px", self.min_contour_length_px),
            ("part_shift_px", self.part_shift_px),
            ("part_rotation_deg", self.part_rotation_deg),
            ("part_scale_log_std", self.part_scale_log_std),
        ];
        for (field, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(self.invalid(field, format!("must be finite and >= 0, got {value}")));
            }
        }
        let positive = [
            ("scale_mean", self.scale_mean),
            ("elastic_wavelength_px", self.elastic_wavelength_px),
            ("tremor_wavelength_px", self.tremor_wavelength_px),
            ("stroke_width_px", self.stroke_width_px),
            ("pressure_wavelength_px", self.pressure_wavelength_px),
        ];
        for (field, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(self.invalid(field, format!("must be finite and > 0, got {value}")));
            }
        }
        let probabilities = [
            ("drop_instance_probability", self.drop_instance_probability),
            ("drop_contour_probability", self.drop_contour_probability),
            ("drop_any_part_probability", self.drop_any_part_probability),
            (
                "partial_stroke_probability",
                self.partial_stroke_probability,
            ),
        ];
        for (field, value) in probabilities {
            if !(0.0..=1.0).contains(&value) {
                return Err(self.invalid(field, format!("must lie in [0, 1], got {value}")));
            }
        }
        let fraction = self.partial_stroke_min_fraction;
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(self.invalid(
                "partial_stroke_min_fraction",
                format!("must lie in (0, 1], got {fraction}"),
            ));
        }
        if self.passes == 0 {
            return Err(self.invalid("passes", "must be at least 1".to_string()));
        }
        let [low, high] = self.expected_chamfer;
        if !(low >= 0.0 && low <= high) {
            return Err(self.invalid(
                "expected_chamfer",
                format!("must be an ordered non-negative range, got [{low}, {high}]"),
            ));
        }
        Ok(())
    }

    fn invalid(&self, field: &'static str, reason: String) -> SketchError {
        SketchError::InvalidStyle {
            style: self.name.clone(),
            field,
            reason,
        }
    }
}

/// The twelve built-in drawer styles, from the most faithful to the most misaligned and
/// abstract. Their `expected_chamfer` ranges cover the means of batches of 16 sketches measured
/// on the crate's synthetic pharynx (the `calibrate_styles` example) and on phantom references
/// at 128 and 256 px (pharynx-phantom's `calibrate_freehand` example), with a margin.
pub fn drawer_styles() -> Vec<DrawerStyle> {
    let base = DrawerStyle::faithful;
    vec![
        // Traces slowly and precisely: barely any error.
        DrawerStyle {
            shift_px: 1.0,
            rotation_deg: 0.4,
            scale_log_std: 0.01,
            elastic_amplitude_px: 1.0,
            simplify_epsilon_px: 0.7,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.25,
            pressure_variation: 0.15,
            min_contour_length_px: 6.0,
            expected_chamfer: [0.6, 1.25],
            ..base("careful")
        },
        // Shaky hand: precise placement but strong high-frequency tremor.
        DrawerStyle {
            shift_px: 1.2,
            rotation_deg: 0.8,
            scale_log_std: 0.015,
            elastic_amplitude_px: 1.0,
            simplify_epsilon_px: 0.8,
            smoothing_iterations: 1,
            tremor_amplitude_px: 1.3,
            tremor_wavelength_px: 4.0,
            pressure_variation: 0.35,
            pressure_wavelength_px: 15.0,
            gaps_per_100px: 0.3,
            min_contour_length_px: 8.0,
            expected_chamfer: [1.1, 1.9],
            ..base("shaky")
        },
        // Heavy felt pen: wide dark lines, otherwise careful.
        DrawerStyle {
            shift_px: 1.2,
            rotation_deg: 0.6,
            scale_log_std: 0.015,
            elastic_amplitude_px: 1.2,
            simplify_epsilon_px: 1.0,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.3,
            stroke_width_px: 3.5,
            pressure_variation: 0.2,
            min_contour_length_px: 10.0,
            expected_chamfer: [1.15, 1.95],
            ..base("bold")
        },
        // Soft pencil, retraces each outline two or three times with drift and run-on ends.
        DrawerStyle {
            shift_px: 1.5,
            rotation_deg: 1.0,
            scale_log_std: 0.02,
            elastic_amplitude_px: 1.5,
            simplify_epsilon_px: 1.2,
            smoothing_iterations: 1,
            tremor_amplitude_px: 0.5,
            stroke_width_px: 1.1,
            pressure_variation: 0.4,
            ink: 70,
            gaps_per_100px: 0.5,
            overshoot_px: 6.0,
            passes: 3,
            retrace_offset_px: 1.5,
            min_contour_length_px: 10.0,
            expected_chamfer: [1.4, 2.5],
            ..base("sketchy multi-stroke")
        },
        // Fast strokes: rounded-off shapes, pen lifts, run-on ends, some parts skipped.
        DrawerStyle {
            shift_px: 2.5,
            rotation_deg: 1.5,
            scale_log_std: 0.03,
            elastic_amplitude_px: 2.5,
            simplify_epsilon_px: 2.0,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.5,
            pressure_variation: 0.3,
            gaps_per_100px: 0.8,
            gap_length_px: 5.0,
            overshoot_px: 8.0,
            drop_contour_probability: 0.05,
            min_contour_length_px: 15.0,
            expected_chamfer: [2.0, 3.8],
            ..base("quick")
        },
        // Abstracts every organ into a few straight-ish strokes and leaves parts out.
        DrawerStyle {
            shift_px: 2.0,
            rotation_deg: 1.5,
            scale_log_std: 0.03,
            elastic_amplitude_px: 2.0,
            simplify_epsilon_px: 6.0,
            smoothing_iterations: 1,
            tremor_amplitude_px: 0.4,
            pressure_variation: 0.2,
            overshoot_px: 4.0,
            drop_instance_probability: 0.15,
            drop_contour_probability: 0.15,
            min_contour_length_px: 40.0,
            expected_chamfer: [2.2, 3.5],
            ..base("minimal")
        },
        // Right shapes, bent: strong smooth elastic distortion of the whole drawing.
        DrawerStyle {
            shift_px: 1.5,
            rotation_deg: 1.0,
            scale_log_std: 0.03,
            elastic_amplitude_px: 7.0,
            elastic_wavelength_px: 110.0,
            simplify_epsilon_px: 1.5,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.5,
            pressure_variation: 0.3,
            min_contour_length_px: 12.0,
            expected_chamfer: [2.5, 5.0],
            ..base("wobbly")
        },
        // Draws the right shapes in the wrong place.
        DrawerStyle {
            shift_px: 9.0,
            rotation_deg: 1.0,
            scale_log_std: 0.02,
            elastic_amplitude_px: 1.5,
            simplify_epsilon_px: 1.0,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.4,
            pressure_variation: 0.2,
            min_contour_length_px: 10.0,
            expected_chamfer: [4.0, 8.0],
            ..base("offset")
        },
        // Holds the page at an angle.
        DrawerStyle {
            shift_px: 2.0,
            rotation_deg: 12.0,
            scale_log_std: 0.02,
            elastic_amplitude_px: 1.5,
            simplify_epsilon_px: 1.0,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.4,
            pressure_variation: 0.2,
            min_contour_length_px: 10.0,
            expected_chamfer: [3.0, 9.0],
            ..base("rotated")
        },
        // Draws everything too big.
        DrawerStyle {
            shift_px: 2.0,
            rotation_deg: 1.5,
            scale_mean: 1.15,
            scale_log_std: 0.04,
            elastic_amplitude_px: 2.0,
            simplify_epsilon_px: 1.5,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.4,
            pressure_variation: 0.25,
            min_contour_length_px: 10.0,
            expected_chamfer: [4.6, 8.6],
            ..base("large")
        },
        // Draws everything too small.
        DrawerStyle {
            shift_px: 2.0,
            rotation_deg: 1.5,
            scale_mean: 0.85,
            scale_log_std: 0.04,
            elastic_amplitude_px: 2.0,
            simplify_epsilon_px: 1.5,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.4,
            pressure_variation: 0.25,
            min_contour_length_px: 10.0,
            expected_chamfer: [4.3, 8.5],
            ..base("small")
        },
        // Everything at once: misplaced, bent, abstract, broken, incomplete.
        DrawerStyle {
            shift_px: 8.0,
            rotation_deg: 7.0,
            scale_log_std: 0.1,
            elastic_amplitude_px: 8.0,
            elastic_wavelength_px: 100.0,
            simplify_epsilon_px: 5.0,
            smoothing_iterations: 2,
            tremor_amplitude_px: 1.0,
            tremor_wavelength_px: 7.0,
            stroke_width_px: 2.0,
            pressure_variation: 0.4,
            gaps_per_100px: 1.0,
            gap_length_px: 6.0,
            overshoot_px: 12.0,
            drop_instance_probability: 0.1,
            drop_contour_probability: 0.1,
            min_contour_length_px: 30.0,
            expected_chamfer: [6.0, 11.5],
            ..base("careless")
        },
    ]
}

/// Five part-wise drawer styles: people who draw each organ as its own closed loop and place,
/// turn and size each one on their own (tonsils outside the wall, a loose uvula), leave out any
/// part, draw only pieces of outlines, simplify and over-trace. They complement
/// [`drawer_styles`], whose errors move the whole drawing at once. The values are plausible
/// amounts at 256 px, not fitted to any measurement; `expected_chamfer` is left open.
/// See `docs/SKETCHES.md`.
pub fn partwise_styles() -> Vec<DrawerStyle> {
    let base = DrawerStyle::faithful;
    vec![
        // Draws the right organs, each as a clean closed loop, but places each one loosely.
        DrawerStyle {
            shift_px: 2.0,
            rotation_deg: 1.5,
            scale_log_std: 0.03,
            elastic_amplitude_px: 1.5,
            simplify_epsilon_px: 1.5,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.4,
            pressure_variation: 0.2,
            min_contour_length_px: 10.0,
            part_shift_px: 8.0,
            part_rotation_deg: 8.0,
            part_scale_log_std: 0.12,
            close_loops: true,
            ..base("loose parts")
        },
        // Draws organ by organ from memory: smooth loops, each sized and turned on its own,
        // now and then one organ forgotten.
        DrawerStyle {
            shift_px: 3.0,
            rotation_deg: 2.0,
            scale_log_std: 0.04,
            elastic_amplitude_px: 2.0,
            simplify_epsilon_px: 3.0,
            smoothing_iterations: 3,
            tremor_amplitude_px: 0.3,
            stroke_width_px: 2.0,
            pressure_variation: 0.2,
            min_contour_length_px: 15.0,
            part_shift_px: 5.0,
            part_rotation_deg: 12.0,
            part_scale_log_std: 0.2,
            close_loops: true,
            drop_any_part_probability: 0.1,
            ..base("organ by organ")
        },
        // Outlines started and not finished: many strokes cover only part of an organ.
        DrawerStyle {
            shift_px: 2.0,
            rotation_deg: 1.5,
            scale_log_std: 0.03,
            elastic_amplitude_px: 2.0,
            simplify_epsilon_px: 2.0,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.5,
            pressure_variation: 0.3,
            gaps_per_100px: 0.5,
            min_contour_length_px: 12.0,
            part_shift_px: 3.0,
            part_rotation_deg: 4.0,
            part_scale_log_std: 0.05,
            partial_stroke_probability: 0.5,
            partial_stroke_min_fraction: 0.4,
            ..base("partial outlines")
        },
        // A few simplified closed shapes, parts misplaced and any part possibly missing.
        DrawerStyle {
            shift_px: 2.5,
            rotation_deg: 2.0,
            scale_log_std: 0.04,
            elastic_amplitude_px: 2.0,
            simplify_epsilon_px: 8.0,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.3,
            pressure_variation: 0.2,
            min_contour_length_px: 40.0,
            part_shift_px: 6.0,
            part_rotation_deg: 10.0,
            part_scale_log_std: 0.15,
            close_loops: true,
            drop_any_part_probability: 0.2,
            ..base("minimalist parts")
        },
        // Over-traces every loop with a soft pencil; parts misplaced a little.
        DrawerStyle {
            shift_px: 2.0,
            rotation_deg: 1.5,
            scale_log_std: 0.03,
            elastic_amplitude_px: 1.5,
            simplify_epsilon_px: 2.0,
            smoothing_iterations: 2,
            tremor_amplitude_px: 0.6,
            stroke_width_px: 1.2,
            pressure_variation: 0.4,
            ink: 60,
            overshoot_px: 8.0,
            passes: 3,
            retrace_offset_px: 2.0,
            min_contour_length_px: 10.0,
            part_shift_px: 4.0,
            part_rotation_deg: 6.0,
            part_scale_log_std: 0.08,
            close_loops: true,
            partial_stroke_probability: 0.2,
            partial_stroke_min_fraction: 0.6,
            ..base("over-traced loops")
        },
    ]
}
