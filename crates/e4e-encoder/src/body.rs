//! The ReStyle/HyperStyle ResNet body: torchvision blocks behind a custom stem, flattened into
//! one `body` Sequential.
//!
//! Mirrors ReStyle `models/encoders/restyle_e4e_encoders.py` / HyperStyle
//! `models/encoders/restyle_e4e_encoders.py` + `models/hypernetworks/hypernetwork.py`
//! (`SharedWeightsHyperNetResNet`):
//!
//! ```text
//! conv1 = Conv2d(in_nc, 64, 7, stride 2, padding 3, bias=False); bn1 = BatchNorm2d(64)
//! relu  = PReLU(64)                         # no max pool
//! body  = Sequential(*[b for layer in resnet34.layer1..layer4 for b in layer])
//! ```
//!
//! so block `i` of torchvision's `layer{s}` is `body.{N}` with N counted over all stages, and
//! each block keeps torchvision's inner names (`conv1`, `bn1`, `conv2`, `bn2`, `conv3`, `bn3`,
//! `downsample.{0,1}`). For a 256 px input the maps are 128 (stem and layer1), 64, 32, 16.
//!
//! NOTE: `widths` generalises the stage widths (torchvision 64/128/256/512) for narrow CPU
//! presets; the stem has `widths[0]` channels.

use backbones::norm::BN_EPS;
use backbones::resnet::{BasicBlock, Bottleneck, ResBlock};
use backbones::{BatchNorm2d, ResNetDepth};
use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, PReLU, VarBuilder};

use crate::error::{E4eError, Result};

/// Stem + flattened torchvision stages (see the module docs).
#[derive(Debug, Clone)]
pub struct ResNetBody {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    relu: PReLU,
    body: Vec<ResBlock>,
    /// Index (in `body`) of the last block of each stage.
    stage_ends: [usize; 4],
    out_channels: usize,
}

impl ResNetBody {
    /// Builds the stem (`conv1`, `bn1`, `relu`) and `body.N` under `vb`.
    pub fn new(
        depth: ResNetDepth,
        widths: [usize; 4],
        in_channels: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if in_channels == 0 || widths.contains(&0) {
            return Err(E4eError::Config(format!(
                "ResNet body needs positive in_channels and widths (got {in_channels}, {widths:?})"
            )));
        }
        let cfg = Conv2dConfig {
            padding: 3,
            stride: 2,
            ..Default::default()
        };
        let stem = widths[0];
        let conv1 = candle_nn::conv2d_no_bias(in_channels, stem, 7, cfg, vb.pp("conv1"))?;
        let bn1 = BatchNorm2d::new(stem, BN_EPS, vb.pp("bn1"))?;
        let relu = candle_nn::prelu(Some(stem), vb.pp("relu"))?;
        let b = vb.pp("body");
        let mut body = Vec::new();
        let mut stage_ends = [0; 4];
        let mut c = stem;
        for (s, (&n, &width)) in depth.blocks().iter().zip(widths.iter()).enumerate() {
            for i in 0..n {
                let stride = if i == 0 && s > 0 { 2 } else { 1 };
                let vb = b.pp(body.len());
                if depth.bottleneck() {
                    body.push(ResBlock::Bottleneck(Bottleneck::new(c, width, stride, vb)?));
                    c = width * 4;
                } else {
                    body.push(ResBlock::Basic(BasicBlock::new(c, width, stride, vb)?));
                    c = width;
                }
            }
            stage_ends[s] = body.len() - 1;
        }
        Ok(Self {
            conv1,
            bn1,
            relu,
            body,
            stage_ends,
            out_channels: c,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// Number of `body.N` blocks (16 for ResNet-34).
    pub fn num_blocks(&self) -> usize {
        self.body.len()
    }

    /// Runs the stem and the body; returns the output of each stage (c2..c5 in torchvision
    /// terms, at H/2, H/4, H/8, H/16).
    pub fn forward_stages(&self, x: &Tensor, train: bool) -> Result<[Tensor; 4]> {
        let h = self.bn1.forward_t(&self.conv1.forward(x)?, train)?;
        let mut h = self.relu.forward(&h)?;
        let mut out: Vec<Tensor> = Vec::with_capacity(4);
        for (i, blk) in self.body.iter().enumerate() {
            h = blk.forward_t(&h, train)?;
            if self.stage_ends.contains(&i) {
                out.push(h.clone());
            }
        }
        out.try_into()
            .map_err(|_| E4eError::Config("ResNet body: a stage has no blocks".into()))
    }

    /// The last map (`[B, C, H/16, W/16]`).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let [_, _, _, c5] = self.forward_stages(x, train)?;
        Ok(c5)
    }
}
