//! CPU inference kernels of the generator: used only when no gradient is tracked (inference
//! with plain tensors, e.g. the Sketch2MedI pipeline and `generate`), on the CPU, in f32. Each
//! replaces a chain of candle ops that are slow on the CPU and computes the same function (up to
//! float summation order; tested against the candle chain):
//!
//! - [`conv_transpose_gemm`]: the stride-2 transposed convolution of the up-sampling convs as one
//!   GEMM (`[out·k·k, in] @ [in, H·W]`) plus a col2im scatter; candle's CPU transposed conv is a
//!   direct loop (about 2.5x slower at 256 px).
//! - [`fir_blur`]: the separable FIR blur ([`crate::ops::upfirdn2d_separable`] with up = down =
//!   1) in one pass per axis instead of k shifted copies, scales and adds per axis.
//! - [`noise_bias_lrelu`]: noise injection + bias + leaky ReLU + gain in one pass.
//!
//! Training keeps the differentiable candle paths (these ops have no backward).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::{Result, StyleGan2Error};
use crate::ops::{LRELU_GAIN, LRELU_SLOPE};

use s2m_kernels::conv::contiguous_f32 as f32_data;
pub use s2m_kernels::conv::cpu_f32_untracked as applies;

/// col2im of a stride-`stride` transposed convolution without padding: `cols`
/// `[B, out·k·k, H·W]` -> `[B, out, (H−1)·stride + k, (W−1)·stride + k]`, where
/// `out[b, o, y·s + ky, x·s + kx] += cols[b, (o·k + ky)·k + kx, y·W + x]`.
struct Col2Im {
    out: usize,
    k: usize,
    h: usize,
    w: usize,
    stride: usize,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "stylegan2-col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let cols = f32_data(s, l, self.name())?;
        let Self {
            out,
            k,
            h,
            w,
            stride,
        } = *self;
        let b = l.dims()[0];
        let (oh, ow) = ((h - 1) * stride + k, (w - 1) * stride + k);
        let mut dst = vec![0f32; b * out * oh * ow];
        dst.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane, o)| {
                // plane = b·out + o; its k·k column rows start at (b·out + o)·k·k.
                let base = plane * k * k * h * w;
                for ky in 0..k {
                    for kx in 0..k {
                        let c = &cols[base + (ky * k + kx) * h * w..][..h * w];
                        for y in 0..h {
                            let row = &mut o[(y * stride + ky) * ow + kx..];
                            for (x, v) in c[y * w..(y + 1) * w].iter().enumerate() {
                                row[x * stride] += v;
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dst), Shape::from((b, out, oh, ow))))
    }
}

/// Transposed convolution, stride 2, no padding, of `x` `[B, in, H, W]` with the conv-layout
/// weight `w` `[out, in, k, k]` (`out[o, 2y+ky, 2x+kx] += x[i, y, x] · w[o, i, ky, kx]`, which is
/// what `x.conv_transpose2d(w.transpose(0, 1), 0, 0, 2, 1)` computes): `[B, out, 2H+k−2, 2W+k−2]`.
pub fn conv_transpose_gemm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, in_ch, h, wd) = x.dims4()?;
    let (out, w_in, k, k2) = w.dims4()?;
    if w_in != in_ch || k != k2 || h == 0 || wd == 0 {
        return Err(StyleGan2Error::Shape {
            what: "transposed-conv weight".into(),
            expected: format!("[out, {in_ch}, k, k] for a non-empty input"),
            got: w.dims().to_vec(),
        });
    }
    // [out, in, k, k] -> [out, k, k, in] -> [out·k·k, in]
    let wm = w.permute((0, 2, 3, 1))?.reshape((out * k * k, in_ch))?;
    let cols = wm.broadcast_matmul(&x.reshape((b, in_ch, h * wd))?)?;
    Ok(cols.contiguous()?.apply_op1_no_bwd(&Col2Im {
        out,
        k,
        h,
        w: wd,
        stride: 2,
    })?)
}

/// Separable FIR filter (true convolution with `taps` along both axes) with zero padding
/// `pad` = (before, after) on each axis (negative crops).
struct SepFir {
    /// Taps reversed, so that `out[i] = Σ_t x[i + t − pad.0] · rev[t]`.
    rev: Vec<f32>,
    pad: (i64, i64),
}

impl SepFir {
    /// One axis of length `n` -> `n + pad.0 + pad.1 − k + 1` samples, reading `src(i)` for the
    /// source index `i` (only valid ones are read).
    fn out_len(&self, n: usize) -> usize {
        (n as i64 + self.pad.0 + self.pad.1 - self.rev.len() as i64 + 1).max(0) as usize
    }
}

impl CustomOp1 for SepFir {
    fn name(&self) -> &'static str {
        "stylegan2-sep-fir"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_data(s, l, self.name())?;
        let dims = l.dims();
        let (n, c, h, w) = (dims[0], dims[1], dims[2], dims[3]);
        let (oh, ow) = (self.out_len(h), self.out_len(w));
        let k = self.rev.len();
        let p0 = self.pad.0;
        let mut dst = vec![0f32; n * c * oh * ow];
        dst.par_chunks_mut((oh * ow).max(1))
            .zip(x.par_chunks((h * w).max(1)))
            .for_each(|(o, src)| {
                // Vertical pass: tmp[oy][x] over the source columns.
                let mut tmp = vec![0f32; oh * w];
                for oy in 0..oh {
                    let row = &mut tmp[oy * w..(oy + 1) * w];
                    for t in 0..k {
                        let sy = oy as i64 + t as i64 - p0;
                        if sy < 0 || sy >= h as i64 {
                            continue;
                        }
                        let r = self.rev[t];
                        let srow = &src[sy as usize * w..(sy as usize + 1) * w];
                        for (d, v) in row.iter_mut().zip(srow) {
                            *d += r * v;
                        }
                    }
                }
                // Horizontal pass.
                for oy in 0..oh {
                    let trow = &tmp[oy * w..(oy + 1) * w];
                    let orow = &mut o[oy * ow..(oy + 1) * ow];
                    for t in 0..k {
                        let r = self.rev[t];
                        // ox + t − p0 in [0, w)
                        let lo = (p0 - t as i64).clamp(0, ow as i64) as usize;
                        let hi = (w as i64 + p0 - t as i64).clamp(0, ow as i64) as usize;
                        if lo >= hi {
                            continue;
                        }
                        let s0 = (lo as i64 + t as i64 - p0) as usize;
                        for (d, v) in orow[lo..hi].iter_mut().zip(&trow[s0..]) {
                            *d += r * v;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dst), Shape::from((n, c, oh, ow))))
    }
}

/// [`crate::ops::upfirdn2d_separable`] with up = down = 1: `x` `[N, C, H, W]` padded by `pad`
/// on both axes and filtered with `taps` (true convolution) along both.
pub fn fir_blur(x: &Tensor, taps: &[f64], pad: (i64, i64)) -> Result<Tensor> {
    if taps.is_empty() {
        return Err(StyleGan2Error::Input("FIR: empty kernel".into()));
    }
    let op = SepFir {
        rev: taps.iter().rev().map(|v| *v as f32).collect(),
        pad,
    };
    let (_, _, h, w) = x.dims4()?;
    if op.out_len(h) == 0 || op.out_len(w) == 0 {
        return Err(StyleGan2Error::Input(format!(
            "FIR: {h}x{w} input with pads {pad:?} is shorter than the {} taps",
            taps.len()
        )));
    }
    Ok(x.contiguous()?.apply_op1_no_bwd(&op)?)
}

/// `lrelu(x + noise_weight · noise + bias) · gain` on `[B, C, H, W]` in one pass.
struct NoiseBiasLrelu {
    bias: Vec<f32>,
    /// Noise `[1 or B, 1, H, W]` flattened, its batch size, and its weight.
    noise: Option<(Vec<f32>, usize, f32)>,
}

impl CustomOp1 for NoiseBiasLrelu {
    fn name(&self) -> &'static str {
        "stylegan2-noise-bias-lrelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_data(s, l, self.name())?;
        let dims = l.dims();
        let (c, hw) = (dims[1], dims[2] * dims[3]);
        let (slope, gain) = (LRELU_SLOPE as f32, LRELU_GAIN as f32);
        let mut dst = vec![0f32; x.len()];
        dst.par_chunks_mut(hw.max(1))
            .zip(x.par_chunks(hw.max(1)))
            .enumerate()
            .for_each(|(plane, (o, src))| {
                let bias = self.bias[plane % c];
                let act = |v: f32| if v >= 0.0 { v * gain } else { v * slope * gain };
                match &self.noise {
                    Some((noise, nb, nw)) => {
                        let n = &noise[(plane / c) % nb * hw..][..hw];
                        for ((d, v), z) in o.iter_mut().zip(src).zip(n) {
                            *d = act(v + nw * z + bias);
                        }
                    }
                    None => {
                        for (d, v) in o.iter_mut().zip(src) {
                            *d = act(v + bias);
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// Noise injection (`x + noise_weight · noise`, skipped when `noise` is `None`) followed by
/// rosinality's fused leaky ReLU with `bias` `[C]`, in one pass: `x` `[B, C, H, W]`, `noise`
/// `[1 or B, 1, H, W]`, `noise_weight` a one-element tensor.
pub fn noise_bias_lrelu(
    x: &Tensor,
    noise: Option<(&Tensor, &Tensor)>,
    bias: &Tensor,
) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let bias = bias.flatten_all()?.to_vec1::<f32>()?;
    if bias.len() != c {
        return Err(StyleGan2Error::Shape {
            what: "activation bias".into(),
            expected: format!("[{c}]"),
            got: vec![bias.len()],
        });
    }
    let noise = match noise {
        Some((n, weight)) => {
            let nb = n.dim(0)?;
            if n.dims() != [nb, 1, h, w] || !(nb == 1 || nb == b) {
                return Err(StyleGan2Error::Shape {
                    what: "noise input".into(),
                    expected: format!("[1 or {b}, 1, {h}, {w}]"),
                    got: n.dims().to_vec(),
                });
            }
            let nw = weight.flatten_all()?.to_vec1::<f32>()?;
            Some((n.flatten_all()?.to_vec1::<f32>()?, nb, nw[0]))
        }
        None => None,
    };
    Ok(x.contiguous()?
        .apply_op1_no_bwd(&NoiseBiasLrelu { bias, noise })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{fused_leaky_relu, separable_taps, upfirdn2d_separable};
    use candle_core::{DType, Device};
    use s2m_core::testing::{max_abs_diff, randn};

    #[test]
    fn conv_transpose_gemm_matches_candle() {
        for (b, i, o, h, w, k) in [(1, 5, 7, 6, 4, 3), (3, 4, 2, 5, 5, 3), (2, 3, 3, 4, 3, 1)] {
            let x = randn(&[b, i, h, w], 1);
            let wt = randn(&[o, i, k, k], 2);
            let reference = x
                .conv_transpose2d(
                    &wt.transpose(0, 1).unwrap().contiguous().unwrap(),
                    0,
                    0,
                    2,
                    1,
                )
                .unwrap();
            let fast = conv_transpose_gemm(&x, &wt).unwrap();
            assert!(conv_transpose_gemm(&x, &randn(&[o, i + 1, k, k], 3)).is_err());
            // f32, sums of <= 5·9 products of N(0,1) values: 1e-5 absolute.
            assert!(max_abs_diff(&fast, &reference) < 1e-5);
        }
    }

    #[test]
    fn fir_blur_matches_upfirdn2d_separable_including_crops() {
        let x = randn(&[2, 3, 9, 7], 3);
        // An asymmetric kernel catches a missing flip.
        for taps in [
            separable_taps(&[1.0, 3.0, 3.0, 1.0], 1),
            vec![0.1, 0.5, 0.2, 0.7],
        ] {
            for pad in [(1, 1), (2, 1), (0, 0), (-1, 2), (3, 0)] {
                let reference = upfirdn2d_separable(&x, &taps, 1, 1, pad).unwrap();
                let fast = fir_blur(&x, &taps, pad).unwrap();
                assert!(max_abs_diff(&fast, &reference) < 1e-5, "pad {pad:?}");
            }
        }
        assert!(fir_blur(&x, &[1.0; 12], (0, 0)).is_err());
    }

    #[test]
    fn noise_bias_lrelu_matches_the_candle_chain() {
        let x = randn(&[3, 4, 5, 6], 4);
        let bias = randn(&[4], 5);
        let weight = Tensor::new(&[0.3f32], &Device::Cpu).unwrap();
        for nb in [1, 3] {
            let noise = randn(&[nb, 1, 5, 6], 6);
            let scaled = noise
                .broadcast_mul(&weight.reshape((1, 1, 1, 1)).unwrap())
                .unwrap();
            let reference =
                fused_leaky_relu(&x.broadcast_add(&scaled).unwrap(), Some(&bias)).unwrap();
            let fast = noise_bias_lrelu(&x, Some((&noise, &weight)), &bias).unwrap();
            assert!(max_abs_diff(&fast, &reference) < 1e-5);
        }
        let reference = fused_leaky_relu(&x, Some(&bias)).unwrap();
        assert!(max_abs_diff(&noise_bias_lrelu(&x, None, &bias).unwrap(), &reference) < 1e-5);
        let bad = randn(&[2, 1, 5, 6], 7);
        assert!(noise_bias_lrelu(&x, Some((&bad, &weight)), &bias).is_err());
    }

    #[test]
    fn applies_only_without_gradient_tracking() {
        let x = randn(&[1, 2], 8);
        assert!(applies(&[&x]));
        let v = candle_core::Var::from_tensor(&x).unwrap();
        assert!(!applies(&[&x, v.as_tensor()]));
        assert!(!applies(&[&x.to_dtype(DType::F64).unwrap()]));
    }
}
