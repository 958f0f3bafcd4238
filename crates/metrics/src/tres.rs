//! TReS (Golestaneh et al., WACV 2022): no-reference quality, higher is better (KonIQ MOS scale,
//! roughly 0..100 for pyiqa's `tres_koniq` checkpoint).
//!
//! Mirrors pyiqa's `TReS` (`pyiqa/archs/tres_arch.py`) in eval mode, under its parameter names
//! (`model.*` torchvision ResNet, `transformer.encoder.layers.{i}.{self_attn.in_proj_weight,
//! self_attn.in_proj_bias, self_attn.out_proj, linear1, linear2, norm1, norm2}`,
//! `transformer.encoder.norm`, `fc2`, `fc`):
//! * input RGB in [0, 1] -> ImageNet mean/std;
//! * `uniform_crop`: if `min(H, W) <= 224` the image is first upscaled with
//!   `F.interpolate(scale_factor = 225 / min(H, W), mode="bilinear", align_corners=False)`
//!   (output `floor(side * s)`, source coordinates from the scale factor, as PyTorch does);
//!   then `crops` (pyiqa: 50) 224x224 crops at `(i * step_h, j * step_w)` on a
//!   `ceil(sqrt(crops))`^2 grid (row-major, first `crops` kept), `step = (side - 224) //
//!   floor(sqrt(crops))`;
//! * ResNet taps layer1..layer4 -> `F.normalize(dim=1)` -> L2 pooling (3x3 Hann kernel
//!   `[[1,2,1],[2,4,2],[1,2,1]]/16`, stride 1, pad 1, `sqrt(. + 1e-12)`) -> avg pool 8/4/2/1 to
//!   7x7 -> concat (3840 ch for ResNet-50, 960 for ResNet-18/34);
//! * DETR-style pre-norm transformer encoder (2 layers, 16 heads, FFN 64, ReLU, final
//!   LayerNorm), sine positional encoding (`num_pos_feats = d/2`, normalize, 2 pi, temperature
//!   10000) added to queries and keys only;
//! * `fc(cat(fc2(mean_7x7(transformer)), mean_7x7(layer4)))` per crop, averaged over crops.
//!
//! The horizontally flipped pass of pyiqa's forward only feeds the training consistency loss
//! and is skipped. Dropout is inactive (eval). The `L2pooling_l*.filter` buffers are constants
//! and are not read from the file.

use std::path::Path;

use backbones::{ResNet, ResNetConfig};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder, linear};
use serde::{Deserialize, Serialize};

use crate::features::error::{MetricsError, Result};

/// ImageNet normalisation (pyiqa `default_mean` / `default_std`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// TReS hyper-parameters (pyiqa defaults: ResNet-50, 16 heads, 2 layers, FFN 64, 50 crops).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TresConfig {
    pub backbone: ResNetConfig,
    pub heads: usize,
    pub layers: usize,
    pub ffn: usize,
    /// Uniform 224x224 crops per image (pyiqa `test_sample`).
    pub crops: usize,
}

impl Default for TresConfig {
    fn default() -> Self {
        Self {
            backbone: ResNetConfig::resnet50(),
            heads: 16,
            layers: 2,
            ffn: 64,
            crops: 50,
        }
    }
}

impl TresConfig {
    /// The transformer width: sum of the four stage widths (3840 for ResNet-50; pyiqa uses
    /// 960 for ResNet-18/34).
    pub fn d_model(&self) -> usize {
        if self.backbone.depth.bottleneck() {
            3840
        } else {
            960
        }
    }
}

struct LayerNorm {
    w: Tensor,
    b: Tensor,
}

impl LayerNorm {
    fn new(d: usize, vb: VarBuilder) -> backbones::Result<Self> {
        Ok(Self {
            w: vb.get(d, "weight")?,
            b: vb.get(d, "bias")?,
        })
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, 1e-5)
    }
}

struct EncoderLayer {
    in_w: Tensor,
    in_b: Tensor,
    out: Linear,
    linear1: Linear,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    heads: usize,
}

impl EncoderLayer {
    fn new(d: usize, ffn: usize, heads: usize, vb: VarBuilder) -> backbones::Result<Self> {
        let a = vb.pp("self_attn");
        Ok(Self {
            in_w: a.get((3 * d, d), "in_proj_weight")?,
            in_b: a.get(3 * d, "in_proj_bias")?,
            out: linear(d, d, a.pp("out_proj"))?,
            linear1: linear(d, ffn, vb.pp("linear1"))?,
            linear2: linear(ffn, d, vb.pp("linear2"))?,
            norm1: LayerNorm::new(d, vb.pp("norm1"))?,
            norm2: LayerNorm::new(d, vb.pp("norm2"))?,
            heads,
        })
    }

    /// `forward_pre` on `x [B, L, d]` with positional encoding `pos [1, L, d]`.
    fn forward(&self, x: &Tensor, pos: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let hd = d / self.heads;
        let h = self.norm1.forward(x)?;
        let qk_in = h.broadcast_add(pos)?;
        let proj = |inp: &Tensor, i: usize| -> candle_core::Result<Tensor> {
            let w = self.in_w.narrow(0, i * d, d)?;
            let bb = self.in_b.narrow(0, i * d, d)?;
            inp.broadcast_matmul(&w.t()?)?.broadcast_add(&bb)
        };
        let split = |z: Tensor| -> candle_core::Result<Tensor> {
            z.reshape((b, l, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((proj(&qk_in, 0)? * (hd as f64).powf(-0.5))?)?;
        let k = split(proj(&qk_in, 1)?)?;
        let v = split(proj(&h, 2)?)?;
        let att = candle_nn::ops::softmax_last_dim(&q.matmul(&k.transpose(2, 3)?.contiguous()?)?)?;
        let o = att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, d))?;
        let x = (x + self.out.forward(&o)?)?;
        let h = self.norm2.forward(&x)?;
        let f = self.linear2.forward(&self.linear1.forward(&h)?.relu()?)?;
        x + f
    }
}

/// DETR `PositionEmbeddingSine(d/2, normalize=True)` on an `n x n` grid: `[1, n*n, d]`
/// (token order row-major, channels `[pos_y, pos_x]`).
pub fn sine_position_encoding(d: usize, n: usize, device: &Device) -> Result<Tensor> {
    let f = d / 2;
    let eps = 1e-6f32;
    let scale = 2.0 * std::f32::consts::PI;
    let dim_t: Vec<f32> = (0..f)
        .map(|i| 10000f32.powf(2.0 * (i / 2) as f32 / f as f32))
        .collect();
    let embed = |k: usize| (k as f32 + 1.0) / (n as f32 + eps) * scale;
    let mut out = Vec::with_capacity(n * n * d);
    for y in 0..n {
        for x in 0..n {
            for (e, _) in [(embed(y), 0), (embed(x), 1)] {
                for (i, t) in dim_t.iter().enumerate() {
                    let v = e / t;
                    out.push(if i % 2 == 0 { v.sin() } else { v.cos() });
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (1, n * n, d), device)?)
}

/// `F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)` (no antialias,
/// source coordinates from the scale factor, output `floor(side * s)`).
pub fn resize_bilinear_scale(x: &Tensor, s: f64) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut y = x.clone();
    for (dim, len) in [(3usize, w), (2usize, h)] {
        let out = (len as f64 * s).floor() as usize;
        let inv = (1.0 / s) as f32;
        let mut i0 = Vec::with_capacity(out);
        let mut i1 = Vec::with_capacity(out);
        let mut lam = Vec::with_capacity(out);
        for o in 0..out {
            let src = (inv * (o as f32 + 0.5) - 0.5).max(0.0);
            let a = (src as usize).min(len - 1);
            i0.push(a as u32);
            i1.push((a + usize::from(a < len - 1)) as u32);
            lam.push(src - a as f32);
        }
        let dev = y.device().clone();
        let a = y.index_select(&Tensor::new(i0, &dev)?, dim)?;
        let b = y.index_select(&Tensor::new(i1, &dev)?, dim)?;
        let mut shape = vec![1usize; 4];
        shape[dim] = out;
        let lam = Tensor::from_vec(lam, shape, &dev)?.to_dtype(y.dtype())?;
        y = (&a + (b - &a)?.broadcast_mul(&lam)?)?;
    }
    Ok(y)
}

/// pyiqa `uniform_crop(x, 224, crops)` positions `(top, left)` for an `h x w` image
/// (after the upscale of small images).
pub fn crop_positions(h: usize, w: usize, crops: usize, size: usize) -> Vec<(usize, usize)> {
    let r = (crops as f64).sqrt();
    let (fl, ce) = (r.floor() as usize, r.ceil() as usize);
    let sh = (h - size) / fl.max(1);
    let sw = (w - size) / fl.max(1);
    let mut v = Vec::new();
    for i in 0..ce {
        for j in 0..ce {
            v.push((i * sh, j * sw));
        }
    }
    v.truncate(crops);
    v
}

/// The TReS model.
pub struct Tres {
    config: TresConfig,
    backbone: ResNet,
    layers: Vec<EncoderLayer>,
    norm: LayerNorm,
    fc2: Linear,
    fc: Linear,
    pos: Tensor,
    device: Device,
}

impl Tres {
    /// Builds from pyiqa-named parameters under `vb`.
    pub fn new(config: TresConfig, vb: VarBuilder) -> backbones::Result<Self> {
        let d = config.d_model();
        let c5 = config.backbone.depth.stage_channels()[3];
        let backbone = ResNet::new(config.backbone.without_fc(), vb.pp("model"))?;
        let enc = vb.pp("transformer.encoder");
        let layers = (0..config.layers)
            .map(|i| EncoderLayer::new(d, config.ffn, config.heads, enc.pp(format!("layers.{i}"))))
            .collect::<backbones::Result<Vec<_>>>()?;
        let device = vb.device().clone();
        let pos = sine_position_encoding(d, 7, &device)
            .map_err(|e| backbones::BackboneError::Config(e.to_string()))?
            .to_dtype(vb.dtype())?;
        Ok(Self {
            config,
            backbone,
            layers,
            norm: LayerNorm::new(d, enc.pp("norm"))?,
            fc2: linear(d, c5, vb.pp("fc2"))?,
            fc: linear(2 * c5, 1, vb.pp("fc"))?,
            pos,
            device,
        })
    }

    /// Loads a file written by `tools/metrics_convert_tres.py` (pyiqa `tres_koniq-*.pth`,
    /// ResNet-50). A missing file is [`MetricsError::WeightsMissing`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(MetricsError::WeightsMissing(path.to_path_buf()));
        }
        let t = backbones::weights::read_safetensors(path, device)?;
        let cfg = TresConfig::default();
        Ok(backbones::weights::build_verified(
            &path.display().to_string(),
            t,
            DType::F32,
            device,
            |vb| Self::new(cfg, vb),
        )?)
    }

    pub fn config(&self) -> &TresConfig {
        &self.config
    }

    /// Scores of 224x224 ImageNet-normalised crops `[N, 3, 224, 224]` -> `[N]`.
    pub fn forward_crops(&self, x: &Tensor) -> Result<Tensor> {
        let maps = self.backbone.forward(x)?;
        let pools = [8usize, 4, 2, 1];
        let mut toks = Vec::new();
        for (name, p) in ["c2", "c3", "c4", "c5"].iter().zip(pools) {
            let t = maps.require(name)?;
            let n = t.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
            let t = t.broadcast_div(&n)?;
            let (b, c, h, w) = t.dims4()?;
            let g = backbones::ops::l2pool_kernel(t.device(), t.dtype())?;
            let l2 = (t.sqr()?.reshape((b * c, 1, h, w))?.conv2d(&g, 1, 1, 1, 1)? + 1e-12)?
                .sqrt()?
                .reshape((b, c, h, w))?;
            toks.push(if p > 1 { l2.avg_pool2d(p)? } else { l2 });
        }
        let feats = Tensor::cat(&toks, 1)?; // [N, d, 7, 7]
        let (n, d, h, w) = feats.dims4()?;
        if (h, w) != (7, 7) {
            return Err(MetricsError::Invalid(format!(
                "TReS needs 224x224 crops (7x7 tokens), got {h}x{w} tokens"
            )));
        }
        let mut z = feats.reshape((n, d, 49))?.transpose(1, 2)?.contiguous()?;
        for l in &self.layers {
            z = l.forward(&z, &self.pos)?;
        }
        let z = self.norm.forward(&z)?;
        let t = self.fc2.forward(&z.mean(1)?)?;
        let l4 = maps.require("c5")?.mean((2, 3))?;
        let s = self.fc.forward(&Tensor::cat(&[&t, &l4], 1)?)?;
        Ok(s.squeeze(D::Minus1)?)
    }

    /// Scores `[B]` of images `[B, 3, H, W]` in [0, 1] (mean over the uniform crops).
    pub fn score(&self, images: &Tensor) -> Result<Vec<f32>> {
        let x = images.to_device(&self.device)?.to_dtype(DType::F32)?;
        let (b, c, h, w) = x.dims4()?;
        if c != 3 {
            return Err(MetricsError::Invalid(format!(
                "TReS input must be RGB, got {c} channels"
            )));
        }
        let mean = Tensor::from_slice(&IMAGENET_MEAN, (1, 3, 1, 1), &self.device)?;
        let std = Tensor::from_slice(&IMAGENET_STD, (1, 3, 1, 1), &self.device)?;
        let mut x = x.broadcast_sub(&mean)?.broadcast_div(&std)?;
        let size = 224;
        if h.min(w) <= size {
            x = resize_bilinear_scale(&x, (size + 1) as f64 / h.min(w) as f64)?;
        }
        let (_, _, h, w) = x.dims4()?;
        let pos = crop_positions(h, w, self.config.crops, size);
        let mut out = Vec::with_capacity(b);
        for i in 0..b {
            let xi = x.narrow(0, i, 1)?;
            let crops = pos
                .iter()
                .map(|&(t, l)| xi.narrow(2, t, size)?.narrow(3, l, size))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let mut scores = Vec::new();
            // Small chunks bound the memory of the 3840-wide transformer.
            for chunk in crops.chunks(8) {
                let s = self.forward_crops(&Tensor::cat(chunk, 0)?)?;
                scores.extend(s.to_vec1::<f32>()?);
            }
            out.push(scores.iter().sum::<f32>() / scores.len() as f32);
        }
        Ok(out)
    }
}

impl crate::evaluate::NoReferenceMetric for Tres {
    fn score(&self, images: &Tensor) -> Result<Vec<f32>> {
        Tres::score(self, images)
    }
}
