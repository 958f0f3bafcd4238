//! IR-SE-50 (ArcFace "ResNet-50 IR-SE" as used by pSp / e4e / HyperStyle's W-encoder), with e4e's
//! parameter names (`models/encoders/helpers.py`, `bottleneck_IR_SE`, `SEModule`):
//!
//! - `input_layer.{0: Conv3x3(in->64, no bias), 1: BatchNorm2d, 2: PReLU}`;
//! - `body.N` for N in 0..24 (stages of 3/4/14/3 units, depths 64/128/256/512, the first unit of
//!   **every** stage has stride 2):
//!   `shortcut_layer.{0: Conv1x1(stride, no bias), 1: BN}` when the depth changes (units 3, 7,
//!   21), otherwise `MaxPool2d(1, stride)` (plain subsampling, no parameters);
//!   `res_layer.{0: BN(in), 1: Conv3x3(in->d), 2: PReLU(d), 3: Conv3x3(d->d, stride), 4: BN(d),
//!   5: SE(d, r=16) with fc1/fc2 1x1 convs without bias}`; output = res + shortcut (no ReLU).
//!
//! Taps: `stem` (after `input_layer`, 64 ch, H), `stage1`..`stage4` (after units 2, 6, 20, 23:
//! 64/128/256/512 ch at H/2, H/4, H/8, H/16) and `pool` (`[B, 512]` global average, the
//! single-w encoders' input to `linear`). e4e's FPN taps c1, c2, c3 are `stage2`, `stage3`,
//! `stage4`. BN eps is PyTorch's default 1e-5.

use candle_core::{Module, Tensor};
use candle_nn::{PReLU, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{BackboneError, Result, check_nchw};
use crate::features::FeatureMaps;
use crate::norm::{BN_EPS, BatchNorm2d};
use crate::ops;
use crate::resnet::Conv2d;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrSeConfig {
    /// Input channels of `input_layer.0` (pSp's `--input_nc`).
    pub in_channels: usize,
    /// Units per stage; `[3, 4, 14, 3]` for IR-SE-50 (`[3, 13, 30, 3]` is IR-SE-100).
    pub units: [usize; 4],
    /// Stage depths; e4e's `get_blocks` hard-codes `[64, 128, 256, 512]` (the stem has
    /// `widths[0]` channels).
    /// NOTE: other widths are an extension for narrow CPU test models (e.g. the converted e4e
    /// test checkpoint); each must be a multiple of the SE reduction 16.
    #[serde(default = "e4e_widths")]
    pub widths: [usize; 4],
}

/// e4e `SEModule(depth, 16)`: the squeeze-excitation reduction of every unit.
pub const SE_REDUCTION: usize = 16;

/// e4e's IR-SE stage depths.
pub const IR_SE_WIDTHS: [usize; 4] = [64, 128, 256, 512];

fn e4e_widths() -> [usize; 4] {
    IR_SE_WIDTHS
}

impl IrSeConfig {
    pub fn ir_se50() -> Self {
        Self {
            in_channels: 3,
            units: [3, 4, 14, 3],
            widths: IR_SE_WIDTHS,
        }
    }
    pub fn with_widths(self, widths: [usize; 4]) -> Self {
        Self { widths, ..self }
    }
    pub fn with_in_channels(self, in_channels: usize) -> Self {
        Self {
            in_channels,
            ..self
        }
    }
}

/// A bias-free convolution with padding `k / 2` (the ResNet [`Conv2d`]: block-GEMM forward and
/// GEMM input gradient on the CPU through `s2m_kernels::conv`).
fn conv(cin: usize, cout: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    crate::resnet::conv(cin, cout, k, stride, k / 2, vb)
}

/// e4e `SEModule(channels, reduction)`: x * sigmoid(fc2(relu(fc1(avgpool(x))))).
#[derive(Debug, Clone)]
pub struct SeModule {
    fc1: Conv2d,
    fc2: Conv2d,
}

impl SeModule {
    pub fn new(channels: usize, reduction: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: conv(channels, channels / reduction, 1, 1, vb.pp("fc1"))?,
            fc2: conv(channels / reduction, channels, 1, 1, vb.pp("fc2"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.mean_keepdim(3)?.mean_keepdim(2)?;
        let s = self.fc2.forward(&self.fc1.forward(&s)?.relu()?)?;
        // candle_nn::ops::sigmoid has a tensor-op backward (differentiable again).
        Ok(x.broadcast_mul(&candle_nn::ops::sigmoid(&s)?)?)
    }
}

#[derive(Debug, Clone)]
enum Shortcut {
    Subsample(usize),
    Conv(Conv2d, BatchNorm2d),
}

/// e4e `bottleneck_IR_SE(in_channel, depth, stride)`.
#[derive(Debug, Clone)]
pub struct BottleneckIrSe {
    shortcut: Shortcut,
    bn0: BatchNorm2d,
    conv1: Conv2d,
    prelu: PReLU,
    conv2: Conv2d,
    bn1: BatchNorm2d,
    se: SeModule,
}

impl BottleneckIrSe {
    pub fn new(cin: usize, depth: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let shortcut = if cin == depth {
            Shortcut::Subsample(stride)
        } else {
            let s = vb.pp("shortcut_layer");
            Shortcut::Conv(
                conv(cin, depth, 1, stride, s.pp("0"))?,
                BatchNorm2d::new(depth, BN_EPS, s.pp("1"))?,
            )
        };
        let r = vb.pp("res_layer");
        Ok(Self {
            shortcut,
            bn0: BatchNorm2d::new(cin, BN_EPS, r.pp("0"))?,
            conv1: conv(cin, depth, 3, 1, r.pp("1"))?,
            prelu: candle_nn::prelu(Some(depth), r.pp("2"))?,
            conv2: conv(depth, depth, 3, stride, r.pp("3"))?,
            bn1: BatchNorm2d::new(depth, BN_EPS, r.pp("4"))?,
            se: SeModule::new(depth, SE_REDUCTION, r.pp("5"))?,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let sc = match &self.shortcut {
            Shortcut::Subsample(s) => ops::subsample(x, *s)?,
            Shortcut::Conv(c, bn) => bn.forward_t(&c.forward(x)?, train)?,
        };
        let r = self.bn0.forward_t(x, train)?;
        let r = self.prelu.forward(&self.conv1.forward(&r)?)?;
        let r = self.bn1.forward_t(&self.conv2.forward(&r)?, train)?;
        let r = self.se.forward(&r)?;
        Ok((r + sc)?)
    }
}

/// The IR-SE backbone (input layer + body) returning the taps in the module docs.
#[derive(Debug, Clone)]
pub struct IrSe {
    config: IrSeConfig,
    conv0: Conv2d,
    bn0: BatchNorm2d,
    prelu0: PReLU,
    body: Vec<BottleneckIrSe>,
}

const TAPS: [&str; 4] = ["stage1", "stage2", "stage3", "stage4"];

impl IrSe {
    pub fn new(config: IrSeConfig, vb: VarBuilder) -> Result<Self> {
        if config.in_channels == 0 {
            return Err(BackboneError::Config(
                "IR-SE in_channels must be positive".into(),
            ));
        }
        if config
            .widths
            .iter()
            .any(|&w| w == 0 || w % SE_REDUCTION != 0)
        {
            return Err(BackboneError::Config(format!(
                "IR-SE widths {:?} must be positive multiples of the SE reduction {SE_REDUCTION}",
                config.widths
            )));
        }
        let i = vb.pp("input_layer");
        let depths = config.widths;
        let stem = depths[0];
        let mut body = Vec::new();
        let mut cin = stem;
        let b = vb.pp("body");
        for (stage, &n) in config.units.iter().enumerate() {
            for u in 0..n {
                let stride = if u == 0 { 2 } else { 1 };
                body.push(BottleneckIrSe::new(
                    cin,
                    depths[stage],
                    stride,
                    b.pp(body.len()),
                )?);
                cin = depths[stage];
            }
        }
        Ok(Self {
            config,
            conv0: conv(config.in_channels, stem, 3, 1, i.pp("0"))?,
            bn0: BatchNorm2d::new(stem, BN_EPS, i.pp("1"))?,
            prelu0: candle_nn::prelu(Some(stem), i.pp("2"))?,
            body,
        })
    }

    /// Loads e4e/pSp-named weights (`input_layer.*`, `body.*`) from safetensors; other keys
    /// (e.g. an encoder's `styles.*`, `linear.*`) are ignored. Strip `encoder.` from a full pSp
    /// checkpoint first (`tools/backbones_convert.py --strip-prefix encoder.`).
    pub fn load(
        path: &std::path::Path,
        config: IrSeConfig,
        dtype: candle_core::DType,
        device: &candle_core::Device,
    ) -> Result<Self> {
        crate::weights::load_verified(path, dtype, device, |vb| Self::new(config, vb))
    }

    pub fn config(&self) -> &IrSeConfig {
        &self.config
    }

    /// Runs the backbone (`train` selects batch-statistics BatchNorm).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<FeatureMaps> {
        check_nchw("IR-SE input", x, self.config.in_channels, 1)?;
        let mut maps = FeatureMaps::new();
        let h = self.bn0.forward_t(&self.conv0.forward(x)?, train)?;
        let mut h = self.prelu0.forward(&h)?;
        maps.push("stem", h.clone());
        let mut unit = 0;
        for (stage, &n) in self.config.units.iter().enumerate() {
            for _ in 0..n {
                h = self.body[unit].forward_t(&h, train)?;
                unit += 1;
            }
            maps.push(TAPS[stage], h.clone());
        }
        maps.push("pool", ops::global_avg_pool(&h)?);
        Ok(maps)
    }

    pub fn forward(&self, x: &Tensor) -> Result<FeatureMaps> {
        self.forward_t(x, false)
    }
}
