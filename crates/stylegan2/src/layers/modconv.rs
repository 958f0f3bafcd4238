//! rosinality `ModulatedConv2d(in, out, k, style_dim, demodulate, upsample)` in the HyperStyle
//! revision (extra `weights_delta`).
//!
//! Parameters: `weight` `[1,out,in,k,k]` ~ N(0,1), `modulation` = EqualLinear(S, in,
//! bias_init=1); buffer `blur.kernel` (upsampling layers only, recomputed from the config).
//!
//! Two exact formulations (plus, at batch 1, the shared one with modulation and demodulation
//! applied to the weight instead of the activations; and the CPU inference kernels of
//! [`crate::fast`] when no gradient is tracked):
//! - **shared weights** (no offsets): the "non-fused" form of StyleGAN2-ADA. Scale the input
//!   channels by the style, convolve with the shared `scale·W`, multiply the output channels by
//!   the demodulation `rsqrt(s² @ Σ_k(scale·W)²ᵀ + 1e-8)`. No grouped conv, one big conv for the
//!   whole batch.
//! - **per-sample offsets** (HyperStyle): `W'_b = scale · W ⊙ (1 + Δ_b) ⊙ s_b`, demodulated per
//!   sample, then one conv per sample (candle's grouped conv is the same loop internally).
//!   Differentiable w.r.t. Δ.
//!
//! Upsampling (rosinality): transposed conv, stride 2, padding 0 (H → 2H+1), then blur with the
//! ×2 kernel and pads (1, 1) (→ 2H).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::{Result, StyleGan2Error, check_shape};
use crate::layers::{
    DEFAULT_BLUR_KERNEL, EqualLinear, EqualLinearConfig, Resample, unsupported_resample,
};
use crate::ops::{separable_taps, upfirdn2d_separable};

/// Demodulation epsilon of rosinality/NVlabs.
const DEMOD_EPS: f64 = 1e-8;

/// Arguments of rosinality's `ModulatedConv2d`. [`ModulatedConv2dConfig::new`] gives its
/// defaults (demodulated, no resampling, blur `[1, 3, 3, 1]`). Also the arguments of
/// [`crate::layers::StyledConv`], which passes them through.
#[derive(Debug, Clone, PartialEq)]
pub struct ModulatedConv2dConfig {
    pub in_ch: usize,
    pub out_ch: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Dimension S of the style input.
    pub style_dim: usize,
    /// Normalise each output channel's modulated weights to unit L2 norm (off in ToRGB).
    pub demodulate: bool,
    /// [`Resample::None`] or [`Resample::Up`] (stride-2 transposed conv, then blur).
    pub resample: Resample,
    /// 1-D blur taps used when upsampling.
    pub blur_kernel: Vec<f32>,
}

impl ModulatedConv2dConfig {
    /// `ModulatedConv2d(in_ch, out_ch, kernel, style_dim)`.
    pub fn new(in_ch: usize, out_ch: usize, kernel: usize, style_dim: usize) -> Self {
        Self {
            in_ch,
            out_ch,
            kernel,
            style_dim,
            demodulate: true,
            resample: Resample::None,
            blur_kernel: DEFAULT_BLUR_KERNEL.to_vec(),
        }
    }

    /// `upsample=True, blur_kernel=blur_kernel`.
    pub fn upsample(self, blur_kernel: &[f32]) -> Self {
        Self {
            resample: Resample::Up,
            blur_kernel: blur_kernel.to_vec(),
            ..self
        }
    }

    /// `demodulate=False`.
    pub fn without_demodulation(self) -> Self {
        Self {
            demodulate: false,
            ..self
        }
    }
}

/// Style-modulated (and optionally demodulated / upsampling) convolution.
#[derive(Debug, Clone)]
pub struct ModulatedConv2d {
    weight: Tensor,
    modulation: EqualLinear,
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    scale: f64,
    demodulate: bool,
    /// Separable ×2 blur taps (2-D kernel sums to 4) and pads, for upsampling layers.
    blur: Option<(Vec<f64>, (i64, i64))>,
}

impl ModulatedConv2d {
    pub fn new(cfg: &ModulatedConv2dConfig, vb: VarBuilder) -> Result<Self> {
        let (in_ch, out_ch, kernel) = (cfg.in_ch, cfg.out_ch, cfg.kernel);
        let weight = vb.get_with_hints(
            (1, out_ch, in_ch, kernel, kernel),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let modulation = EqualLinear::new(
            &EqualLinearConfig::new(cfg.style_dim, in_ch).with_bias_init(1.0),
            vb.pp("modulation"),
        )?;
        let blur = match cfg.resample {
            Resample::None => None,
            Resample::Up => {
                // rosinality: p = (len(blur) − factor) − (k − 1); pad0 = (p+1)/2 + factor − 1,
                // pad1 = p/2 + 1. For [1,3,3,1] and k=3 this is (1, 1).
                let factor = 2i64;
                let p = (cfg.blur_kernel.len() as i64 - factor) - (kernel as i64 - 1);
                let pads = ((p + 1).div_euclid(2) + factor - 1, p.div_euclid(2) + 1);
                Some((separable_taps(&cfg.blur_kernel, 2), pads))
            }
            Resample::Down => return Err(unsupported_resample("ModulatedConv2d", cfg.resample)),
        };
        Ok(Self {
            weight,
            modulation,
            in_ch,
            out_ch,
            kernel,
            scale: 1.0 / ((in_ch * kernel * kernel) as f64).sqrt(),
            demodulate: cfg.demodulate,
            blur,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.in_ch
    }
    pub fn out_channels(&self) -> usize {
        self.out_ch
    }
    pub fn kernel_size(&self) -> usize {
        self.kernel
    }
    pub fn is_upsampling(&self) -> bool {
        self.blur.is_some()
    }

    /// `x` `[B,in,H,W]`, `style` `[B,S]`, optional `offset` `[B or 1, out, in, 1 or k, 1 or k]`.
    /// Output `[B,out,H',W']` with H' = 2H when upsampling, else H.
    pub fn forward(&self, x: &Tensor, style: &Tensor, offset: Option<&Tensor>) -> Result<Tensor> {
        check_shape(
            x,
            "ModulatedConv2d input",
            &[None, Some(self.in_ch), None, None],
        )?;
        let b = x.dim(0)?;
        check_shape(style, "ModulatedConv2d style", &[Some(b), None])?;
        // s: [B, in]
        let s = self.modulation.forward(style)?;
        let out = match offset {
            None => self.forward_shared(x, &s)?,
            Some(delta) => self.forward_per_sample(x, &s, delta)?,
        };
        match &self.blur {
            Some((k, pads)) if crate::fast::applies(&[&out]) => {
                crate::fast::fir_blur(&out, k, *pads)
            }
            Some((k, pads)) => upfirdn2d_separable(&out, k, 1, 1, *pads),
            None => Ok(out),
        }
    }

    /// Conv (or stride-2 transposed conv) of one tensor with one `[out,in,k,k]` weight.
    fn conv(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if self.blur.is_some() && crate::fast::applies(&[x, w]) {
            // Inference on the CPU: one GEMM + col2im instead of candle's direct loop.
            return crate::fast::conv_transpose_gemm(x, &w.contiguous()?);
        }
        if self.blur.is_some() {
            // PyTorch/candle transposed-conv layout is [in, out, k, k]; no flip (rosinality
            // transposes the same weight view).
            let wt = w.transpose(0, 1)?.contiguous()?;
            Ok(x.conv_transpose2d(&wt, 0, 0, 2, 1)?)
        } else if crate::fast::applies(&[x, w]) {
            // Inference on the CPU: the block im2col + GEMM convolution.
            Ok(s2m_kernels::conv::conv2d(x, w, self.kernel / 2, 1)?)
        } else {
            Ok(x.conv2d(&w.contiguous()?, self.kernel / 2, 1, 1, 1)?)
        }
    }

    fn forward_shared(&self, x: &Tensor, s: &Tensor) -> Result<Tensor> {
        let (b, in_ch, _, _) = x.dims4()?;
        // [1,out,in,k,k] -> [out,in,k,k], scaled.
        let w = (self.weight.squeeze(0)? * self.scale)?;
        if b == 1 {
            // One sample: modulate and demodulate the weight itself (out·in·k·k values) instead
            // of the input and output activations.
            let w = w.broadcast_mul(&s.reshape((1, in_ch, 1, 1))?)?;
            let w = if self.demodulate {
                let d = (w.sqr()?.sum_keepdim((1, 2, 3))? + DEMOD_EPS)?
                    .sqrt()?
                    .recip()?;
                w.broadcast_mul(&d)?
            } else {
                w
            };
            return self.conv(x, &w);
        }
        // Modulate the input channels: s [B,in] -> [B,in,1,1].
        let xs = x.broadcast_mul(&s.reshape((b, in_ch, 1, 1))?)?;
        let out = self.conv(&xs, &w)?;
        if !self.demodulate {
            return Ok(out);
        }
        // Σ_{kh,kw} w² : [out,in]; demod [B,out] = rsqrt(s² @ that ᵀ + eps).
        let wsq = w.sqr()?.sum((2, 3))?;
        let d = (s.sqr()?.matmul(&wsq.t()?)? + DEMOD_EPS)?.sqrt()?.recip()?;
        Ok(out.broadcast_mul(&d.reshape((b, self.out_ch, 1, 1))?)?)
    }

    fn forward_per_sample(&self, x: &Tensor, s: &Tensor, delta: &Tensor) -> Result<Tensor> {
        let (b, in_ch, _, _) = x.dims4()?;
        let k = self.kernel;
        check_shape(
            delta,
            "weight offset",
            &[None, Some(self.out_ch), Some(in_ch), None, None],
        )?;
        let (db, _, _, dh, dw) = delta.dims5()?;
        if !(db == b || db == 1) || !((dh == 1 && dw == 1) || (dh == k && dw == k)) {
            return Err(StyleGan2Error::Shape {
                what: "weight offset".into(),
                expected: format!(
                    "[{b} or 1, {}, {in_ch}, 1 or {k}, 1 or {k}] (square)",
                    self.out_ch
                ),
                got: delta.dims().to_vec(),
            });
        }
        // W'_b = scale · W ⊙ (1 + Δ_b) ⊙ s_b  :  [B,out,in,k,k]
        let w = self.weight.broadcast_mul(&(delta + 1.0)?)?;
        let w = (w.broadcast_as((b, self.out_ch, in_ch, k, k))? * self.scale)?;
        // s [B,in] -> [B,1,in,1,1]
        let w = w.broadcast_mul(&s.reshape((b, 1, in_ch, 1, 1))?)?;
        let w = if self.demodulate {
            // [B,out] -> [B,out,1,1,1]
            let d = (w.sqr()?.sum((2, 3, 4))? + DEMOD_EPS)?.sqrt()?.recip()?;
            w.broadcast_mul(&d.reshape((b, self.out_ch, 1, 1, 1))?)?
        } else {
            w
        };
        if self.blur.is_none() && !crate::fast::applies(&[x, &w]) {
            let (_, _, h, wd) = x.dims4()?;
            if b * in_ch * k * k * h * wd <= BATCHED_IM2COL_MAX_ELEMS {
                return per_sample_conv_im2col(x, &w, k);
            }
        }
        let mut outs = Vec::with_capacity(b);
        for i in 0..b {
            // x_i [1,in,H,W] with its own [out,in,k,k] weight.
            outs.push(self.conv(&x.narrow(0, i, 1)?, &w.get(i)?)?);
        }
        Ok(Tensor::cat(&outs, 0)?)
    }
}

/// Largest im2col buffer (elements) for which [`per_sample_conv_im2col`] is used instead of one
/// conv per sample (256 MiB of f32).
const BATCHED_IM2COL_MAX_ELEMS: usize = 64 << 20;

/// Stride-1 "same" convolution of each sample with its own weight, as one batched matrix
/// product over shifted copies of the input (im2col built from pad + narrow + stack):
/// `x` `[B,in,H,W]`, `w` `[B,out,in,k,k]` -> `[B,out,H,W]`. Every piece has candle's exact
/// backward (narrow, stack, matmul), so the gradient w.r.t. both `x` and the per-sample
/// weights (hence the refiner's offsets) is two GEMMs instead of candle's transposed-conv
/// backward of one conv per sample. Equal to the per-sample loop up to float summation order
/// (tested against it).
pub fn per_sample_conv_im2col(x: &Tensor, w: &Tensor, k: usize) -> Result<Tensor> {
    let (b, in_ch, h, wd) = x.dims4()?;
    let out_ch = w.dim(1)?;
    let cols = if k == 1 {
        x.reshape((b, in_ch, h * wd))?
    } else {
        let p = k / 2;
        let xp = x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?;
        let mut shifted = Vec::with_capacity(k * k);
        for dy in 0..k {
            for dx in 0..k {
                shifted.push(xp.narrow(2, dy, h)?.narrow(3, dx, wd)?);
            }
        }
        // [B,in,k*k,H,W] -> [B, in*k*k, H*W], in-major like the weight's [in,k,k].
        Tensor::stack(&shifted, 2)?.reshape((b, in_ch * k * k, h * wd))?
    };
    let wm = w.reshape((b, out_ch, in_ch * k * k))?;
    Ok(wm.matmul(&cols)?.reshape((b, out_ch, h, wd))?)
}

#[cfg(test)]
mod tests {
    use super::per_sample_conv_im2col;
    use candle_core::{Tensor, Var};
    use s2m_core::testing::randn;

    fn loop_conv(x: &Tensor, w: &Tensor, k: usize) -> Tensor {
        let outs: Vec<Tensor> = (0..x.dim(0).unwrap())
            .map(|i| {
                x.narrow(0, i, 1)
                    .unwrap()
                    .conv2d(&w.get(i).unwrap(), k / 2, 1, 1, 1)
                    .unwrap()
            })
            .collect();
        Tensor::cat(&outs, 0).unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let m = b.abs().unwrap().max_all().unwrap();
        (d / m).unwrap().to_scalar::<f32>().unwrap()
    }

    /// The batched im2col form equals one conv per sample, forward and backward (w.r.t. the
    /// input and the per-sample weights), for 3x3 and 1x1 kernels.
    #[test]
    fn im2col_per_sample_conv_matches_the_loop_and_its_gradients() {
        for (k, seed) in [(3usize, 1u64), (1, 2)] {
            let x = Var::from_tensor(&randn(&[3, 5, 7, 6], seed)).unwrap();
            let w = Var::from_tensor(&randn(&[3, 4, 5, k, k], seed + 10)).unwrap();
            let up = randn(&[3, 4, 7, 6], seed + 20);
            let a = per_sample_conv_im2col(&x, &w, k).unwrap();
            let b = loop_conv(&x, &w, k);
            assert!(max_rel(&a, &b) < 1e-5, "forward k={k}: {}", max_rel(&a, &b));
            let ga = (a * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &up).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("x", &x), ("w", &w)] {
                let (ea, eb) = (ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(
                    max_rel(ea, eb) < 1e-5,
                    "grad {name} k={k}: {}",
                    max_rel(ea, eb)
                );
            }
        }
    }
}
