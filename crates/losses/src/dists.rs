//! DISTS (dingkeyan93/DISTS, the `dists-pytorch` 0.1 package, `DISTS_pytorch/DISTS_pt.py`
//! `DISTS`), usable as a metric and, since it is differentiable here, as a loss.
//!
//! Input RGB in [0, 1]. The trunk is torchvision VGG16 `features` with every max pool replaced
//! by L2 pooling ([`backbones::Vgg16Config::dists`]) on the ImageNet-normalised input. Feature
//! sets k = [raw input x, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3] (3, 64, 128, 256, 512,
//! 512 channels = 1475). Per set and channel: spatial means mu, biased variances, covariance
//! `mean(x y) - mu_x mu_y`; `S1 = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)`,
//! `S2 = (2 cov + c2) / (var_x + var_y + c2)`, c1 = c2 = 1e-6;
//! `DISTS = 1 - sum_kj (alpha_kj S1_kj + beta_kj S2_kj) / (sum alpha + sum beta)`.
//!
//! Weights: `alpha`, `beta` (`[1, 1475, 1, 1]`) ship with the repository
//! (`weights/dists_alpha_beta.safetensors`, from the `dists-pytorch` wheel); the VGG16 trunk is
//! torchvision's (user-supplied, [`crate::weights::VGG16_TRUNK`]).
//!
//! NOTE: the reference script resizes images whose short side exceeds 256 to 256 before the
//! metric (`prepare_image(resize=True)`); this type never resizes (as pyiqa). The trunk runs
//! once on `[x; y]` (separately for a constant target).

use std::path::Path;

use backbones::{Vgg16Config, Vgg16Features};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::checks::{RANGE_TOL, check_pair, check_range};
use crate::error::Result;
use crate::lpips::run_pair;
use crate::ops::spatial_mean;
use crate::weights;

/// Channels of the six DISTS feature sets.
pub const DISTS_CHANNELS: [usize; 6] = [3, 64, 128, 256, 512, 512];
const C1: f64 = 1e-6;
const C2: f64 = 1e-6;

/// DISTS (see the module docs).
#[derive(Debug, Clone)]
pub struct Dists {
    trunk: Vgg16Features,
    /// Normalised alpha / beta per feature set, `[1, C_k]`.
    alpha: Vec<Tensor>,
    beta: Vec<Tensor>,
    mean: Tensor,
    std: Tensor,
}

impl Dists {
    /// Builds from a torchvision VGG16 state dict under `trunk_vb` and `alpha`/`beta` under
    /// `ab_vb`.
    pub fn new(trunk_vb: VarBuilder, ab_vb: VarBuilder) -> Result<Self> {
        let dev = trunk_vb.device().clone();
        let dtype = trunk_vb.dtype();
        let trunk = Vgg16Features::new(Vgg16Config::dists(), trunk_vb)?;
        let total: usize = DISTS_CHANNELS.iter().sum();
        let a = ab_vb.get((1, total, 1, 1), "alpha")?.flatten_all()?;
        let b = ab_vb.get((1, total, 1, 1), "beta")?.flatten_all()?;
        // w_sum = alpha.sum() + beta.sum(), as the reference does on every forward.
        let w = (a.sum_all()? + b.sum_all()?)?;
        let a = a.broadcast_div(&w)?;
        let b = b.broadcast_div(&w)?;
        let mut alpha = Vec::new();
        let mut beta = Vec::new();
        let mut off = 0;
        for c in DISTS_CHANNELS {
            alpha.push(a.narrow(0, off, c)?.reshape((1, c))?);
            beta.push(b.narrow(0, off, c)?.reshape((1, c))?);
            off += c;
        }
        let mean = Tensor::new(&[0.485f32, 0.456, 0.406], &dev)?
            .reshape((1, 3, 1, 1))?
            .to_dtype(dtype)?;
        let std = Tensor::new(&[0.229f32, 0.224, 0.225], &dev)?
            .reshape((1, 3, 1, 1))?
            .to_dtype(dtype)?;
        Ok(Self {
            trunk,
            alpha,
            beta,
            mean,
            std,
        })
    }

    /// Loads the torchvision VGG16 trunk and the alpha/beta file (keys checked before building).
    pub fn load(trunk_path: &Path, ab_path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let trunk = weights::read(trunk_path, device)?;
        let ab = weights::read(ab_path, device)?;
        let total: usize = DISTS_CHANNELS.iter().sum();
        let expected = vec![
            ("alpha".to_string(), vec![1, total, 1, 1]),
            ("beta".to_string(), vec![1, total, 1, 1]),
        ];
        backbones::weights::check_tensors(&ab_path.display().to_string(), &expected, &ab)?;
        let spec =
            backbones::weights::record_params(|vb| Vgg16Features::new(Vgg16Config::dists(), vb))?;
        backbones::weights::check_tensors(&trunk_path.display().to_string(), &spec, &trunk)?;
        Self::new(
            VarBuilder::from_tensors(trunk, dtype, device),
            VarBuilder::from_tensors(ab, dtype, device),
        )
    }

    /// Loads [`weights::VGG16_TRUNK`] and [`weights::DISTS_ALPHA_BETA`] from `dir`.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Self::load(
            &dir.join(weights::VGG16_TRUNK),
            &dir.join(weights::DISTS_ALPHA_BETA),
            dtype,
            device,
        )
    }

    /// Smallest image side (the VGG16 trunk's).
    pub fn min_size(&self) -> usize {
        16
    }

    /// DISTS `[B]` without input checks (inputs in [0, 1]; differentiable w.r.t. both).
    pub fn distance_unchecked(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let feats = |v: &Tensor| -> Result<Vec<Tensor>> {
            let h = v.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
            let mut f = vec![v.clone()];
            f.extend(self.trunk.forward(&h)?.into_tensors());
            Ok(f)
        };
        let (fx, fy) = run_pair(feats, x, y)?;
        let mut acc: Option<Tensor> = None;
        for (((f0, f1), a), be) in fx.iter().zip(&fy).zip(&self.alpha).zip(&self.beta) {
            let (m0, m1) = (spatial_mean(f0)?, spatial_mean(f1)?); // [B, C]
            let s1 = ((&m0 * &m1)?.affine(2.0, C1)? / ((m0.sqr()? + m1.sqr()?)? + C1)?)?;
            let m0e = m0.unsqueeze(2)?.unsqueeze(3)?;
            let m1e = m1.unsqueeze(2)?.unsqueeze(3)?;
            let v0 = spatial_mean(&f0.broadcast_sub(&m0e)?.sqr()?)?;
            let v1 = spatial_mean(&f1.broadcast_sub(&m1e)?.sqr()?)?;
            let cov = (spatial_mean(&(f0 * f1)?)? - (&m0 * &m1)?)?;
            let s2 = (cov.affine(2.0, C2)? / ((v0 + v1)? + C2)?)?;
            let term = (s1.broadcast_mul(a)?.sum(1)? + s2.broadcast_mul(be)?.sum(1)?)?;
            acc = Some(match acc {
                None => term,
                Some(t) => (t + term)?,
            });
        }
        let s = acc.ok_or_else(|| crate::LossError::Config("DISTS: no feature sets".into()))?;
        Ok(s.affine(-1.0, 1.0)?)
    }

    /// DISTS `[B]` between two `[B, 3, H, W]` batches in [0, 1] (both ranges checked).
    pub fn distance(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        check_pair("DISTS", x, y, 3, self.min_size())?;
        check_range("DISTS first image", x, 0.0, 1.0, RANGE_TOL)?;
        check_range("DISTS second image", y, 0.0, 1.0, RANGE_TOL)?;
        self.distance_unchecked(x, y)
    }

    /// Training loss: batch mean of DISTS(pred, target), inputs in [0, 1]; the target's range
    /// is checked, `pred` is not.
    pub fn loss(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        check_pair("DISTS loss", pred, target, 3, self.min_size())?;
        check_range("DISTS loss target", target, 0.0, 1.0, RANGE_TOL)?;
        Ok(self.distance_unchecked(pred, target)?.mean_all()?)
    }
}
