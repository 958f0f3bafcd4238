//! The MoCo-v2 similarity loss of pSp / e4e / ReStyle / HyperStyle (`criteria/moco_loss.py`
//! `MocoLoss`), used for non-face domains in place of the ArcFace identity loss.
//!
//! Reference input handling, mirrored exactly by default ([`MocoConfig::reference`]):
//! `F.interpolate(x, size=224)` with the default **nearest** mode (PyTorch's index rule
//! `floor(dst * (in / out))` in float32), **no** ImageNet normalisation (the [-1, 1] tensors go
//! in as they are), the torchvision ResNet-50 up to the global average pool (`[B, 2048]`, eval
//! BatchNorm), `F.normalize(dim=1)`; loss = mean over the batch of `1 - <f(y_hat), f(y)>` with
//! `f(y)` detached.
//!
//! Weights: the official `moco_v2_800ep_pretrain.pth.tar`, converted with
//! `tools/backbones_convert.py --moco` (keeps `module.encoder_q.*` minus the MLP head `fc.*`,
//! strips the prefix). [`MocoLoss::load`] also accepts an unconverted prefix in a safetensors
//! file and strips it itself.
//!
//! NOTE: the nearest resize is built from `index_select` (candle's `upsample_nearest2d` has no
//! backward for non-integer factors and overwrites gradients). [`MocoConfig::imagenet_normalize`]
//! is an opt-in deviation (maps [-1, 1] to ImageNet statistics first) for users who want the
//! input the MoCo network was trained on; it is off by default to match the reference.

use std::path::Path;

use backbones::{ExtraChannelInit, ResNet, ResNetConfig};
use candle_core::{DType, Device, Tensor};

use crate::checks::{RANGE_TOL, check_pair, check_range};
use crate::error::{LossError, Result};
use crate::weights;

/// Input handling of [`MocoLoss`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MocoConfig {
    /// Side of the square the input is resized to (nearest), 224 in the reference.
    pub input_size: usize,
    /// Map [-1, 1] to ImageNet mean/std before the network (not done by the reference).
    pub imagenet_normalize: bool,
}

impl MocoConfig {
    /// The reference: nearest resize to 224, no normalisation.
    pub fn reference() -> Self {
        Self {
            input_size: 224,
            imagenet_normalize: false,
        }
    }
}

impl Default for MocoConfig {
    fn default() -> Self {
        Self::reference()
    }
}

/// PyTorch `nearest` source indices for resizing `inp` -> `out` (`upsample_nearest*d`:
/// identity when equal, `dst >> 1` when doubling, else `min(floor(dst * (float)in / out), in - 1)`
/// in float32).
pub fn nearest_indices(inp: usize, out: usize) -> Vec<u32> {
    if inp == out {
        return (0..out as u32).collect();
    }
    if out == 2 * inp {
        return (0..out as u32).map(|o| o >> 1).collect();
    }
    let scale = inp as f32 / out as f32;
    (0..out)
        .map(|o| (((o as f32) * scale).floor() as usize).min(inp - 1) as u32)
        .collect()
}

/// `F.interpolate(x, size=(h, w))` (nearest) on `[B, C, H, W]`, differentiable.
pub fn resize_nearest(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, ih, iw) = x.dims4()?;
    let dev = x.device();
    let y = if iw == w {
        x.clone()
    } else {
        x.index_select(&Tensor::new(nearest_indices(iw, w), dev)?, 3)?
    };
    Ok(if ih == h {
        y
    } else {
        y.index_select(&Tensor::new(nearest_indices(ih, h), dev)?, 2)?
    })
}

/// The MoCo-v2 cosine loss (see the module docs).
#[derive(Debug, Clone)]
pub struct MocoLoss {
    net: ResNet,
    config: MocoConfig,
}

impl MocoLoss {
    /// Wraps a ResNet (normally [`ResNetConfig::moco_v2`]; its `pool` tap is used).
    pub fn new(net: ResNet, config: MocoConfig) -> Result<Self> {
        if net.config().in_channels != 3 {
            return Err(LossError::Config(format!(
                "MoCo loss needs an RGB ResNet, got in_channels = {}",
                net.config().in_channels
            )));
        }
        if config.input_size < 32 {
            return Err(LossError::Config(format!(
                "MoCo input_size {} is too small (>= 32; the reference uses 224)",
                config.input_size
            )));
        }
        Ok(Self { net, config })
    }

    /// Loads converted MoCo-v2 weights (torchvision `resnet50` names without `fc`); a file that
    /// still has the `module.encoder_q.` prefix is accepted (prefix stripped, `fc.*` dropped).
    /// Missing or mis-shaped keys are all reported by name.
    pub fn load(path: &Path, config: MocoConfig, dtype: DType, device: &Device) -> Result<Self> {
        let mut t = weights::read(path, device)?;
        const PREFIX: &str = "module.encoder_q.";
        if t.keys().any(|k| k.starts_with(PREFIX)) {
            t = backbones::weights::strip_prefix(t, PREFIX);
            t.retain(|k, _| !k.starts_with("fc."));
        }
        let net = ResNet::from_tensors(
            &path.display().to_string(),
            t,
            ResNetConfig::moco_v2(),
            ExtraChannelInit::Zeros,
            dtype,
            device,
        )?;
        Self::new(net, config)
    }

    /// Loads [`weights::MOCO_V2`] from `dir` with the reference input handling.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Self::load(
            &dir.join(weights::MOCO_V2),
            MocoConfig::reference(),
            dtype,
            device,
        )
    }

    pub fn config(&self) -> &MocoConfig {
        &self.config
    }

    /// Unit-normalised pooled features `[B, D]` of `[B, 3, H, W]` images in [-1, 1]
    /// (`extract_feats`).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let s = self.config.input_size;
        let mut h = resize_nearest(x, s, s)?;
        if self.config.imagenet_normalize {
            let dev = x.device();
            let mean = Tensor::new(&[0.485f32, 0.456, 0.406], dev)?
                .reshape((1, 3, 1, 1))?
                .to_dtype(x.dtype())?;
            let std = Tensor::new(&[0.229f32, 0.224, 0.225], dev)?
                .reshape((1, 3, 1, 1))?
                .to_dtype(x.dtype())?;
            h = h
                .affine(0.5, 0.5)?
                .broadcast_sub(&mean)?
                .broadcast_div(&std)?;
        }
        let f = self.net.forward_pooled(&h)?;
        // F.normalize(dim=1): f / max(||f||, 1e-12); the 1e-30 keeps sqrt's gradient finite.
        let n = (f.sqr()?.sum_keepdim(1)? + 1e-30)?.sqrt()?.maximum(1e-12)?;
        Ok(f.broadcast_div(&n)?)
    }

    /// Cosine similarity `[B]` between `f(y_hat)` and the detached `f(y)`, without checks.
    pub fn similarity_unchecked(&self, y_hat: &Tensor, y: &Tensor) -> Result<Tensor> {
        // y's features are detached in the reference: compute them without a graph.
        let fy = self.features(&y.detach())?;
        Ok((self.features(y_hat)? * fy)?.sum(1)?)
    }

    /// Loss `mean_b (1 - cos_b)`; shapes and the target's [-1, 1] range are checked.
    pub fn loss(&self, y_hat: &Tensor, y: &Tensor) -> Result<Tensor> {
        check_pair("MoCo loss", y_hat, y, 3, 1)?;
        check_range("MoCo loss target", y, -1.0, 1.0, RANGE_TOL)?;
        Ok(self
            .similarity_unchecked(y_hat, y)?
            .affine(-1.0, 1.0)?
            .mean_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_indices_follow_pytorch() {
        // torch: F.interpolate(torch.arange(8.)[None,None,None], size=(1,5))
        assert_eq!(nearest_indices(8, 5), vec![0, 1, 3, 4, 6]);
        // 256 -> 224: floor(o * 8/7) in float32.
        let i = nearest_indices(256, 224);
        assert_eq!(&i[..9], &[0, 1, 2, 3, 4, 5, 6, 8, 9]);
        assert_eq!(*i.last().unwrap(), 254);
        assert_eq!(nearest_indices(3, 6), vec![0, 0, 1, 1, 2, 2]);
        assert_eq!(nearest_indices(4, 7), vec![0, 0, 1, 1, 2, 2, 3]);
        // Index sums from torch 2.15 F.interpolate(torch.arange(in), size=out).
        for (inp, out, sum) in [
            (256, 224, 28448u32),
            (64, 224, 7040),
            (100, 224, 11040),
            (224, 256, 28448),
        ] {
            assert_eq!(
                nearest_indices(inp, out).iter().sum::<u32>(),
                sum,
                "{inp} -> {out}"
            );
        }
    }
}
