//! Image folders, image loading and the feature extractors behind FID / `FD[...]` and KID.
//!
//! Images are read as 8-bit RGB (any colour mode converted, alpha dropped) and handed to the
//! extractors as `[B, 3, H, W]` f32 tensors **in [0, 1]** (`v / 255`, pytorch-fid's
//! `ToTensor`). Consecutive images of equal size are batched (pytorch-fid needs equal sizes
//! within a batch; every image is resized on its own inside the extractor, so batching does
//! not change any value).
//!
//! Extractors ([`FeatureExtractor`]):
//! * [`InceptionFeatures`]: pytorch-fid's FID Inception-v3 (`backbones::FidInceptionV3`),
//!   resize to 299x299 bilinear (`align_corners=False`, no antialias), `2x - 1`, 2048-d pool3.
//!   Only this extractor loaded from a weight file is labelled **FID**.
//! * [`AlexNetFeatures`]: torchvision AlexNet `features` (the LPIPS trunk), input scaled as
//!   LPIPS does (`(2x - 1 - shift) / scale`, i.e. ImageNet mean/std), the spatial means of the
//!   five LPIPS taps relu1..relu5 concatenated (64+192+384+256+256 = 1152-d), no resize.
//!   Labelled `FD[alexnet]`. NOTE: early taps are included on purpose: they carry the
//!   low-level statistics (noise, blur) that a small-sample FD over a non-Inception trunk
//!   would otherwise miss.
//!
//! * [`StLpipsAlexFeatures`]: the anti-aliased AlexNet trunk of ST-LPIPS
//!   (`losses::StAlexTrunk`, trained weights shipped as `weights/stlpips_alex.safetensors`),
//!   input scaled with the file's `scaling_layer` (LPIPS constants), concatenated spatial means
//!   of its five taps (1152-d), no resize (sides >= 31 px). Labelled `FD[stlpips-alex]`: the
//!   default FD extractor when the Inception weights are absent.
//!
//! Extractors built from the synthetic weight formula (`backbones::synthetic`) carry a
//! `-synthetic` name suffix and are only for tests and benchmarks.

pub mod error;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use s2m_core::CoreError;
use s2m_core::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::features::error::{MetricsError, Result};

/// LPIPS v0.1 ScalingLayer constants (on [-1, 1] input).
pub const LPIPS_SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
pub const LPIPS_SCALE: [f32; 3] = [0.458, 0.448, 0.450];

pub use s2m_core::imageio::IMAGE_EXTENSIONS;

/// The image files of a folder ([`s2m_core::imageio::list_images`]: non-recursive, sorted by
/// file name); a folder without any image file is an error (every metric needs images).
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = s2m_core::imageio::list_images(dir).map_err(|e| match e {
        CoreError::Io { path, source } => MetricsError::io(path, source),
        other => other.into(),
    })?;
    if files.is_empty() {
        return Err(MetricsError::Invalid(format!(
            "{} holds no image files ({})",
            dir.display(),
            IMAGE_EXTENSIONS.join(", ")
        )));
    }
    Ok(files)
}

/// Loads an image file as a `[3, H, W]` f32 tensor in [0, 1]. The error names the file.
pub fn load_image_unit(path: &Path, device: &Device) -> Result<Tensor> {
    let img = s2m_core::imageio::load_rgb(path).map_err(|e| MetricsError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = w * h;
    let mut v = vec![0f32; 3 * plane];
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            v[c * plane + i] = px[c] as f32 / 255.0;
        }
    }
    Ok(Tensor::from_vec(v, (3, h, w), device)?)
}

/// A feature extractor for FID-style statistics.
pub trait FeatureExtractor: Send + Sync {
    /// Short name, e.g. `inception-v3-fid`, `alexnet`, `alexnet-synthetic`.
    fn name(&self) -> &str;
    /// Feature dimension.
    fn dim(&self) -> usize;
    /// True only for pytorch-fid's Inception with real weights: the one extractor whose
    /// Frechet distance may be called FID.
    fn is_fid(&self) -> bool {
        false
    }
    /// Features `[B, dim]` (f32) of images `[B, 3, H, W]` in [0, 1].
    fn features(&self, images: &Tensor) -> Result<Tensor>;
    /// The report label: `FID` or `FD[<name>]`; KID likewise `KID` or `KD[<name>]`.
    fn fd_label(&self) -> String {
        if self.is_fid() {
            "FID".into()
        } else {
            format!("FD[{}]", self.name())
        }
    }
    fn kid_label(&self) -> String {
        if self.is_fid() {
            "KID".into()
        } else {
            format!("KID[{}]", self.name())
        }
    }
}

/// pytorch-fid's Inception-v3 pool3 (see the module docs).
pub struct InceptionFeatures {
    model: backbones::FidInceptionV3,
    name: String,
    real: bool,
}

impl InceptionFeatures {
    /// Loads converted pytorch-fid weights (`pt_inception-2015-12-05-6726825d.pth` through
    /// `tools/backbones_convert.py`). A missing file is [`MetricsError::WeightsMissing`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(MetricsError::WeightsMissing(path.to_path_buf()));
        }
        let model = backbones::FidInceptionV3::load(
            path,
            backbones::FidInceptionConfig::default(),
            DType::F32,
            device,
        )?;
        Ok(Self {
            model,
            name: "inception-v3-fid".into(),
            real: true,
        })
    }

    /// The architecture with synthetic weights (tests, benches): named
    /// `inception-v3-synthetic`, labelled `FD[...]`.
    pub fn synthetic(device: &Device) -> Result<Self> {
        let vb = backbones::synthetic::synthetic_var_builder(DType::F32, device);
        let model = backbones::FidInceptionV3::new(backbones::FidInceptionConfig::default(), vb)?;
        Ok(Self {
            model,
            name: "inception-v3-synthetic".into(),
            real: false,
        })
    }
}

impl FeatureExtractor for InceptionFeatures {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        2048
    }
    fn is_fid(&self) -> bool {
        self.real
    }
    fn features(&self, images: &Tensor) -> Result<Tensor> {
        let maps = self.model.forward(images)?;
        Ok(maps.require("pool3")?.to_dtype(DType::F32)?)
    }
}

/// torchvision AlexNet trunk, concatenated spatial means of relu1..relu5 (module docs).
pub struct AlexNetFeatures {
    model: backbones::AlexNetFeatures,
    name: String,
}

impl AlexNetFeatures {
    /// Loads a torchvision `alexnet` state dict converted to safetensors.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(MetricsError::WeightsMissing(path.to_path_buf()));
        }
        Ok(Self {
            model: backbones::AlexNetFeatures::load(path, DType::F32, device)?,
            name: "alexnet".into(),
        })
    }

    /// Synthetic weights (tests, benches): `alexnet-synthetic`.
    pub fn synthetic(device: &Device) -> Result<Self> {
        let vb = backbones::synthetic::synthetic_var_builder(DType::F32, device);
        Ok(Self {
            model: backbones::AlexNetFeatures::new(vb)?,
            name: "alexnet-synthetic".into(),
        })
    }
}

/// `(2x - 1 - shift) / scale` per channel (LPIPS ScalingLayer on [0, 1] input).
pub fn lpips_scaling(x: &Tensor) -> Result<Tensor> {
    let dev = x.device();
    let shift = Tensor::from_slice(&LPIPS_SHIFT, (1, 3, 1, 1), dev)?;
    let scale = Tensor::from_slice(&LPIPS_SCALE, (1, 3, 1, 1), dev)?;
    Ok(x.affine(2.0, -1.0)?
        .broadcast_sub(&shift)?
        .broadcast_div(&scale)?)
}

impl FeatureExtractor for AlexNetFeatures {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        1152
    }
    fn features(&self, images: &Tensor) -> Result<Tensor> {
        let maps = self.model.forward(&lpips_scaling(images)?)?;
        let means = maps
            .iter()
            .map(|(_, t)| t.mean((2, 3)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&means, 1)?.to_dtype(DType::F32)?)
    }
}

/// ST-LPIPS's anti-aliased AlexNet trunk (module docs).
pub struct StLpipsAlexFeatures {
    trunk: losses::StAlexTrunk,
    shift: Tensor,
    scale: Tensor,
}

impl StLpipsAlexFeatures {
    /// The shipped file name (in the weights folder).
    pub const FILE: &'static str = "stlpips_alex.safetensors";

    /// Loads a complete ST-LPIPS alex file (`scaling_layer.*`, `net.slice*`; `lin*` unused).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(MetricsError::WeightsMissing(path.to_path_buf()));
        }
        let t = backbones::weights::read_safetensors(path, device)?;
        let vb = candle_nn::VarBuilder::from_tensors(t, DType::F32, device);
        let lossy = |e: losses::LossError| MetricsError::io(path, e);
        let trunk = losses::StAlexTrunk::new(vb.pp("net")).map_err(lossy)?;
        let sl = vb.pp("scaling_layer");
        Ok(Self {
            trunk,
            shift: sl.get((1, 3, 1, 1), "shift")?,
            scale: sl.get((1, 3, 1, 1), "scale")?,
        })
    }
}

impl FeatureExtractor for StLpipsAlexFeatures {
    fn name(&self) -> &str {
        "stlpips-alex"
    }
    fn dim(&self) -> usize {
        1152
    }
    fn features(&self, images: &Tensor) -> Result<Tensor> {
        let (h, w) = (images.dim(2)?, images.dim(3)?);
        if !losses::StAlexTrunk::accepts(h) || !losses::StAlexTrunk::accepts(w) {
            return Err(MetricsError::Invalid(format!(
                "images of {w}x{h} are too small for the ST-LPIPS AlexNet trunk"
            )));
        }
        let x = images
            .affine(2.0, -1.0)?
            .broadcast_sub(&self.shift)?
            .broadcast_div(&self.scale)?;
        let taps = self
            .trunk
            .forward(&x)
            .map_err(|e| MetricsError::Invalid(e.to_string()))?;
        let means = taps
            .iter()
            .map(|t| t.mean((2, 3)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&means, 1)?.to_dtype(DType::F32)?)
    }
}

/// Features of a set of images: row `i` belongs to `files[i]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureSet {
    pub extractor: String,
    pub dim: usize,
    pub files: Vec<PathBuf>,
    /// Row-major `files.len() x dim`.
    pub values: Vec<f32>,
    /// Files that could not be read, with the reason (skipped, not fatal).
    pub skipped: Vec<(PathBuf, String)>,
}

impl FeatureSet {
    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    /// Gaussian statistics of the features.
    pub fn stats(&self) -> Result<crate::frechet::GaussianStats> {
        crate::frechet::GaussianStats::from_features(&self.extractor, &self.values, self.dim)
    }
}

/// Checks a `[B, dim]` feature batch for NaN/inf; the error names the image.
pub fn check_finite(values: &[f32], dim: usize, files: &[PathBuf], extractor: &str) -> Result<()> {
    for (i, row) in values.chunks(dim.max(1)).enumerate() {
        if let Some(v) = row.iter().find(|v| !v.is_finite()) {
            return Err(MetricsError::NonFinite {
                image: files
                    .get(i)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| format!("#{i}")),
                extractor: extractor.to_string(),
                value: *v as f64,
            });
        }
    }
    Ok(())
}

/// Extracts features of `files` in batches of up to `batch_size` consecutive equal-size
/// images. Unreadable images are skipped and listed in [`FeatureSet::skipped`] (or fail the
/// call when `strict`); non-finite features always fail, naming the image. Every image read or
/// skipped counts one unit on `progress` (the caller starts and finishes the stage).
pub fn extract_features(
    extractor: &dyn FeatureExtractor,
    files: &[PathBuf],
    batch_size: usize,
    strict: bool,
    device: &Device,
    progress: &dyn Progress,
) -> Result<FeatureSet> {
    let batch_size = batch_size.max(1);
    let mut set = FeatureSet {
        extractor: extractor.name().to_string(),
        dim: extractor.dim(),
        files: Vec::new(),
        values: Vec::new(),
        skipped: Vec::new(),
    };
    let mut pending: Vec<(PathBuf, Tensor)> = Vec::new();
    let flush = |pending: &mut Vec<(PathBuf, Tensor)>, set: &mut FeatureSet| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let imgs: Vec<Tensor> = pending.iter().map(|(_, t)| t.clone()).collect();
        let batch = Tensor::stack(&imgs, 0)?;
        let f = extractor.features(&batch)?;
        let names: Vec<PathBuf> = pending.iter().map(|(p, _)| p.clone()).collect();
        let dims = f.dims().to_vec();
        if dims != [names.len(), set.dim] {
            return Err(MetricsError::Mismatch(format!(
                "extractor {} returned {dims:?} for {} images, expected [{}, {}]",
                set.extractor,
                names.len(),
                names.len(),
                set.dim
            )));
        }
        let v = f.flatten_all()?.to_vec1::<f32>()?;
        check_finite(&v, set.dim, &names, &set.extractor)?;
        set.values.extend_from_slice(&v);
        set.files.extend(names);
        progress.inc(pending.len() as u64);
        pending.clear();
        Ok(())
    };
    for path in files {
        match load_image_unit(path, device) {
            Ok(t) => {
                let same = pending.first().is_none_or(|(_, p)| p.dims() == t.dims());
                if !same || pending.len() >= batch_size {
                    flush(&mut pending, &mut set)?;
                }
                pending.push((path.clone(), t));
            }
            Err(e) if !strict => {
                set.skipped.push((path.clone(), e.to_string()));
                progress.inc(1);
            }
            Err(e) => return Err(e),
        }
    }
    flush(&mut pending, &mut set)?;
    Ok(set)
}
