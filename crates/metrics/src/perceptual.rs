//! Full-reference perceptual metrics of Table I: LPIPS v0.1 (alex/vgg), ST-LPIPS (alex/vgg)
//! and DISTS, over image pairs and over two folders paired by sorted file name.
//!
//! The networks are the `losses` crate's ([`losses::Lpips`], [`losses::StLpips`],
//! [`losses::Dists`]): the same code that trains with them, proven equal to the Python packages
//! (`lpips` 0.1.4, `stlpips-pytorch` 0.0.2, `dists-pytorch` 0.1) in `crates/losses/tests/parity.rs`
//! and `crates/metrics/tests/perceptual.rs` (see `docs/LOSSES.md`).
//!
//! Conventions: images are read as 8-bit RGB and mapped to [-1, 1] (`u8 / 127.5 - 1`, the
//! packages' `normalize=True` path does `2 x - 1` on [0, 1], the same values up to rounding);
//! DISTS gets `(x + 1) / 2` in [0, 1]. No resizing (as pyiqa; NOTE: the DISTS reference script
//! resizes images larger than 256 on the short side, see [`losses::dists`]). Lower is more
//! similar for all three. Folder statistics: mean and population standard deviation (`np.std`,
//! ddof 0) over pairs.
//!
//! Weights: ST-LPIPS alex works out of the box from the repository's `weights/`
//! ([`PerceptualMetric::shipped_st_lpips_alex`]); LPIPS and DISTS need the user-supplied
//! torchvision trunks next to the shipped lin / alpha-beta files ([`PerceptualMetric::from_dir`]
//! names any missing file and how to get it).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use losses::{Dists, LossError, Lpips, LpipsNet, StLpips};

/// Errors of the perceptual metrics (each names the file, folder or tensor at fault).
#[derive(Debug, thiserror::Error)]
pub enum PerceptualError {
    /// From the networks: shapes, ranges, missing or mis-shaped weights.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// An image file could not be read or decoded (the error names it).
    #[error(transparent)]
    Image(#[from] s2m_core::CoreError),
    /// A folder could not be listed, or holds no images.
    #[error("{path}: {message}")]
    Folder { path: PathBuf, message: String },
    /// The two folders differ in image count, or a pair differs in size.
    #[error("{0}")]
    Mismatch(String),
    /// An error while scoring the named files.
    #[error("{context}: {source}")]
    InFiles {
        context: String,
        source: Box<PerceptualError>,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = PerceptualError> = std::result::Result<T, E>;

/// Which metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PerceptualKind {
    /// LPIPS v0.1 (`lpips.LPIPS(net=...)`).
    Lpips(LpipsNet),
    /// ST-LPIPS (`stlpips.LPIPS(net=..., variant='shift_tolerant')`).
    StLpips(LpipsNet),
    /// DISTS (`DISTS_pytorch.DISTS()`).
    Dists,
}

impl PerceptualKind {
    /// `"LPIPS-alex"`, `"ST-LPIPS-vgg"`, `"DISTS"`.
    pub fn name(self) -> String {
        match self {
            PerceptualKind::Lpips(n) => format!("LPIPS-{}", n.name()),
            PerceptualKind::StLpips(n) => format!("ST-LPIPS-{}", n.name()),
            PerceptualKind::Dists => "DISTS".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Net {
    Lpips(Lpips),
    StLpips(StLpips),
    Dists(Dists),
}

/// A perceptual metric ready to run on one device.
#[derive(Debug, Clone)]
pub struct PerceptualMetric {
    kind: PerceptualKind,
    net: Net,
    device: Device,
    dtype: DType,
    /// Pairs per forward pass when scoring folders (consecutive pairs of equal size).
    pub batch_size: usize,
}

/// One scored pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairScore {
    pub a: PathBuf,
    pub b: PathBuf,
    pub value: f64,
}

/// Per-pair values with their mean and population standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct PerceptualReport {
    pub metric: String,
    pub pairs: Vec<PairScore>,
    pub mean: f64,
    pub std: f64,
}

impl PerceptualReport {
    /// Builds the statistics over `pairs` (mean; std with ddof 0). Empty -> NaN.
    pub fn new(metric: String, pairs: Vec<PairScore>) -> Self {
        let (mean, std) = mean_std(&pairs.iter().map(|p| p.value).collect::<Vec<_>>());
        Self {
            metric,
            pairs,
            mean,
            std,
        }
    }

    pub fn values(&self) -> Vec<f64> {
        self.pairs.iter().map(|p| p.value).collect()
    }
}

/// Mean and population standard deviation (ddof 0); NaN for an empty slice.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Image files of a folder (png/jpg/jpeg, case-insensitive, non-recursive), sorted by name.
pub fn list_pair_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let folder_err = |m: String| PerceptualError::Folder {
        path: dir.to_path_buf(),
        message: m,
    };
    let rd = std::fs::read_dir(dir).map_err(|e| folder_err(format!("cannot list: {e}")))?;
    let mut files = Vec::new();
    for entry in rd {
        let p = entry
            .map_err(|e| folder_err(format!("cannot list: {e}")))?
            .path();
        let is_image = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"));
        if is_image && p.is_file() {
            files.push(p);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if files.is_empty() {
        return Err(folder_err("holds no images (png, jpg, jpeg)".into()));
    }
    Ok(files)
}

impl PerceptualMetric {
    /// Wraps a loaded LPIPS network.
    pub fn from_lpips(m: Lpips, device: &Device, dtype: DType) -> Self {
        Self::wrap(PerceptualKind::Lpips(m.net()), Net::Lpips(m), device, dtype)
    }

    /// Wraps a loaded ST-LPIPS network.
    pub fn from_st_lpips(m: StLpips, device: &Device, dtype: DType) -> Self {
        Self::wrap(
            PerceptualKind::StLpips(m.net()),
            Net::StLpips(m),
            device,
            dtype,
        )
    }

    /// Wraps a loaded DISTS network.
    pub fn from_dists(m: Dists, device: &Device, dtype: DType) -> Self {
        Self::wrap(PerceptualKind::Dists, Net::Dists(m), device, dtype)
    }

    fn wrap(kind: PerceptualKind, net: Net, device: &Device, dtype: DType) -> Self {
        Self {
            kind,
            net,
            device: device.clone(),
            dtype,
            batch_size: 8,
        }
    }

    /// Loads `kind` from a weights folder (file names in [`losses::weights`]); a missing file
    /// is named with how to obtain it.
    pub fn from_dir(
        kind: PerceptualKind,
        dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Ok(match kind {
            PerceptualKind::Lpips(n) => {
                Self::from_lpips(Lpips::from_dir(n, dir, dtype, device)?, device, dtype)
            }
            PerceptualKind::StLpips(n) => {
                Self::from_st_lpips(StLpips::from_dir(n, dir, dtype, device)?, device, dtype)
            }
            PerceptualKind::Dists => {
                Self::from_dists(Dists::from_dir(dir, dtype, device)?, device, dtype)
            }
        })
    }

    /// ST-LPIPS alex from the repository's shipped weights (works offline), f32.
    pub fn shipped_st_lpips_alex(device: &Device) -> Result<Self> {
        Self::from_dir(
            PerceptualKind::StLpips(LpipsNet::Alex),
            &losses::weights::shipped_weights_dir(),
            DType::F32,
            device,
        )
    }

    pub fn kind(&self) -> PerceptualKind {
        self.kind
    }

    pub fn name(&self) -> String {
        self.kind.name()
    }

    /// Per-pair values for two `[B, 3, H, W]` batches in [-1, 1] (shapes and ranges checked;
    /// DISTS maps to [0, 1] itself). Runs without building a gradient graph.
    pub fn pairs(&self, a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
        let (a, b) = (
            a.detach().to_dtype(self.dtype)?,
            b.detach().to_dtype(self.dtype)?,
        );
        let d = match &self.net {
            Net::Lpips(m) => m.distance(&a, &b)?,
            Net::StLpips(m) => m.distance(&a, &b)?,
            Net::Dists(m) => {
                // Range-check in [-1, 1] first so that the message speaks of the caller's input.
                let tol = losses::checks::RANGE_TOL;
                losses::checks::check_range("DISTS first image", &a, -1.0, 1.0, tol)?;
                losses::checks::check_range("DISTS second image", &b, -1.0, 1.0, tol)?;
                let to01 = |x: &Tensor| -> Result<Tensor> { Ok(((x + 1.0)? / 2.0)?) };
                m.distance(&to01(&a)?, &to01(&b)?)?
            }
        };
        Ok(d.to_dtype(DType::F64)?.to_vec1::<f64>()?)
    }

    /// The value for one pair of 8-bit RGB images (sizes must match).
    pub fn images(&self, a: &RgbImage, b: &RgbImage) -> Result<f64> {
        if a.dimensions() != b.dimensions() {
            return Err(PerceptualError::Mismatch(format!(
                "{}: the images of a pair differ in size ({}x{} vs {}x{})",
                self.name(),
                a.width(),
                a.height(),
                b.width(),
                b.height()
            )));
        }
        let ta = s2m_core::imageio::rgb_to_tensor(a, &self.device)?.unsqueeze(0)?;
        let tb = s2m_core::imageio::rgb_to_tensor(b, &self.device)?.unsqueeze(0)?;
        Ok(self.pairs(&ta, &tb)?[0])
    }

    /// Scores every pair of two folders, paired by sorted file name (the names need not be
    /// equal). Unequal image counts, a pair of different sizes and an unreadable image are errors
    /// naming the folders / files.
    pub fn folders(&self, dir_a: &Path, dir_b: &Path) -> Result<PerceptualReport> {
        let fa = list_pair_images(dir_a)?;
        let fb = list_pair_images(dir_b)?;
        if fa.len() != fb.len() {
            return Err(PerceptualError::Mismatch(format!(
                "{}: {} has {} images but {} has {}; pairs are formed by sorted file name, so \
                 both folders need the same number of images",
                self.name(),
                dir_a.display(),
                fa.len(),
                dir_b.display(),
                fb.len()
            )));
        }
        let mut out = Vec::with_capacity(fa.len());
        let mut batch: Vec<(PathBuf, PathBuf, Tensor, Tensor)> = Vec::new();
        let bs = self.batch_size.max(1);
        for (pa, pb) in fa.into_iter().zip(fb) {
            let ia = s2m_core::imageio::load_rgb(&pa)?;
            let ib = s2m_core::imageio::load_rgb(&pb)?;
            if ia.dimensions() != ib.dimensions() {
                return Err(PerceptualError::Mismatch(format!(
                    "{}: {} is {}x{} but its pair {} is {}x{}",
                    self.name(),
                    pa.display(),
                    ia.width(),
                    ia.height(),
                    pb.display(),
                    ib.width(),
                    ib.height()
                )));
            }
            let ta = s2m_core::imageio::rgb_to_tensor(&ia, &self.device)?;
            let tb = s2m_core::imageio::rgb_to_tensor(&ib, &self.device)?;
            let same = batch.first().is_none_or(|f| f.2.dims() == ta.dims());
            if !same || batch.len() == bs {
                self.flush(&mut batch, &mut out)?;
            }
            batch.push((pa, pb, ta, tb));
        }
        self.flush(&mut batch, &mut out)?;
        Ok(PerceptualReport::new(self.name(), out))
    }

    fn flush(
        &self,
        batch: &mut Vec<(PathBuf, PathBuf, Tensor, Tensor)>,
        out: &mut Vec<PairScore>,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let a = Tensor::stack(&batch.iter().map(|x| x.2.clone()).collect::<Vec<_>>(), 0)?;
        let b = Tensor::stack(&batch.iter().map(|x| x.3.clone()).collect::<Vec<_>>(), 0)?;
        let v = self.pairs(&a, &b).map_err(|e| PerceptualError::InFiles {
            context: format!(
                "{} on the pairs {} .. {}",
                self.name(),
                batch[0].0.display(),
                batch[batch.len() - 1].0.display()
            ),
            source: Box::new(e),
        })?;
        for ((pa, pb, _, _), value) in batch.drain(..).zip(v) {
            out.push(PairScore {
                a: pa,
                b: pb,
                value,
            });
        }
        Ok(())
    }
}
