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
//! - [`RefinementBlockSeparable`] (`RefinementBlockSeparable(layer_idx, opts, n_channels=512,
//!   inner_c=256)`, the non-shared slots of `SharedWeightsHyperNetResNetSeparable`): `convs` as
//!   above but with num_pools = log2(spatial) - 1 for every k (so the map reaches 1 x 1), then
//!   `output.0` = [`SeparableBlock`] (`models/encoders/helpers.py`).
//! - [`SeparableBlock`] (`SeparableBlock(input_size, kernel_channels_in, kernel_channels_out,
//!   kernel_size)`): plain `nn.Linear`s `make_kernel_in` (C -> k*k*in), `make_kernel_out`
//!   (C -> k*k*out), `kernel_linear_in` (in -> in), `kernel_linear_out` (out -> out);
//!   K = make_kernel_out(f).view(B, k, k, out, 1) @ make_kernel_in(f).view(B, k, k, 1, in)
//!   `[B, k, k, out, in]`, kernel_linear_in on the last axis, swap the last two axes,
//!   kernel_linear_out on the last axis, permute to `[B, out, in, k, k]`: full k x k offsets
//!   of rank 1 per kernel position before the two channel mixes.
//!
//! NOTE: widths are configurable (the original hard-codes 512/256/128); the feature `spatial`
//! is derived from H's input size (HyperStyle hard-codes 16). ToRGB outputs (`output.0`
//! without pool) are not implemented: the default and the supported choices exclude ToRGB.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Init, Linear, VarBuilder};
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

/// HyperStyle's `SeparableBlock` (see the module docs).
#[derive(Debug, Clone)]
pub struct SeparableBlock {
    make_kernel_in: Linear,
    make_kernel_out: Linear,
    kernel_linear_in: Linear,
    kernel_linear_out: Linear,
    input_size: usize,
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
}

impl SeparableBlock {
    /// `input_size` features -> `[B, out_ch, in_ch, kernel, kernel]` offsets.
    pub fn new(
        input_size: usize,
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let kk = kernel * kernel;
        Ok(Self {
            make_kernel_in: candle_nn::linear(input_size, kk * in_ch, vb.pp("make_kernel_in"))?,
            make_kernel_out: candle_nn::linear(input_size, kk * out_ch, vb.pp("make_kernel_out"))?,
            kernel_linear_in: candle_nn::linear(in_ch, in_ch, vb.pp("kernel_linear_in"))?,
            kernel_linear_out: candle_nn::linear(out_ch, out_ch, vb.pp("kernel_linear_out"))?,
            input_size,
            in_ch,
            out_ch,
            kernel,
        })
    }

    /// Features with `input_size` values per sample -> `[B, out, in, k, k]`.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor> {
        let n = features.elem_count();
        if n == 0 || !n.is_multiple_of(self.input_size) {
            return Err(RefinerError::Shape {
                what: "SeparableBlock features".into(),
                expected: format!("[B, {}, 1, 1]", self.input_size),
                got: features.dims().to_vec(),
            });
        }
        let b = n / self.input_size;
        let k = self.kernel;
        let f = features.reshape((b, self.input_size))?;
        // [B, k, k, 1, in] and [B, k, k, out, 1]
        let k_in = self
            .make_kernel_in
            .forward(&f)?
            .reshape((b * k * k, 1, self.in_ch))?;
        let k_out = self
            .make_kernel_out
            .forward(&f)?
            .reshape((b * k * k, self.out_ch, 1))?;
        let kernel = k_out.matmul(&k_in)?; // [B k k, out, in]
        let kernel = self.kernel_linear_in.forward(&kernel)?; // mixes in
        let kernel = kernel.transpose(1, 2)?.contiguous()?; // [B k k, in, out]
        let kernel = self.kernel_linear_out.forward(&kernel)?; // mixes out
        // [B, k, k, in, out] -> [B, out, in, k, k]
        Ok(kernel
            .reshape((b, k, k, self.in_ch, self.out_ch))?
            .permute((0, 4, 3, 1, 2))?
            .contiguous()?)
    }
}

/// A non-shared slot's block in `SharedWeightsHyperNetResNetSeparable` (see the module docs).
#[derive(Debug, Clone)]
pub struct RefinementBlockSeparable {
    convs: ConvLeakyStack,
    output: SeparableBlock,
}

impl RefinementBlockSeparable {
    pub fn new(cfg: &RefinementBlockConfig, vb: VarBuilder) -> Result<Self> {
        let num_pools = log2_exact(cfg.spatial)? as i64 - 1;
        let mut layers = vec![(cfg.n_channels, cfg.inner_c, 2)];
        for _ in 0..(num_pools - 1).max(0) {
            layers.push((cfg.inner_c, cfg.inner_c, 2));
        }
        layers.push((cfg.inner_c, cfg.out_c, 2));
        Ok(Self {
            convs: ConvLeakyStack::new(&layers, vb.pp("convs"))?,
            output: SeparableBlock::new(
                cfg.out_c,
                cfg.in_ch,
                cfg.out_ch,
                cfg.kernel,
                vb.pp("output").pp("0"),
            )?,
        })
    }

    /// Features `[B, C, s, s]` -> offsets `[B, out, in, k, k]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let h = self.convs.forward(x)?;
        if h.elem_count() != b * self.output.input_size {
            return Err(RefinerError::Shape {
                what: "RefinementBlockSeparable code map".into(),
                expected: format!("[{b}, {}, 1, 1]", self.output.input_size),
                got: h.dims().to_vec(),
            });
        }
        self.output.forward(&h)
    }
}
