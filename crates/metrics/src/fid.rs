//! FID (and `FD[<extractor>]`) between image sets, with cacheable reference statistics.
//!
//! Mirrors pytorch-fid (`pytorch_fid.fid_score`): images in [0, 1] (`ToTensor`), resized to
//! 299x299 with bilinear interpolation (`F.interpolate(align_corners=False)`, no antialias)
//! inside the FID Inception-v3, mapped to [-1, 1] by `2x - 1`, 2048-d pool3 features,
//! `np.cov(rowvar=False)` (N - 1), Frechet distance (see [`crate::frechet`] for the matrix
//! square root). The number of images is reported with every value: the paper-scale protocol
//! needs thousands (FID is biased upwards for small N, and the covariance is singular for
//! N <= 2048).
//!
//! NOTE: clean-fid's default (`mode="clean"`: PIL bicubic antialiased resize, `(x - 128) / 128`)
//! and torch-fidelity's TF1 bilinear are *not* implemented; values differ from those tools by
//! the resize filter (pytorch-fid's `InceptionV3` resizes bilinearly with `align_corners=False`;
//! clean-fid, Parmar et al. 2022, documents how much the filter moves FID).
//!
//! Only [`crate::features::InceptionFeatures`] loaded from a weight file is labelled "FID";
//! every other extractor is labelled `FD[<name>]`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use s2m_core::progress::{NoProgress, Progress};
use serde::{Deserialize, Serialize};

use crate::features::error::{MetricsError, Result};
use crate::features::{FeatureExtractor, FeatureSet, extract_features};
use crate::frechet::{GaussianStats, frechet_distance};

/// A Frechet distance with its label and sample counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdValue {
    /// `FID` or `FD[<extractor>]`.
    pub label: String,
    pub value: f64,
    pub n_generated: usize,
    pub n_reference: usize,
    /// Set when a covariance is singular (fewer images than the feature dimension + 1).
    pub warning: Option<String>,
}

/// FD between feature statistics, with the singular-covariance warning.
pub fn fd_from_stats(
    label: &str,
    generated: &GaussianStats,
    reference: &GaussianStats,
) -> Result<FdValue> {
    if generated.extractor != reference.extractor {
        return Err(MetricsError::Mismatch(format!(
            "statistics from different extractors: {} vs {}",
            generated.extractor, reference.extractor
        )));
    }
    let warning = generated
        .singular_warning()
        .or_else(|| reference.singular_warning());
    Ok(FdValue {
        label: label.to_string(),
        value: frechet_distance(generated, reference)?,
        n_generated: generated.n,
        n_reference: reference.n,
        warning,
    })
}

/// Reference statistics of `files`, read from `cache` when it exists and was computed with the
/// same extractor, else computed (and written to `cache` when given). Each image counts one
/// unit on `progress`.
pub fn reference_stats(
    extractor: &dyn FeatureExtractor,
    files: &[PathBuf],
    cache: Option<&Path>,
    batch_size: usize,
    device: &Device,
    progress: &dyn Progress,
) -> Result<(GaussianStats, Option<FeatureSet>)> {
    if let Some(c) = cache.filter(|c| c.exists()) {
        let s = GaussianStats::load(c)?;
        if s.extractor == extractor.name() {
            progress.inc(files.len() as u64);
            return Ok((s, None));
        }
        return Err(MetricsError::Mismatch(format!(
            "cached statistics {} were computed with {}, not {}; delete the file or pass another",
            c.display(),
            s.extractor,
            extractor.name()
        )));
    }
    let set = extract_features(extractor, files, batch_size, false, device, progress)?;
    let s = set.stats()?;
    if let Some(c) = cache {
        s.save(c)?;
    }
    Ok((s, Some(set)))
}

/// FD between two folders of images (convenience wrapper).
pub fn fd_between_folders(
    extractor: &dyn FeatureExtractor,
    generated: &Path,
    reference: &Path,
    batch_size: usize,
    device: &Device,
) -> Result<FdValue> {
    let g = crate::features::image_files(generated)?;
    let r = crate::features::image_files(reference)?;
    let gs = extract_features(extractor, &g, batch_size, false, device, &NoProgress)?.stats()?;
    let rs = extract_features(extractor, &r, batch_size, false, device, &NoProgress)?.stats()?;
    fd_from_stats(&extractor.fd_label(), &gs, &rs)
}
