//! DICE between the segmentations of reference and generated images, per anatomical class and
//! averaged over the four classes (uvula, pharyngeal wall, tonsil, tongue).
//!
//! Protocol (the paper does not spell out its own; this is the common semantic-segmentation
//! Dice, as in MONAI's `DiceMetric` with per-class averaging):
//! 1. Masks are label maps (`class_id * 16 + instance`, `s2m_core::anatomy`); per class the
//!    **union of its instances** is the binary mask (semantic Dice: two tonsils count as one
//!    tonsil region). A segmentation model's instances are expected thresholded already
//!    (score >= 0.35, as the sketch step).
//! 2. Per image and class: `Dice = 2 |A n B| / (|A| + |B|)`.
//! 3. **Both empty**: the class is **excluded** for that image (neither 1 nor 0); the
//!    per-image DICE is the mean over the classes present in either mask. An image where
//!    every class is empty in both masks has no DICE and is counted in `images_all_empty`.
//! 4. Per class over the set: mean over the images where the class is present in either mask.
//!    Overall: mean and (population, ddof 0) std over images of the per-image DICE.
//!
//! Masks come from label-map PNG files (paired by file name: `<dir>/<id>.png` in both
//! folders, as the phantom's `masks/`) or from a [`SegmentationModel`] (the future SOLOv2
//! synthesizer implements it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use s2m_core::anatomy::{Class, LabelMap};
use serde::{Deserialize, Serialize};

use crate::features::error::{MetricsError, Result};

/// Instance segmentation behind DICE (implemented by the SOLOv2 synthesizer).
pub trait SegmentationModel: Send + Sync {
    /// A short name for the report.
    fn name(&self) -> &str;
    /// Label maps (`class_id * 16 + instance`, instances thresholded) of images
    /// `[B, 3, H, W]` in **[-1, 1]**, one per image, each `W x H`.
    fn segment(&self, images: &Tensor) -> Result<Vec<LabelMap>>;
}

/// Per-class Dice of one image pair; `None` where the class is empty in both masks.
pub type ClassDice = [Option<f64>; 4];

/// Per-class Dice between two label maps of equal size (see the module docs).
pub fn dice_per_class(reference: &LabelMap, generated: &LabelMap) -> Result<ClassDice> {
    if (reference.width(), reference.height()) != (generated.width(), generated.height()) {
        return Err(MetricsError::Mismatch(format!(
            "mask sizes differ: reference {}x{}, generated {}x{}",
            reference.width(),
            reference.height(),
            generated.width(),
            generated.height()
        )));
    }
    let mut inter = [0u64; 4];
    let mut a = [0u64; 4];
    let mut b = [0u64; 4];
    for (&r, &g) in reference.as_raw().iter().zip(generated.as_raw()) {
        let rc = Class::from_id(r / 16).map(Class::index);
        let gc = Class::from_id(g / 16).map(Class::index);
        if let Some(i) = rc {
            a[i] += 1;
        }
        if let Some(i) = gc {
            b[i] += 1;
        }
        if let (Some(i), Some(j)) = (rc, gc)
            && i == j
        {
            inter[i] += 1;
        }
    }
    let mut out = [None; 4];
    for i in 0..4 {
        if a[i] + b[i] > 0 {
            out[i] = Some(2.0 * inter[i] as f64 / (a[i] + b[i]) as f64);
        }
    }
    Ok(out)
}

/// Mean over the classes present in either mask; `None` when all are empty.
pub fn image_dice(d: &ClassDice) -> Option<f64> {
    let v: Vec<f64> = d.iter().flatten().copied().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// DICE over a set of image pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiceSummary {
    /// Mean over images of the per-image DICE.
    pub mean: f64,
    /// Population std over images of the per-image DICE.
    pub std: f64,
    /// Per class (uvula, pharyngeal wall, tonsil, tongue): mean over images where present.
    pub per_class: BTreeMap<String, Option<f64>>,
    /// Image pairs scored.
    pub images: usize,
    /// Pairs where every class is empty in both masks (no DICE; excluded).
    pub images_all_empty: usize,
}

/// Summarises per-image results (module docs, step 4).
pub fn summarize(per_image: &[ClassDice]) -> Result<DiceSummary> {
    let means: Vec<f64> = per_image.iter().filter_map(image_dice).collect();
    if means.is_empty() {
        return Err(MetricsError::Invalid(format!(
            "DICE undefined: all {} mask pairs are empty in every class",
            per_image.len()
        )));
    }
    let mean = means.iter().sum::<f64>() / means.len() as f64;
    let std =
        (means.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / means.len() as f64).sqrt();
    let mut per_class = BTreeMap::new();
    for c in Class::ALL {
        let v: Vec<f64> = per_image.iter().filter_map(|d| d[c.index()]).collect();
        let m = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        per_class.insert(c.name().to_string(), m);
    }
    Ok(DiceSummary {
        mean,
        std,
        per_class,
        images: per_image.len(),
        images_all_empty: per_image.len() - means.len(),
    })
}

/// Reads a label-map PNG (validated encoding); the error names the file.
pub fn load_label_map(path: &Path) -> Result<LabelMap> {
    let g = s2m_core::imageio::load_gray(path).map_err(|e| MetricsError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(LabelMap::from_gray(g, &path.display().to_string())?)
}

/// Pairs the image files of two folders by file stem. Errors (listing up to 5 names of each
/// side) when the sets differ.
pub fn pair_by_stem(a: &[PathBuf], b: &[PathBuf], what: &str) -> Result<Vec<(PathBuf, PathBuf)>> {
    let stem = |p: &PathBuf| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mb: BTreeMap<String, &PathBuf> = b.iter().map(|p| (stem(p), p)).collect();
    let ma: BTreeMap<String, &PathBuf> = a.iter().map(|p| (stem(p), p)).collect();
    let only_a: Vec<&String> = ma.keys().filter(|k| !mb.contains_key(*k)).collect();
    let only_b: Vec<&String> = mb.keys().filter(|k| !ma.contains_key(*k)).collect();
    if !only_a.is_empty() || !only_b.is_empty() {
        let show = |v: &[&String]| {
            let mut s: Vec<String> = v.iter().take(5).map(|s| s.to_string()).collect();
            if v.len() > 5 {
                s.push(format!("... ({} in all)", v.len()));
            }
            s.join(", ")
        };
        return Err(MetricsError::Mismatch(format!(
            "{what}: {} vs {} files cannot be paired by name; only in the first: [{}]; only in \
             the second: [{}]",
            a.len(),
            b.len(),
            show(&only_a),
            show(&only_b)
        )));
    }
    Ok(ma
        .into_iter()
        .filter_map(|(k, pa)| mb.get(&k).map(|pb| (pa.clone(), (*pb).clone())))
        .collect())
}

/// Per-pair result with the file names (for the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiceResult {
    pub summary: DiceSummary,
    /// `(reference, generated)` files and their per-class Dice.
    pub pairs: Vec<(PathBuf, PathBuf, ClassDice)>,
}

/// DICE between the label-map PNGs of two folders, paired by file name.
pub fn dice_from_masks(reference_dir: &Path, generated_dir: &Path) -> Result<DiceResult> {
    let r = crate::features::image_files(reference_dir)?;
    let g = crate::features::image_files(generated_dir)?;
    dice_from_mask_files(&pair_by_stem(&r, &g, "DICE masks")?)
}

/// DICE over explicit `(reference, generated)` mask file pairs.
pub fn dice_from_mask_files(pairs: &[(PathBuf, PathBuf)]) -> Result<DiceResult> {
    let mut out = Vec::with_capacity(pairs.len());
    for (rp, gp) in pairs {
        let rm = load_label_map(rp)?;
        let gm = load_label_map(gp)?;
        let d = dice_per_class(&rm, &gm).map_err(|e| {
            MetricsError::Mismatch(format!("{} vs {}: {e}", rp.display(), gp.display()))
        })?;
        out.push((rp.clone(), gp.clone(), d));
    }
    let per: Vec<ClassDice> = out.iter().map(|p| p.2).collect();
    Ok(DiceResult {
        summary: summarize(&per)?,
        pairs: out,
    })
}
