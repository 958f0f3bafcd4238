//! LPIPS v0.1 (richzhang/PerceptualSimilarity, the `lpips` 0.1.4 package, `lpips/lpips.py`
//! `LPIPS(net='alex'|'vgg', version='0.1')`) over the torchvision trunks of `backbones`.
//!
//! Per tap l of the trunk (alex relu1..relu5, vgg relu1_2..relu5_3), on inputs in [-1, 1]:
//! ScalingLayer `(x - shift) / scale` -> trunk -> unit-normalise over channels
//! (`f / (sqrt(sum_c f^2) + 1e-10)`) -> squared difference -> `lin{l}` (1x1 conv C -> 1, no bias;
//! dropout is inactive in eval) -> spatial mean; LPIPS = sum over the 5 taps. `lpips=True`,
//! `spatial=False` only.
//!
//! Weights: the linear layers ship in the `lpips` wheel (converted to
//! `weights/lpips_v0.1_{alex,vgg}_lin.safetensors`, keys `lin{0..4}.model.1.weight`); the trunks
//! are torchvision's ImageNet AlexNet / VGG16 (`features.*` names), which the user supplies (see
//! [`crate::weights::how_to_get`]). [`LinLayers`] and the distance code are shared with
//! [`crate::stlpips`].
//!
//! NOTE: the trunk runs once on the concatenation `[x0; x1]` (one batch of 2B) instead of twice,
//! except when only one input carries a gradient graph (a training target): then separately, so
//! that backward skips the target's half. The networks have no batch-dependent layer, so values
//! are identical either way. See
//! [`crate::ops::normalize_channels`] for the one numerical deviation (finite gradients at
//! all-zero feature vectors).

use std::path::Path;

use backbones::{AlexNetFeatures, Vgg16Config, Vgg16Features};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::checks::{RANGE_TOL, check_pair, check_range};
use crate::error::{LossError, Result};
use crate::ops;
use crate::weights;

/// The trunk of an LPIPS-family network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LpipsNet {
    /// AlexNet taps relu1..relu5 (64, 192, 384, 256, 256 channels).
    Alex,
    /// VGG16 taps relu1_2..relu5_3 (64, 128, 256, 512, 512 channels).
    Vgg,
}

impl LpipsNet {
    /// Channels of the five taps (`self.chns` in the reference).
    pub fn channels(self) -> [usize; 5] {
        match self {
            LpipsNet::Alex => [64, 192, 384, 256, 256],
            LpipsNet::Vgg => [64, 128, 256, 512, 512],
        }
    }

    /// The reference's `net=` string.
    pub fn name(self) -> &'static str {
        match self {
            LpipsNet::Alex => "alex",
            LpipsNet::Vgg => "vgg",
        }
    }
}

/// The five `NetLinLayer`s (`lin{k}.model.1.weight`, `[1, C_k, 1, 1]`, no bias).
#[derive(Debug, Clone)]
pub struct LinLayers {
    weights: Vec<Tensor>,
}

impl LinLayers {
    /// Reads `lin0..lin4.model.1.weight` under `vb` (the root of an LPIPS state dict).
    pub fn new(net: LpipsNet, vb: VarBuilder) -> Result<Self> {
        let weights = net
            .channels()
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                Ok(vb
                    .pp(format!("lin{k}"))
                    .pp("model.1")
                    .get((1, c, 1, 1), "weight")?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { weights })
    }

    /// Per-layer distances `[B]` between the taps of x0 (`t0`) and of x1 (`t1`).
    pub fn layer_distances(&self, t0: &[Tensor], t1: &[Tensor]) -> Result<Vec<Tensor>> {
        if t0.len() != self.weights.len() || t1.len() != self.weights.len() {
            return Err(LossError::Config(format!(
                "LPIPS: {}/{} taps for {} linear layers",
                t0.len(),
                t1.len(),
                self.weights.len()
            )));
        }
        t0.iter()
            .zip(t1)
            .zip(&self.weights)
            .map(|((a, b), w)| {
                let d = (ops::normalize_channels(a)? - ops::normalize_channels(b)?)?.sqr()?;
                // 1x1 conv C -> 1 then spatial mean -> [B].
                let r = d.conv2d(w, 0, 1, 1, 1)?;
                Ok(r.flatten_from(1)?.mean(1)?)
            })
            .collect()
    }
}

/// Runs `trunk` on both inputs: once on `[x0; x1]` when both or neither carry a gradient graph,
/// separately when only one does (a constant target then costs no backward work).
pub(crate) fn run_pair(
    trunk: impl Fn(&Tensor) -> Result<Vec<Tensor>>,
    x0: &Tensor,
    x1: &Tensor,
) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    if x0.track_op() != x1.track_op() {
        return Ok((trunk(x0)?, trunk(x1)?));
    }
    let b = x0.dim(0)?;
    let both = trunk(&Tensor::cat(&[x0, x1], 0)?)?;
    let split = |off: usize| -> Result<Vec<Tensor>> {
        both.iter().map(|t| Ok(t.narrow(0, off, b)?)).collect()
    };
    Ok((split(0)?, split(b)?))
}

/// Sums per-layer `[B]` distances.
pub(crate) fn sum_layers(layers: &[Tensor]) -> Result<Tensor> {
    let mut it = layers.iter();
    let first = it
        .next()
        .ok_or_else(|| LossError::Config("no LPIPS layers".into()))?
        .clone();
    it.try_fold(first, |acc, l| Ok((acc + l)?))
}

#[derive(Debug, Clone)]
enum Trunk {
    Alex(AlexNetFeatures),
    Vgg(Vgg16Features),
}

/// LPIPS v0.1 with a torchvision trunk (see the module docs).
#[derive(Debug, Clone)]
pub struct Lpips {
    net: LpipsNet,
    trunk: Trunk,
    lins: LinLayers,
    shift: Tensor,
    scale: Tensor,
}

impl Lpips {
    /// Builds from a torchvision-named trunk (`trunk_vb` at the root of an `alexnet`/`vgg16`
    /// state dict) and the linear layers (`lin_vb` at the root of an LPIPS state dict).
    pub fn new(net: LpipsNet, trunk_vb: VarBuilder, lin_vb: VarBuilder) -> Result<Self> {
        let (shift, scale) = ops::lpips_scaling(trunk_vb.device(), trunk_vb.dtype())?;
        let trunk = match net {
            LpipsNet::Alex => Trunk::Alex(AlexNetFeatures::new(trunk_vb)?),
            LpipsNet::Vgg => Trunk::Vgg(Vgg16Features::new(Vgg16Config::lpips(), trunk_vb)?),
        };
        let lins = LinLayers::new(net, lin_vb)?;
        Ok(Self {
            net,
            trunk,
            lins,
            shift,
            scale,
        })
    }

    /// Loads the trunk (torchvision safetensors) and the linear layers from files; every key
    /// is checked before building and a missing file names itself and how to obtain it.
    pub fn load(
        net: LpipsNet,
        trunk_path: &Path,
        lin_path: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let trunk = weights::read(trunk_path, device)?;
        let lin = weights::read(lin_path, device)?;
        let lins = backbones::weights::build_verified(
            &lin_path.display().to_string(),
            lin,
            dtype,
            device,
            |vb| {
                LinLayers::new(net, vb).map_err(|e| backbones::BackboneError::Config(e.to_string()))
            },
        )?;
        let (shift, scale) = ops::lpips_scaling(device, dtype)?;
        let name = trunk_path.display().to_string();
        let trunk = match net {
            LpipsNet::Alex => Trunk::Alex(backbones::weights::build_verified(
                &name,
                trunk,
                dtype,
                device,
                AlexNetFeatures::new,
            )?),
            LpipsNet::Vgg => Trunk::Vgg(backbones::weights::build_verified(
                &name,
                trunk,
                dtype,
                device,
                |vb| Vgg16Features::new(Vgg16Config::lpips(), vb),
            )?),
        };
        Ok(Self {
            net,
            trunk,
            lins,
            shift,
            scale,
        })
    }

    /// Loads from a weights folder: the trunk from [`weights::ALEXNET_TRUNK`] /
    /// [`weights::VGG16_TRUNK`], the linear layers from [`weights::LPIPS_ALEX_LIN`] /
    /// [`weights::LPIPS_VGG_LIN`].
    pub fn from_dir(net: LpipsNet, dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let (trunk, lin) = Self::file_names(net);
        Self::load(net, &dir.join(trunk), &dir.join(lin), dtype, device)
    }

    /// `(trunk, linear layers)` file names in a weights folder.
    pub fn file_names(net: LpipsNet) -> (&'static str, &'static str) {
        match net {
            LpipsNet::Alex => (weights::ALEXNET_TRUNK, weights::LPIPS_ALEX_LIN),
            LpipsNet::Vgg => (weights::VGG16_TRUNK, weights::LPIPS_VGG_LIN),
        }
    }

    pub fn net(&self) -> LpipsNet {
        self.net
    }

    /// Smallest image side the trunk accepts.
    pub fn min_size(&self) -> usize {
        match self.net {
            LpipsNet::Alex => 31,
            LpipsNet::Vgg => 16,
        }
    }

    fn taps(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let x = ops::scale_input(x, &self.shift, &self.scale)?;
        let maps = match &self.trunk {
            Trunk::Alex(t) => t.forward(&x)?,
            Trunk::Vgg(t) => t.forward(&x)?,
        };
        Ok(maps.into_tensors())
    }

    /// Per-layer distances (5 tensors `[B]`) without input checks.
    pub fn layers_unchecked(&self, x0: &Tensor, x1: &Tensor) -> Result<Vec<Tensor>> {
        let (t0, t1) = run_pair(|x| self.taps(x), x0, x1)?;
        self.lins.layer_distances(&t0, &t1)
    }

    /// LPIPS `[B]` without input checks (differentiable w.r.t. both inputs).
    pub fn distance_unchecked(&self, x0: &Tensor, x1: &Tensor) -> Result<Tensor> {
        sum_layers(&self.layers_unchecked(x0, x1)?)
    }

    /// LPIPS `[B]` between two `[B, 3, H, W]` batches in [-1, 1] (metric use: both ranges are
    /// checked, with [`RANGE_TOL`]).
    pub fn distance(&self, x0: &Tensor, x1: &Tensor) -> Result<Tensor> {
        let what = format!("LPIPS-{}", self.net.name());
        check_pair(&what, x0, x1, 3, self.min_size())?;
        check_range(&format!("{what} first image"), x0, -1.0, 1.0, RANGE_TOL)?;
        check_range(&format!("{what} second image"), x1, -1.0, 1.0, RANGE_TOL)?;
        self.distance_unchecked(x0, x1)
    }

    /// Training loss: mean over the batch of LPIPS(pred, target) (e4e's `LPIPS` criterion).
    /// Shapes and the target's range are checked; `pred` (an unclamped generator output) is not.
    pub fn loss(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        let what = format!("LPIPS-{} loss", self.net.name());
        check_pair(&what, pred, target, 3, self.min_size())?;
        check_range(&format!("{what} target"), target, -1.0, 1.0, RANGE_TOL)?;
        Ok(self.distance_unchecked(pred, target)?.mean_all()?)
    }
}
