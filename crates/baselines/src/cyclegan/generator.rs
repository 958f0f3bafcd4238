//! The CycleGAN generator (junyanz `ResnetGenerator` / `ResnetBlock`, `padding_type='reflect'`),
//! after Johnson et al.'s fast-neural-style network.
//!
//! The official `nn.Sequential` is `model`; parameter-free layers (pads, ReLUs, Tanh) occupy
//! indices too, so with `n` blocks the keys are:
//!
//! ```text
//! model.0 R-pad 3, model.1 Conv 7/1/0 in -> ngf, model.2 norm, model.3 ReLU
//! model.4 Conv 3/2/1 (zero pad) -> 2 ngf, 5 norm, 6 ReLU; model.7 Conv 3/2/1 -> 4 ngf, 8, 9
//! model.{10 .. 9+n}  ResnetBlock: conv_block.{0 R-pad 1, 1 Conv 3, 2 norm, 3 ReLU,
//!                    [4 Dropout 0.5], R-pad 1, Conv 3 (.5 or .6), norm}; out = x + f(x)
//! model.10+n ConvT 3/2/1 output_padding 1 -> 2 ngf, norm, ReLU; model.13+n ConvT -> ngf, ...
//! model.16+n R-pad 3, model.17+n Conv 7/1/0 (bias) -> out, model.18+n Tanh
//! ```
//!
//! Convs carry a bias only with InstanceNorm (`use_bias`), except the last, which always has one.
//! `resnet_9blocks` (ngf 64, IN): 48 tensors, 11.378 M parameters, keys `model.{1,4,7}`,
//! `model.{10..18}.conv_block.{1,5}`, `model.{19,22}`, `model.26`.

use candle_core::Tensor;
use candle_nn::{Module, VarBuilder};

use crate::cyclegan::config::ResnetConfig;
use crate::error::{BaselinesError, Result, check_image};
use crate::layers::{
    BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, ForwardMode, NORMAL_002, Norm2d, Padding, tanh,
};
use crate::pix2pix::NormKind;

fn norm(kind: NormKind, channels: usize, vb: VarBuilder) -> Result<Norm2d> {
    Ok(match kind {
        NormKind::Batch => Norm2d::Batch(BatchNorm2d::new(channels, vb)?),
        NormKind::Instance => Norm2d::Instance,
    })
}

/// `ResnetBlock(dim, 'reflect', norm, use_dropout, use_bias)`: `x + f(x)`, no activation after.
pub struct ResnetBlock {
    conv1: Conv2d,
    norm1: Norm2d,
    dropout: Option<Dropout>,
    conv2: Conv2d,
    norm2: Norm2d,
}

impl ResnetBlock {
    /// `vb` at the block (`model.10`); parameters under `conv_block.N`.
    fn new(cfg: &ResnetConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.block_channels();
        let use_bias = cfg.norm == NormKind::Instance;
        let vb = vb.pp("conv_block");
        let conv = |vb| {
            Conv2d::new(
                dim,
                dim,
                3,
                1,
                Padding::Reflect(1),
                use_bias,
                NORMAL_002,
                vb,
            )
        };
        // The dropout (when on) sits at index 4 and shifts the second pad/conv/norm by one.
        let (dropout, second) = if cfg.use_dropout {
            (Some(Dropout::new(0.5, vb.pp("4").prefix())?), 6)
        } else {
            (None, 5)
        };
        Ok(Self {
            conv1: conv(vb.pp("1"))?,
            norm1: norm(cfg.norm, dim, vb.pp("2"))?,
            dropout,
            conv2: conv(vb.pp(second.to_string()))?,
            norm2: norm(cfg.norm, dim, vb.pp((second + 1).to_string()))?,
        })
    }

    fn forward(&self, x: &Tensor, mode: &mut ForwardMode<'_>) -> Result<Tensor> {
        let h = self.conv1.forward(x)?;
        let mut h = self.norm1.forward(&h, mode.norm)?.relu()?;
        if let Some(d) = &self.dropout {
            h = d.forward(&h, &mut mode.dropout)?;
        }
        let h = self.conv2.forward(&h)?;
        let h = self.norm2.forward(&h, mode.norm)?;
        Ok((x + h)?)
    }
}

/// `ResnetGenerator`: `[B, input_nc, S, S]` in [-1, 1] -> `[B, output_nc, S, S]` in (-1, 1),
/// S a multiple of 4. Parameters under `model.N` (pass the root `VarBuilder`).
pub struct ResnetGenerator {
    cfg: ResnetConfig,
    /// model.1, model.4, model.7 with their norms (each followed by ReLU).
    down: Vec<(Conv2d, Norm2d)>,
    blocks: Vec<ResnetBlock>,
    /// model.10+n, model.13+n with their norms (each followed by ReLU).
    up: Vec<(ConvTranspose2d, Norm2d)>,
    /// model.17+n (after a reflection pad of 3; Tanh follows).
    out: Conv2d,
}

impl ResnetGenerator {
    pub fn new(cfg: &ResnetConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp("model");
        let use_bias = cfg.norm == NormKind::Instance;
        let ngf = cfg.ngf;
        let mut down = vec![(
            Conv2d::new(
                cfg.input_nc,
                ngf,
                7,
                1,
                Padding::Reflect(3),
                use_bias,
                NORMAL_002,
                vb.pp("1"),
            )?,
            norm(cfg.norm, ngf, vb.pp("2"))?,
        )];
        for (i, idx) in [4usize, 7].into_iter().enumerate() {
            let c = ngf << i; // ngf, 2 ngf
            down.push((
                Conv2d::new(
                    c,
                    2 * c,
                    3,
                    2,
                    Padding::Zero(1),
                    use_bias,
                    NORMAL_002,
                    vb.pp(idx.to_string()),
                )?,
                norm(cfg.norm, 2 * c, vb.pp((idx + 1).to_string()))?,
            ));
        }
        let blocks = (0..cfg.n_blocks)
            .map(|i| ResnetBlock::new(cfg, vb.pp((10 + i).to_string())))
            .collect::<Result<Vec<_>>>()?;
        let mut up = Vec::new();
        for i in 0..2 {
            let idx = 10 + cfg.n_blocks + 3 * i;
            let c = ngf << (2 - i); // 4 ngf, 2 ngf
            up.push((
                ConvTranspose2d::new(
                    c,
                    c / 2,
                    3,
                    2,
                    1,
                    1,
                    use_bias,
                    NORMAL_002,
                    vb.pp(idx.to_string()),
                )?,
                norm(cfg.norm, c / 2, vb.pp((idx + 1).to_string()))?,
            ));
        }
        let out = Conv2d::new(
            ngf,
            cfg.output_nc,
            7,
            1,
            Padding::Reflect(3),
            true,
            NORMAL_002,
            vb.pp((17 + cfg.n_blocks).to_string()),
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            down,
            blocks,
            up,
            out,
        })
    }

    pub fn config(&self) -> &ResnetConfig {
        &self.cfg
    }

    /// `x`: `[B, input_nc, S, S]`, S a multiple of 4 and at least 8.
    pub fn forward(&self, x: &Tensor, mode: &mut ForwardMode<'_>) -> Result<Tensor> {
        let d = x.dims();
        let size = if d.len() == 4 { d[2] } else { 0 };
        if !self.cfg.accepts_size(size) {
            return Err(BaselinesError::Shape {
                what: "ResNet generator input".into(),
                expected: format!(
                    "[B, {}, S, S] with S a multiple of 4, at least 8",
                    self.cfg.input_nc
                ),
                got: d.to_vec(),
            });
        }
        check_image("ResNet generator input", x, self.cfg.input_nc, size)?;
        let mut h = x.clone();
        for (conv, n) in &self.down {
            h = n.forward(&conv.forward(&h)?, mode.norm)?.relu()?;
        }
        // [B, 4 ngf, S/4, S/4]
        for b in &self.blocks {
            h = b.forward(&h, mode)?;
        }
        for (conv, n) in &self.up {
            h = n.forward(&conv.forward(&h)?, mode.norm)?.relu()?;
        }
        // [B, ngf, S, S]
        Ok(tanh(&self.out.forward(&h)?)?)
    }

    /// The dropout layers in forward order (empty unless `use_dropout`).
    pub fn dropouts(&self) -> Vec<&Dropout> {
        self.blocks
            .iter()
            .filter_map(|b| b.dropout.as_ref())
            .collect()
    }

    /// The BatchNorm layers in forward order (empty with InstanceNorm).
    pub fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        let mut v: Vec<&Norm2d> = self.down.iter().map(|(_, n)| n).collect();
        for b in &self.blocks {
            v.push(&b.norm1);
            v.push(&b.norm2);
        }
        v.extend(self.up.iter().map(|(_, n)| n));
        v.into_iter()
            .filter_map(|n| match n {
                Norm2d::Batch(bn) => Some(bn),
                Norm2d::Instance => None,
            })
            .collect()
    }
}
