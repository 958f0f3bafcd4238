//! The parameters of one phantom, their ranges, and how they are sampled.
//!
//! All geometry is in *scene units*: the frame spans [-1, 1] on both axes at zoom 1, x to the
//! right, y downwards. Nothing depends on the pixel size, so one parameter set renders the same
//! throat at any resolution. The ranges are listed in `docs/DATASET.md` as well.

use rand::Rng as _;
use s2m_core::rng::Rng;
use serde::{Deserialize, Serialize};

/// Everything that makes one phantom throat differ from another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhantomParams {
    /// Camera roll in degrees. Range [-12, 12].
    pub rotation_deg: f32,
    /// Camera zoom (> 1 = closer). Range [0.85, 1.25].
    pub zoom: f32,
    /// Camera shift of the scene in scene units. Range [-0.08, 0.08] per axis.
    pub shift: [f32; 2],
    /// Vertical opening of the mouth (lips) relative to the frame. Range [0.78, 1.05].
    pub mouth_open: f32,
    /// Horizontal opening of the mouth. Range [0.9, 1.1].
    pub mouth_width: f32,
    /// Half width of the faucial isthmus (between the anterior pillars). Range [0.36, 0.56].
    pub arch_half_width: f32,
    /// Height of the rounded top of the isthmus above its centre. Range [0.32, 0.52].
    pub arch_height: f32,
    /// Vertical centre of the isthmus. Range [-0.12, 0.06].
    pub arch_center_y: f32,
    /// Lateral offset of the isthmus and uvula (anatomical asymmetry). Range [-0.08, 0.08].
    pub asymmetry: f32,
    /// Uvula length from the top of the isthmus. Range [0.22, 0.5].
    pub uvula_length: f32,
    /// Uvula half width at its base. Range [0.065, 0.11].
    pub uvula_width: f32,
    /// Lateral displacement of the uvula tip (tilt). Range [-0.12, 0.12].
    pub uvula_tilt: f32,
    /// Tonsil grades (Brodsky 0-4) on the image's left and right. Grade 0 = no visible tonsil;
    /// grades 1-4 protrude by about 10 / 30 / 55 / 80 % of the isthmus half width.
    pub tonsil_grade: [u8; 2],
    /// Per-tonsil jitter of the protrusion fraction. Range [-0.06, 0.06].
    pub tonsil_jitter: [f32; 2],
    /// Vertical position of the top of the tongue dome (smaller = higher tongue).
    /// Range [0.12, 0.55].
    pub tongue_top: f32,
    /// Curvature of the tongue's upper outline. Range [0.15, 0.6].
    pub tongue_curvature: f32,
    /// Tilt of the tongue's outline (slope across the frame). Range [-0.08, 0.08].
    pub tongue_tilt: f32,
    /// Amplitude of the smooth warp applied to every outline. Range [0.01, 0.035].
    pub outline_warp: f32,
    /// 0 = healthy pink mucosa, 1 = strongly inflamed red. Range [0, 1] (skewed to healthy).
    pub inflammation: f32,
    /// Amount of white exudate spots on the tonsils. 0 for 70 % of samples, else (0, 1].
    pub exudate: f32,
    /// Whitish coating of the tongue. Range [0, 0.7].
    pub tongue_coating: f32,
    /// Number of lymphoid follicles on the pharyngeal wall. Range 4..=45.
    pub follicles: u32,
    /// Number of saliva bubbles. Range 0..=6.
    pub bubbles: u32,
    /// Density of visible vessels. Range [0.2, 1].
    pub vessels: f32,
    /// Flash intensity. Range [0.85, 1.2].
    pub exposure: f32,
    /// Vignetting strength. Range [0.25, 0.65].
    pub vignette: f32,
    /// Specular (wetness) strength. Range [0.25, 0.8].
    pub wetness: f32,
    /// White-balance gains for R, G, B. Range [0.93, 1.07] each.
    pub white_balance: [f32; 3],
    /// Camera blur sigma in pixels at 256 px (scaled with the image size). Range [0.45, 1.3].
    pub blur_px: f32,
    /// Sensor noise standard deviation (fraction of full scale). Range [0.004, 0.02].
    pub noise: f32,
    /// Seed for the placement of small details (follicles, spots, bubbles) and sensor noise.
    pub detail_seed: u64,
    /// Offsets into the texture bank, in texels.
    pub texture_offset: [f32; 2],
}

fn uniform(rng: &mut Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// A tonsil grade with the prevalence of a general outpatient population: most tonsils are
/// grade 1-2, a few absent or grade 3-4.
fn tonsil_grade(rng: &mut Rng) -> u8 {
    let p = rng.random::<f32>();
    match p {
        p if p < 0.10 => 0,
        p if p < 0.40 => 1,
        p if p < 0.72 => 2,
        p if p < 0.90 => 3,
        _ => 4,
    }
}

impl PhantomParams {
    /// Draws a parameter set from the documented ranges.
    pub fn sample(rng: &mut Rng) -> Self {
        let base_grade = tonsil_grade(rng);
        // Tonsils are usually of similar grade on both sides; sometimes asymmetric.
        let other = if rng.random::<f32>() < 0.7 {
            base_grade
        } else {
            tonsil_grade(rng)
        };
        let inflammation = rng.random::<f32>().powf(1.6);
        let exudate = if rng.random::<f32>() < 0.3 {
            uniform(rng, 0.1, 1.0) * (0.4 + 0.6 * inflammation)
        } else {
            0.0
        };
        Self {
            rotation_deg: uniform(rng, -12.0, 12.0),
            zoom: uniform(rng, 0.85, 1.25),
            shift: [uniform(rng, -0.08, 0.08), uniform(rng, -0.08, 0.08)],
            mouth_open: uniform(rng, 0.78, 1.05),
            mouth_width: uniform(rng, 0.9, 1.1),
            arch_half_width: uniform(rng, 0.36, 0.56),
            arch_height: uniform(rng, 0.32, 0.52),
            arch_center_y: uniform(rng, -0.12, 0.06),
            asymmetry: uniform(rng, -0.08, 0.08),
            uvula_length: uniform(rng, 0.22, 0.5),
            uvula_width: uniform(rng, 0.065, 0.11),
            uvula_tilt: uniform(rng, -0.12, 0.12),
            tonsil_grade: [base_grade, other],
            tonsil_jitter: [uniform(rng, -0.06, 0.06), uniform(rng, -0.06, 0.06)],
            tongue_top: uniform(rng, 0.12, 0.55),
            tongue_curvature: uniform(rng, 0.15, 0.6),
            tongue_tilt: uniform(rng, -0.08, 0.08),
            outline_warp: uniform(rng, 0.01, 0.035),
            inflammation,
            exudate,
            tongue_coating: uniform(rng, 0.0, 0.7),
            follicles: rng.random_range(4..=45),
            bubbles: rng.random_range(0..=6),
            vessels: uniform(rng, 0.2, 1.0),
            exposure: uniform(rng, 0.85, 1.2),
            vignette: uniform(rng, 0.25, 0.65),
            wetness: uniform(rng, 0.25, 0.8),
            white_balance: [
                uniform(rng, 0.93, 1.07),
                uniform(rng, 0.93, 1.07),
                uniform(rng, 0.93, 1.07),
            ],
            blur_px: uniform(rng, 0.45, 1.3),
            noise: uniform(rng, 0.004, 0.02),
            detail_seed: rng.random(),
            texture_offset: [uniform(rng, 0.0, 256.0), uniform(rng, 0.0, 256.0)],
        }
    }
}
