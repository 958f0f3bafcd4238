//! The pix2pix U-Net generator (junyanz `UnetGenerator` / `UnetSkipConnectionBlock`).
//!
//! Built from the outside in, but with the official nesting: the outermost block's
//! `nn.Sequential` is `model.model`, and each inner block sits at index 1 (outermost) or 3
//! (middle) of its parent's sequential, with its own sequential at `.model`:
//!
//! ```text
//! outermost  model.model.{0 down conv, 1 submodule, 2 ReLU, 3 up convT (bias), 4 Tanh}
//! middle     ....model.{0 LReLU, 1 down conv, 2 down norm, 3 submodule, 4 ReLU, 5 up convT,
//!                       6 up norm, 7 Dropout(0.5) when use_dropout and level >= 4}
//! innermost  ....model.{0 LReLU, 1 down conv, 2 ReLU, 3 up convT, 4 up norm}
//! ```
//!
//! A non-outermost block returns `cat([x, f(x)], 1)`. NOTE: the official down-LReLU is in place,
//! so PyTorch's skip half is `LReLU(x)` rather than `x`; the parent's ReLU comes next, and
//! `ReLU(LReLU(x)) = ReLU(x)` (values and gradients), so the generator's output is the same.

use candle_core::Tensor;
use candle_nn::{Module, VarBuilder};

use crate::error::{Result, check_image};
use crate::layers::{
    BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, ForwardMode, NORMAL_002, Norm2d, Padding,
    leaky_relu_02, tanh,
};
use crate::pix2pix::config::{NormKind, UnetConfig};

fn norm(kind: NormKind, channels: usize, vb: VarBuilder) -> Result<Norm2d> {
    Ok(match kind {
        NormKind::Batch => Norm2d::Batch(BatchNorm2d::new(channels, vb)?),
        NormKind::Instance => Norm2d::Instance,
    })
}

enum Block {
    Outermost {
        down: Conv2d,
        sub: Box<UnetBlock>,
        up: ConvTranspose2d,
    },
    Middle {
        down: Conv2d,
        down_norm: Norm2d,
        sub: Box<UnetBlock>,
        up: ConvTranspose2d,
        up_norm: Norm2d,
        dropout: Option<Dropout>,
    },
    Innermost {
        down: Conv2d,
        up: ConvTranspose2d,
        up_norm: Norm2d,
    },
}

/// One `UnetSkipConnectionBlock` and, recursively, everything inside it.
pub struct UnetBlock {
    block: Block,
}

impl UnetBlock {
    /// Level `level` (0 = outermost) of `cfg`, with `vb` at the block's sequential
    /// (`model.model` for the outermost).
    fn new(cfg: &UnetConfig, level: usize, vb: VarBuilder) -> Result<Self> {
        let use_bias = cfg.norm == NormKind::Instance;
        let innermost = level + 1 == cfg.num_downs;
        let inner = cfg.inner_nc(level);
        let (outer_in, outer_out) = if level == 0 {
            (cfg.input_nc, cfg.output_nc)
        } else {
            let o = cfg.inner_nc(level - 1);
            (o, o)
        };
        let conv = |c_in, c_out, bias, vb| {
            Conv2d::new(c_in, c_out, 4, 2, Padding::Zero(1), bias, NORMAL_002, vb)
        };
        let convt = |c_in, c_out, bias, vb| {
            ConvTranspose2d::new(c_in, c_out, 4, 2, 1, 0, bias, NORMAL_002, vb)
        };
        let block = if level == 0 {
            Block::Outermost {
                down: conv(outer_in, inner, use_bias, vb.pp("0"))?,
                sub: Box::new(Self::new(cfg, 1, vb.pp("1").pp("model"))?),
                up: convt(2 * inner, outer_out, true, vb.pp("3"))?,
            }
        } else if innermost {
            Block::Innermost {
                down: conv(outer_in, inner, use_bias, vb.pp("1"))?,
                up: convt(inner, outer_out, use_bias, vb.pp("3"))?,
                up_norm: norm(cfg.norm, outer_out, vb.pp("4"))?,
            }
        } else {
            let dropout = if cfg.has_dropout(level) {
                Some(Dropout::new(0.5, vb.pp("7").prefix())?)
            } else {
                None
            };
            Block::Middle {
                down: conv(outer_in, inner, use_bias, vb.pp("1"))?,
                down_norm: norm(cfg.norm, inner, vb.pp("2"))?,
                sub: Box::new(Self::new(cfg, level + 1, vb.pp("3").pp("model"))?),
                up: convt(2 * inner, outer_out, use_bias, vb.pp("5"))?,
                up_norm: norm(cfg.norm, outer_out, vb.pp("6"))?,
                dropout,
            }
        };
        Ok(Self { block })
    }

    fn forward(&self, x: &Tensor, mode: &mut ForwardMode<'_>) -> Result<Tensor> {
        match &self.block {
            Block::Outermost { down, sub, up } => {
                let h = down.forward(x)?; // [B, ngf, S/2, S/2]
                let h = sub.forward(&h, mode)?; // [B, 2 ngf, S/2, S/2]
                let h = up.forward(&h.relu()?)?; // [B, out, S, S]
                Ok(tanh(&h)?)
            }
            Block::Innermost { down, up, up_norm } => {
                let h = down.forward(&leaky_relu_02(x)?)?; // [B, inner, 1, 1] at the bottleneck
                let h = up.forward(&h.relu()?)?;
                let h = up_norm.forward(&h, mode.norm)?;
                Ok(Tensor::cat(&[x, &h], 1)?)
            }
            Block::Middle {
                down,
                down_norm,
                sub,
                up,
                up_norm,
                dropout,
            } => {
                let h = down.forward(&leaky_relu_02(x)?)?;
                let h = down_norm.forward(&h, mode.norm)?;
                let h = sub.forward(&h, mode)?; // [B, 2 inner, h, w]
                let h = up.forward(&h.relu()?)?;
                let mut h = up_norm.forward(&h, mode.norm)?;
                if let Some(d) = dropout {
                    h = d.forward(&h, &mut mode.dropout)?;
                }
                Ok(Tensor::cat(&[x, &h], 1)?) // [B, 2 outer, H, W]
            }
        }
    }

    fn collect_batch_norms<'a>(&'a self, out: &mut Vec<&'a BatchNorm2d>) {
        let mut push = |n: &'a Norm2d| {
            if let Norm2d::Batch(bn) = n {
                out.push(bn);
            }
        };
        match &self.block {
            Block::Outermost { sub, .. } => sub.collect_batch_norms(out),
            Block::Innermost { up_norm, .. } => push(up_norm),
            Block::Middle {
                down_norm,
                sub,
                up_norm,
                ..
            } => {
                push(down_norm);
                push(up_norm);
                sub.collect_batch_norms(out);
            }
        }
    }

    fn collect_dropouts<'a>(&'a self, out: &mut Vec<&'a Dropout>) {
        match &self.block {
            Block::Outermost { sub, .. } => sub.collect_dropouts(out),
            Block::Innermost { .. } => {}
            Block::Middle { sub, dropout, .. } => {
                sub.collect_dropouts(out);
                out.extend(dropout.iter());
            }
        }
    }
}

/// `UnetGenerator`: sketch `[B, input_nc, S, S]` in [-1, 1] -> image `[B, output_nc, S, S]`
/// in (-1, 1). Parameters under `model.model...` (pass the root `VarBuilder`).
pub struct UnetGenerator {
    cfg: UnetConfig,
    root: UnetBlock,
}

impl UnetGenerator {
    pub fn new(cfg: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            root: UnetBlock::new(cfg, 0, vb.pp("model").pp("model"))?,
        })
    }

    pub fn config(&self) -> &UnetConfig {
        &self.cfg
    }

    /// `x`: `[B, input_nc, S, S]` with S a multiple of `2^num_downs`.
    pub fn forward(&self, x: &Tensor, mode: &mut ForwardMode<'_>) -> Result<Tensor> {
        let d = x.dims();
        let size = if d.len() == 4 { d[2] } else { 0 };
        if size == 0 || !size.is_multiple_of(self.cfg.min_size()) {
            return Err(crate::error::BaselinesError::Shape {
                what: "U-Net input".into(),
                expected: format!(
                    "[B, {}, S, S] with S a multiple of {}",
                    self.cfg.input_nc,
                    self.cfg.min_size()
                ),
                got: d.to_vec(),
            });
        }
        check_image("U-Net input", x, self.cfg.input_nc, size)?;
        self.root.forward(x, mode)
    }

    /// The BatchNorm layers, outermost level first (empty with InstanceNorm).
    pub fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        let mut v = Vec::new();
        self.root.collect_batch_norms(&mut v);
        v
    }

    /// The dropout layers in forward order (innermost first), each named by its module path.
    pub fn dropouts(&self) -> Vec<&Dropout> {
        let mut v = Vec::new();
        self.root.collect_dropouts(&mut v);
        v
    }
}
