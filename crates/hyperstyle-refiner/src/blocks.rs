//! HyperStyle's refinement blocks (`models/hypernetworks/refinement_blocks.py`).
//!
//! - [`RefinementBlock`] (`RefinementBlock(layer_idx, opts, n_channels=512, inner_c=256)`):
//!   `convs` = Conv3x3 s2 (C -> inner) + LReLU(0.01), (num_pools - 1) x Conv3x3 s2
//!   (inner -> inner) + LReLU, Conv3x3 s2 (inner -> out_c) + LReLU, with
//!   num_pools = log2(spatial) - 1 - [k == 3]; `output` = AdaptiveAvgPool2d(1) (index 0) +
//!   Conv1x1(out_c -> in*out, bias) (index 1); view `[B, out, in]`, repeated over k x k.
//! - [`HyperRefinementBlock`] (`HyperRefinementBlock(hypernet, n_channels=512, inner_c=128)`):
//!   `convs` = Conv3x3 **s1** (C -> inner) + LReLU, (log2(spatial) - 1) x Conv3x3 s2 + LReLU,
//!   Conv3x3 s2 (inner -> code) + LReLU, view `[B, code]`, `linear` = EqualLinear(code, code),
//!   then the shared hypernet.
//! - [`SharedWeightsHypernet`] (`SharedWeightsHypernet(f_size=3, z_dim=512, out_size=512,
//!   in_size=512)`): `w2` `[z, in*z]`, `b2` `[in*z]`, `w1` `[z, out*f*f]`, `b1` `[out*f*f]`;
//!   h = (c @ w2 + b2).view(B, in, z) @ w1 + b1, reinterpreted (not transposed) as
//!   `[B, out, in, f, f]`. Init N(0, 1/40) (HyperStyle: fmod(randn / 40, 2)).
//!
//! NOTE: widths are configurable (the original hard-codes 512/256/128); the feature `spatial`
//! is derived from H's input size (HyperStyle hard-codes 16). ToRGB outputs (`output.0`
//! without pool) are not implemented: the default and the supported choices exclude ToRGB.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Init, VarBuilder};
use e4e_encoder::heads::ConvLeakyStack;
use stylegan2::layers::{EqualLinear, EqualLinearConfig};

use crate::error::{RefinerError, Result};

fn log2_exact(spatial: usize) -> Result<usize> {
    if spatial == 0 || !spatial.is_power_of_two() {
        return Err(RefinerError::Config(format!(
            "feature size {spatial} must be a power of two"
        )));
    }
    Ok(spatial.trailing_zeros() as usize)
}

/// Arguments of a [`RefinementBlock`]: H's feature map, the block's widths and the target
/// layer whose offsets it predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefinementBlockConfig {
    /// H's feature channels (HyperStyle `n_channels`, 512).
    pub n_channels: usize,
    /// Width of the inner convs (HyperStyle `inner_c`, 256).
    pub inner_c: usize,
    /// Channels of the last conv (HyperStyle 512).
    pub out_c: usize,
    /// Side of H's square feature map (HyperStyle 16).
    pub spatial: usize,
    /// Output channels of the target layer.
    pub out_ch: usize,
    /// Input channels of the target layer.
    pub in_ch: usize,
    /// Kernel side of the target layer.
    pub kernel: usize,
}

/// A non-shared slot's block (see the module docs).
#[derive(Debug, Clone)]
pub struct RefinementBlock {
    convs: ConvLeakyStack,
    output: Conv2d,
    out_ch: usize,
    in_ch: usize,
    kernel: usize,
}

impl RefinementBlock {
    pub fn new(cfg: &RefinementBlockConfig, vb: VarBuilder) -> Result<Self> {
        let &RefinementBlockConfig {
            n_channels,
            inner_c,
            out_c,
            spatial,
            out_ch,
            in_ch,
            kernel,
        } = cfg;
        let lg = log2_exact(spatial)? as i64;
        let num_pools = lg - 1 - i64::from(kernel == 3);
        let mut layers = vec![(n_channels, inner_c, 2)];
        for _ in 0..(num_pools - 1).max(0) {
            layers.push((inner_c, inner_c, 2));
        }
        layers.push((inner_c, out_c, 2));
        let output = candle_nn::conv2d(
            out_c,
            in_ch * out_ch,
            1,
            Default::default(),
            vb.pp("output").pp("1"),
        )?;
        Ok(Self {
            convs: ConvLeakyStack::new(&layers, vb.pp("convs"))?,
            output,
            out_ch,
            in_ch,
            kernel,
        })
    }

    /// Features `[B, C, s, s]` -> offsets `[B, out, in, k, k]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let h = self.convs.forward(x)?;
        let h = h.mean_keepdim(3)?.mean_keepdim(2)?;
        let h = self.output.forward(&h)?;
        let h = h.reshape((b, self.out_ch, self.in_ch, 1, 1))?;
        let k = self.kernel;
        Ok(h.broadcast_as((b, self.out_ch, self.in_ch, k, k))?
            .contiguous()?)
    }
}

/// The one hypernet shared by the `HyperRefinementBlock`s (see the module docs).
#[derive(Debug, Clone)]
pub struct SharedWeightsHypernet {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    z_dim: usize,
    in_size: usize,
    out_size: usize,
    f_size: usize,
}

impl SharedWeightsHypernet {
    pub fn new(
        z_dim: usize,
        in_size: usize,
        out_size: usize,
        f_size: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0 / 40.0,
        };
        let of = out_size * f_size * f_size;
        Ok(Self {
            w1: vb.get_with_hints((z_dim, of), "w1", init)?,
            b1: vb.get_with_hints(of, "b1", init)?,
            w2: vb.get_with_hints((z_dim, in_size * z_dim), "w2", init)?,
            b2: vb.get_with_hints(in_size * z_dim, "b2", init)?,
            z_dim,
            in_size,
            out_size,
            f_size,
        })
    }

    /// Code `[B, z]` -> kernel offsets `[B, out, in, f, f]`.
    pub fn forward(&self, code: &Tensor) -> Result<Tensor> {
        let b = code.dim(0)?;
        let h = code.matmul(&self.w2)?.broadcast_add(&self.b2)?;
        let h = h.reshape((b * self.in_size, self.z_dim))?;
        let h = h.matmul(&self.w1)?.broadcast_add(&self.b1)?;
        Ok(h.reshape((b, self.out_size, self.in_size, self.f_size, self.f_size))?)
    }

    /// `(out, in, f)` of the kernels it produces.
    pub fn kernel_shape(&self) -> (usize, usize, usize) {
        (self.out_size, self.in_size, self.f_size)
    }
}

/// A shared slot's block: features -> code (see the module docs).
#[derive(Debug, Clone)]
pub struct HyperRefinementBlock {
    convs: ConvLeakyStack,
    linear: EqualLinear,
    code: usize,
}

impl HyperRefinementBlock {
    pub fn new(
        n_channels: usize,
        inner_c: usize,
        code: usize,
        spatial: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let num_pools = log2_exact(spatial)?;
        let mut layers = vec![(n_channels, inner_c, 1)];
        for _ in 1..num_pools {
            layers.push((inner_c, inner_c, 2));
        }
        layers.push((inner_c, code, 2));
        Ok(Self {
            convs: ConvLeakyStack::new(&layers, vb.pp("convs"))?,
            linear: EqualLinear::new(&EqualLinearConfig::new(code, code), vb.pp("linear"))?,
            code,
        })
    }

    /// Features `[B, C, s, s]` -> offsets `[B, out, in, f, f]` through `hypernet`.
    pub fn forward(&self, x: &Tensor, hypernet: &SharedWeightsHypernet) -> Result<Tensor> {
        let b = x.dim(0)?;
        let c = self.convs.forward(x)?;
        if c.elem_count() != b * self.code {
            return Err(RefinerError::Shape {
                what: "HyperRefinementBlock code map".into(),
                expected: format!("[{b}, {}, 1, 1]", self.code),
                got: c.dims().to_vec(),
            });
        }
        let c = self.linear.forward(&c.reshape((b, self.code))?)?;
        hypernet.forward(&c)
    }
}
