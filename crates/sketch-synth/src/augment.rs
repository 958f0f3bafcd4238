//! Seeded free-hand augmentation of training sketches: how E and H learn to follow drawings that
//! are not the clean contour sketches they are trained on.
//!
//! For each training pair, [`augment_sketch`] either keeps the pair's own sketch (the contours
//! that S drew, with probability [`AugmentConfig::keep_probability`]) or draws the image's label
//! map again as a person would: a drawer style from the twelve of [`drawer_styles`] or the five
//! part-wise ones of [`partwise_styles`] (with probability
//! [`AugmentConfig::partwise_probability`]), on a square page of one of
//! [`AugmentConfig::canvases`] px, with a pen width drawn log-uniformly from
//! [`AugmentConfig::pen_px`] (page pixels). Either way the sketch then goes through
//! [`normalise_sketch`], as every sketch does at inference, so training and inference see the
//! same kind of input.
//!
//! The label map is enlarged to the page by nearest-neighbour sampling; the drawer's outline
//! simplification and rounding remove the staircase. Every random choice comes from the
//! caller's generator in a fixed order: the same inputs and seed give the same sketch.
//!
//! ```
//! use sketch_synth::augment::{AugmentConfig, augment_sketch};
//! let labels = s2m_core::LabelMap::new(64, 64);
//! let own = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
//! let mut rng = s2m_core::rng::rng_from_seed(1);
//! let (sketch, how) = augment_sketch(&labels, &own, 64, &AugmentConfig::default(), &mut rng)?;
//! assert_eq!(sketch.dimensions(), (64, 64));
//! # let _ = how;
//! # Ok::<(), sketch_synth::SketchError>(())
//! ```

use crate::error::{Result, SketchError};
use crate::freehand::simulate_freehand_label_map;
use crate::normalise::{NormaliseConfig, normalise_sketch};
use crate::style::{DrawerStyle, drawer_styles, partwise_styles};
use image::GrayImage;
use image::imageops::{FilterType, resize};
use rand::Rng as _;
use s2m_core::LabelMap;
use s2m_core::rng::Rng;
use serde::{Deserialize, Serialize};

/// Style widths are given at this page size and scaled by `page / 256` when drawn.
const STYLE_REFERENCE_PX: f32 = 256.0;

/// The largest page an augmentation draws on.
pub const MAX_CANVAS_PX: u32 = 2048;

/// How training sketches are augmented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// Probability of keeping the pair's own sketch (only normalised).
    pub keep_probability: f32,
    /// Among the drawn sketches, the probability of a part-wise drawer style.
    pub partwise_probability: f32,
    /// Page sides (px) to draw on, chosen uniformly.
    pub canvases: Vec<u32>,
    /// Pen width range in page pixels `[min, max]`, drawn log-uniformly.
    pub pen_px: [f32; 2],
    /// The normalisation every sketch goes through (the pipeline's).
    pub normalise: NormaliseConfig,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            keep_probability: 0.25,
            partwise_probability: 0.3,
            canvases: vec![64, 128, 256, 512, 1024],
            pen_px: [1.0, 8.0],
            normalise: NormaliseConfig::for_size(64),
        }
    }
}

impl AugmentConfig {
    /// Checks the probabilities (in [0, 1]), the pages (1..=[`MAX_CANVAS_PX`], at least one),
    /// the pen range (finite, 0 < min <= max) and the normalisation for `size`.
    pub fn validate(&self, size: u32) -> Result<()> {
        let bad = |m: String| Err(SketchError::InvalidAugmentation(m));
        for (name, p) in [
            ("keep_probability", self.keep_probability),
            ("partwise_probability", self.partwise_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} must lie in [0, 1], got {p}"));
            }
        }
        if self.canvases.is_empty() {
            return bad("canvases must name at least one page size".into());
        }
        if let Some(c) = self.canvases.iter().find(|&&c| c == 0 || c > MAX_CANVAS_PX) {
            return bad(format!("a canvas of {c} px is outside 1..={MAX_CANVAS_PX}"));
        }
        let [lo, hi] = self.pen_px;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return bad(format!(
                "pen_px must be finite with 0 < min <= max, got [{lo}, {hi}]"
            ));
        }
        self.normalise.validate(size)
    }
}

/// What [`augment_sketch`] did, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Augmentation {
    /// The pair's own sketch, normalised.
    Kept,
    /// Drawn again by `style` on a `canvas` px page with a `pen` px pen, then normalised.
    Drawn {
        style: String,
        canvas: u32,
        pen: f32,
    },
}

/// One training sketch of `size` px for the image with label map `labels`, whose own sketch is
/// `own` (any square size); see the module docs. Errors on an invalid config, an empty or
/// non-square `own`, or an empty label map.
pub fn augment_sketch(
    labels: &LabelMap,
    own: &GrayImage,
    size: u32,
    cfg: &AugmentConfig,
    rng: &mut Rng,
) -> Result<(GrayImage, Augmentation)> {
    cfg.validate(size)?;
    if rng.random::<f32>() < cfg.keep_probability {
        return Ok((
            normalise_sketch(own, size, &cfg.normalise)?,
            Augmentation::Kept,
        ));
    }
    let partwise = rng.random::<f32>() < cfg.partwise_probability;
    let styles: Vec<DrawerStyle> = if partwise {
        partwise_styles()
    } else {
        drawer_styles()
    };
    let mut style = styles[rng.random_range(0..styles.len())].clone();
    let canvas = cfg.canvases[rng.random_range(0..cfg.canvases.len())];
    let [lo, hi] = cfg.pen_px;
    let pen = (lo.ln() + rng.random::<f32>() * (hi.ln() - lo.ln())).exp();
    style.stroke_width_px = pen * STYLE_REFERENCE_PX / canvas as f32;
    let page_labels = if (labels.width(), labels.height()) == (canvas, canvas) {
        labels.clone()
    } else {
        let (w, h) = (labels.width(), labels.height());
        if w == 0 || h == 0 {
            return Err(SketchError::EmptyImage {
                width: w,
                height: h,
            });
        }
        LabelMap::from_gray_unchecked(resize(
            labels.as_gray(),
            canvas,
            canvas,
            FilterType::Nearest,
        ))
    };
    let drawn = simulate_freehand_label_map(&page_labels, &style, rng)?;
    let sketch = normalise_sketch(&drawn.image, size, &cfg.normalise)?;
    Ok((
        sketch,
        Augmentation::Drawn {
            style: style.name,
            canvas,
            pen,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use s2m_core::rng::rng_from_seed;

    fn phantom_labels() -> LabelMap {
        // A wall-like ring and a tonsil-like blob (class ids from the anatomy encoding).
        let mut g = GrayImage::new(64, 64);
        for (x, y, p) in g.enumerate_pixels_mut() {
            let (dx, dy) = (x as f32 - 32.0, y as f32 - 36.0);
            let r = (dx * dx + dy * dy).sqrt();
            if (18.0..24.0).contains(&r) && dy < 10.0 {
                p.0[0] = s2m_core::anatomy::encode_label(s2m_core::Class::PharyngealWall, 1);
            } else if ((x as f32 - 20.0).powi(2) + (y as f32 - 40.0).powi(2)).sqrt() < 5.0 {
                p.0[0] = s2m_core::anatomy::encode_label(s2m_core::Class::Tonsil, 1);
            }
        }
        LabelMap::from_gray(g, "test").unwrap()
    }

    #[test]
    fn same_seed_same_sketch_and_every_branch_is_reached() {
        let labels = phantom_labels();
        let own = GrayImage::from_pixel(64, 64, image::Luma([255]));
        let cfg = AugmentConfig::default();
        let (mut kept, mut drawn, mut partwise) = (0, 0, 0);
        let part_names: Vec<String> = partwise_styles().into_iter().map(|s| s.name).collect();
        for seed in 0..40 {
            let a = augment_sketch(&labels, &own, 64, &cfg, &mut rng_from_seed(seed)).unwrap();
            let b = augment_sketch(&labels, &own, 64, &cfg, &mut rng_from_seed(seed)).unwrap();
            assert_eq!(a, b, "seed {seed}");
            assert_eq!(a.0.dimensions(), (64, 64));
            match a.1 {
                Augmentation::Kept => {
                    kept += 1;
                    assert!(
                        a.0.pixels().all(|p| p.0[0] == 255),
                        "a blank own sketch stays blank"
                    );
                }
                Augmentation::Drawn { style, canvas, pen } => {
                    drawn += 1;
                    partwise += part_names.contains(&style) as usize;
                    assert!(cfg.canvases.contains(&canvas));
                    assert!((1.0..=8.0).contains(&pen), "pen {pen}");
                    assert!(a.0.pixels().any(|p| p.0[0] < 128), "{style}: no ink");
                }
            }
        }
        assert!(
            kept > 0 && drawn > 0 && partwise > 0,
            "{kept} {drawn} {partwise}"
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let labels = phantom_labels();
        let own = GrayImage::from_pixel(64, 64, image::Luma([255]));
        let mut rng = rng_from_seed(0);
        for cfg in [
            AugmentConfig {
                keep_probability: 1.5,
                ..AugmentConfig::default()
            },
            AugmentConfig {
                canvases: vec![],
                ..AugmentConfig::default()
            },
            AugmentConfig {
                canvases: vec![4096],
                ..AugmentConfig::default()
            },
            AugmentConfig {
                pen_px: [3.0, 1.0],
                ..AugmentConfig::default()
            },
            AugmentConfig {
                pen_px: [0.0, 1.0],
                ..AugmentConfig::default()
            },
        ] {
            let e = augment_sketch(&labels, &own, 64, &cfg, &mut rng).unwrap_err();
            assert!(matches!(e, SketchError::InvalidAugmentation(_)), "{e}");
        }
    }
}
