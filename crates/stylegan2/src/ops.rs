//! Reference implementations of rosinality's `op/` package (`upfirdn2d`, `fused_act`) built
//! only from candle primitives whose backward is correct to second order (reshape, pad, narrow,
//! cat, conv2d with groups = 1, maximum/minimum). They are differentiable twice, which R1 needs.
//!
//! Avoided on purpose (candle 0.11 backward gaps): `upsample_nearest2d` (overwrites instead of
//! accumulating its gradient), pooling with kernel != stride (no backward), depthwise conv with
//! groups = C (correct but O(C) slower in backward).

use candle_core::{DType, Device, Tensor};

use crate::error::{Result, StyleGan2Error, check_shape};

/// √2: the gain of rosinality's fused leaky ReLU, which keeps activations at unit variance.
pub const LRELU_GAIN: f64 = std::f64::consts::SQRT_2;
/// Negative slope of the fused leaky ReLU.
pub const LRELU_SLOPE: f64 = 0.2;

/// rosinality `make_kernel(k)` times `factor²`: the outer product of the taps, normalised to sum
/// to `factor²` (1 for a plain blur, 4 for the ×2 upsampling blurs). Row-major `[n, n]`.
pub fn make_kernel(taps: &[f32], factor: usize) -> Vec<f32> {
    let n = taps.len();
    let mut k = Vec::with_capacity(n * n);
    for a in taps {
        for b in taps {
            k.push(a * b);
        }
    }
    let sum: f32 = k.iter().sum();
    let f2 = (factor * factor) as f32;
    k.iter().map(|v| v / sum * f2).collect()
}

/// [`make_kernel`] as a `[n, n]` tensor.
pub fn kernel_tensor(taps: &[f32], factor: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let n = taps.len();
    Ok(Tensor::from_vec(make_kernel(taps, factor), (n, n), dev)?.to_dtype(dtype)?)
}

/// Pads (positive) or crops (negative) `dim` by `before`/`after` zeros.
fn pad_or_crop(x: &Tensor, dim: usize, before: i64, after: i64) -> Result<Tensor> {
    let mut x = x.clone();
    if before < 0 {
        let n = x.dim(dim)?;
        let c = (-before) as usize;
        x = x.narrow(dim, c, n.saturating_sub(c))?;
    }
    if after < 0 {
        let n = x.dim(dim)?;
        let c = (-after) as usize;
        x = x.narrow(dim, 0, n.saturating_sub(c))?;
    }
    let (b, a) = (before.max(0) as usize, after.max(0) as usize);
    if b > 0 || a > 0 {
        x = x.pad_with_zeros(dim, b, a)?;
    }
    Ok(x)
}

/// rosinality `upfirdn2d(x, kernel, up, down, pad)` on NCHW input, identical on both axes:
/// insert `up − 1` zeros after each sample, pad `pad.0` before and `pad.1` after (negative
/// crops), convolve with `kernel` (true convolution), keep every `down`-th sample.
/// Output side: `(n·up + pad0 + pad1 − k + down) / down`.
///
/// Channels are folded into the batch so one `[1,1,k,k]` kernel serves all channels with a
/// groups = 1 conv (cheaper than a depthwise conv in candle, see module docs).
pub fn upfirdn2d(
    x: &Tensor,
    kernel: &Tensor,
    up: usize,
    down: usize,
    pad: (i64, i64),
) -> Result<Tensor> {
    check_shape(x, "upfirdn2d input", &[None, None, None, None])?;
    check_shape(kernel, "upfirdn2d kernel", &[None, None])?;
    if up == 0 || down == 0 {
        return Err(StyleGan2Error::Input(format!(
            "upfirdn2d: up and down must be >= 1, got up={up} down={down}"
        )));
    }
    let (n, c, h, w) = x.dims4()?;
    let (kh, kw) = kernel.dims2()?;
    let side = |len: usize, k: usize| -> Result<usize> {
        let num = (len * up) as i64 + pad.0 + pad.1 - k as i64 + down as i64;
        if num < down as i64 {
            return Err(StyleGan2Error::Input(format!(
                "upfirdn2d: input side {len} with up={up}, pad={pad:?}, kernel {k} leaves no output"
            )));
        }
        Ok((num / down as i64) as usize)
    };
    let (oh, ow) = (side(h, kh)?, side(w, kw)?);
    // [N,C,H,W] -> [N·C,1,H,W]: one shared single-channel kernel for every channel.
    let mut y = x.reshape((n * c, 1, h, w))?;
    if up > 1 {
        // Zero insertion: [NC,1,H,1,W,1] -> pad the unit dims to `up` -> [NC,1,H·up,W·up].
        y = y
            .reshape((n * c, 1, h, 1, w, 1))?
            .pad_with_zeros(3, 0, up - 1)?
            .pad_with_zeros(5, 0, up - 1)?
            .reshape((n * c, 1, h * up, w * up))?;
    }
    // conv2d is a correlation: flip the kernel to get upfirdn2d's true convolution.
    let k = kernel.flip(&[0, 1])?.reshape((1, 1, kh, kw))?;
    y = if pad.0 == pad.1 && pad.0 >= 0 {
        // Symmetric non-negative pads go into the conv itself (no extra copy).
        y.conv2d(&k, pad.0 as usize, 1, 1, 1)?
    } else {
        let y = pad_or_crop(&y, 2, pad.0, pad.1)?;
        let y = pad_or_crop(&y, 3, pad.0, pad.1)?;
        y.conv2d(&k, 0, 1, 1, 1)?
    };
    if down > 1 {
        // Keep samples 0, down, 2·down, …: pad to a multiple of `down`, then
        // [NC,1,OH·d,OW·d] -> [NC,1,OH,d,OW,d] and take index 0 of each d axis.
        let (_, _, ch, cw) = y.dims4()?;
        y = y
            .pad_with_zeros(2, 0, oh * down - ch)?
            .pad_with_zeros(3, 0, ow * down - cw)?
            .reshape((n * c, 1, oh, down, ow, down))?
            .narrow(3, 0, 1)?
            .narrow(5, 0, 1)?;
    }
    // [NC,1,OH,OW] (or the 6-D view above) -> [N,C,OH,OW].
    Ok(y.reshape((n, c, oh, ow))?)
}

/// 1-D taps whose outer product is [`make_kernel`]`(taps, factor)`: `taps / Σtaps · factor`.
pub fn separable_taps(taps: &[f32], factor: usize) -> Vec<f64> {
    let sum: f64 = taps.iter().map(|v| *v as f64).sum();
    taps.iter()
        .map(|v| *v as f64 / sum * factor as f64)
        .collect()
}

/// True 1-D convolution along `dim` with valid padding: `out[i] = Σ_t x[i+t]·taps[k−1−t]`,
/// as shifted views (`narrow`) scaled and summed.
fn fir_along(x: &Tensor, dim: usize, taps: &[f64]) -> Result<Tensor> {
    let k = taps.len();
    let len = x.dim(dim)?;
    if len < k {
        return Err(StyleGan2Error::Input(format!(
            "FIR: dimension {dim} has {len} samples, fewer than the {k} taps"
        )));
    }
    let n = len - k + 1;
    let mut acc: Option<Tensor> = None;
    for (t, w) in taps.iter().rev().enumerate() {
        let term = x.narrow(dim, t, n)?.affine(*w, 0.0)?;
        acc = Some(match acc {
            Some(a) => (a + term)?,
            None => term,
        });
    }
    acc.ok_or_else(|| StyleGan2Error::Input("FIR: empty kernel".into()))
}

/// [`upfirdn2d`] for a separable kernel `outer(taps, taps)` (every StyleGAN2 blur), computed
/// as two 1-D passes of shifted views: ~20× faster than the single-channel conv in candle on
/// CPU (whose im2col matmul has one output column), with the same semantics and a backward
/// made of narrow/affine/add only (differentiable twice).
pub fn upfirdn2d_separable(
    x: &Tensor,
    taps: &[f64],
    up: usize,
    down: usize,
    pad: (i64, i64),
) -> Result<Tensor> {
    check_shape(x, "upfirdn2d input", &[None, None, None, None])?;
    if up == 0 || down == 0 || taps.is_empty() {
        return Err(StyleGan2Error::Input(format!(
            "upfirdn2d: up and down must be >= 1 and taps non-empty, got up={up} down={down}"
        )));
    }
    let (n, c, h, w) = x.dims4()?;
    let mut y = x.clone();
    if up > 1 {
        // Zero insertion: [N,C,H,1,W,1] -> pad the unit dims to `up` -> [N,C,H·up,W·up].
        y = y
            .reshape((n, c, h, 1, w, 1))?
            .pad_with_zeros(3, 0, up - 1)?
            .pad_with_zeros(5, 0, up - 1)?
            .reshape((n, c, h * up, w * up))?;
    }
    let y = pad_or_crop(&y, 2, pad.0, pad.1)?;
    let y = pad_or_crop(&y, 3, pad.0, pad.1)?;
    let y = fir_along(&fir_along(&y, 2, taps)?, 3, taps)?;
    if down == 1 {
        return Ok(y);
    }
    let (_, _, ch, cw) = y.dims4()?;
    let (oh, ow) = (ch.div_ceil(down), cw.div_ceil(down));
    // [N,C,OH·d,OW·d] -> [N,C,OH,d,OW,d], keep index 0 of each d axis -> [N,C,OH,OW].
    Ok(y.pad_with_zeros(2, 0, oh * down - ch)?
        .pad_with_zeros(3, 0, ow * down - cw)?
        .reshape((n, c, oh, down, ow, down))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((n, c, oh, ow))?)
}

/// rosinality `fused_leaky_relu(x, bias)`: `leaky_relu(x + b, 0.2) · √2`, bias `[C]` added
/// along dim 1 (works for `[B,C]` and `[B,C,H,W]`).
pub fn fused_leaky_relu(x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let x = match bias {
        Some(b) => {
            let c = b.dim(0)?;
            let mut shape = vec![1usize; x.rank()];
            if x.rank() < 2 || x.dim(1)? != c {
                return Err(StyleGan2Error::Shape {
                    what: "fused_leaky_relu input (channels on dim 1)".into(),
                    expected: format!("[_, {c}, ...]"),
                    got: x.dims().to_vec(),
                });
            }
            shape[1] = c;
            // [C] -> [1,C,1,1] (or [1,C]) so it broadcasts over batch and space.
            x.broadcast_add(&b.reshape(shape)?)?
        }
        None => x.clone(),
    };
    // x.maximum(0) + x.minimum(0)·slope: built from min/max so it is differentiable twice.
    Ok((candle_nn::ops::leaky_relu(&x, LRELU_SLOPE)? * LRELU_GAIN)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// The resampling of one upfirdn2d call: zero insertion, pads (negative crops), decimation.
    #[derive(Debug, Clone, Copy)]
    struct UpFirDn {
        up: usize,
        down: usize,
        pad: (i64, i64),
    }

    /// Direct host implementation of the upfirdn2d definition on one channel `x` `[h, w]` with
    /// a square kernel `k` `[kn, kn]`.
    fn naive_upfirdn(
        x: &[f64],
        (h, w): (usize, usize),
        k: &[f64],
        kn: usize,
        UpFirDn { up, down, pad }: UpFirDn,
    ) -> (Vec<f64>, usize, usize) {
        let (uh, uw) = (h * up, w * up);
        let ph = uh as i64 + pad.0 + pad.1;
        let pw = uw as i64 + pad.0 + pad.1;
        // padded/up-sampled signal accessor
        let at = |i: i64, j: i64| -> f64 {
            let (ui, uj) = (i - pad.0, j - pad.0);
            if ui < 0 || uj < 0 || ui >= uh as i64 || uj >= uw as i64 {
                return 0.0;
            }
            let (ui, uj) = (ui as usize, uj as usize);
            if ui % up != 0 || uj % up != 0 {
                return 0.0;
            }
            x[(ui / up) * w + uj / up]
        };
        let ch = ph - kn as i64 + 1;
        let cw = pw - kn as i64 + 1;
        let oh = ((ch + down as i64 - 1) / down as i64) as usize;
        let ow = ((cw + down as i64 - 1) / down as i64) as usize;
        let mut out = vec![0.0; oh * ow];
        for oi in 0..oh {
            for oj in 0..ow {
                let (i, j) = ((oi * down) as i64, (oj * down) as i64);
                let mut s = 0.0;
                // true convolution: out[i] = sum_t x[i + t] * k[kn-1-t]
                for a in 0..kn {
                    for b in 0..kn {
                        s += at(i + a as i64, j + b as i64) * k[(kn - 1 - a) * kn + (kn - 1 - b)];
                    }
                }
                out[oi * ow + oj] = s;
            }
        }
        (out, oh, ow)
    }

    fn asym_kernel() -> Vec<f64> {
        // Deliberately not symmetric so a missing flip is caught.
        (0..16)
            .map(|i| 0.1 + (i as f64) * 0.07 - ((i * 7) % 5) as f64 * 0.03)
            .collect()
    }

    #[test]
    fn upfirdn2d_matches_definition() -> Result<()> {
        let dev = Device::Cpu;
        let (n, c, h, w) = (2, 3, 6, 6);
        let xs: Vec<f64> = (0..n * c * h * w)
            .map(|i| ((i * 37) % 23) as f64 / 7.0 - 1.5)
            .collect();
        let x = Tensor::from_vec(xs.clone(), (n, c, h, w), &dev)?;
        let kv = asym_kernel();
        let k = Tensor::from_vec(kv.clone(), (4, 4), &dev)?;
        for (up, down, pad) in [
            (1, 1, (1, 1)),
            (1, 1, (2, 2)),
            (2, 1, (2, 1)),
            (1, 2, (2, 2)),
            (2, 2, (1, 2)),
            (1, 1, (-1, 2)),
            (2, 1, (0, -1)),
        ] {
            let y = upfirdn2d(&x, &k, up, down, pad)?;
            let (_, _, oh, ow) = y.dims4()?;
            let yv: Vec<f64> = y.flatten_all()?.to_vec1()?;
            for p in 0..n * c {
                let plane = &xs[p * h * w..(p + 1) * h * w];
                let (r, rh, rw) = naive_upfirdn(plane, (h, w), &kv, 4, UpFirDn { up, down, pad });
                assert_eq!(
                    (rh, rw),
                    (oh, ow),
                    "shape for up={up} down={down} pad={pad:?}"
                );
                for (i, rv) in r.iter().enumerate() {
                    let got = yv[p * oh * ow + i];
                    assert!(
                        (got - rv).abs() < 1e-12,
                        "up={up} down={down} pad={pad:?} plane {p} idx {i}: {got} vs {rv}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn rosinality_pads_give_expected_sizes() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 8, 8), DType::F32, &dev)?;
        let kup = kernel_tensor(&[1., 3., 3., 1.], 2, DType::F32, &dev)?;
        let kdn = kernel_tensor(&[1., 3., 3., 1.], 1, DType::F32, &dev)?;
        assert_eq!(upfirdn2d(&x, &kup, 2, 1, (2, 1))?.dims(), &[1, 2, 16, 16]);
        assert_eq!(upfirdn2d(&x, &kdn, 1, 1, (2, 2))?.dims(), &[1, 2, 9, 9]);
        assert_eq!(upfirdn2d(&x, &kdn, 1, 1, (1, 1))?.dims(), &[1, 2, 7, 7]);
        let s: f32 = kup.sum_all()?.to_scalar()?;
        assert!((s - 4.0).abs() < 1e-6);
        Ok(())
    }

    /// Central finite differences of `f` at `x` against candle's gradient (f64).
    fn check_grad(
        x0: &[f64],
        shape: &[usize],
        f: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::from_vec(x0.to_vec(), shape, &dev)?)?;
        let y = f(x.as_tensor())?.sum_all()?;
        let g = y.backward()?;
        let g: Vec<f64> = g
            .get(x.as_tensor())
            .ok_or_else(|| StyleGan2Error::Input("no gradient".into()))?
            .flatten_all()?
            .to_vec1()?;
        let eps = 1e-6;
        for i in 0..x0.len() {
            let mut xp = x0.to_vec();
            xp[i] += eps;
            let mut xm = x0.to_vec();
            xm[i] -= eps;
            let fp: f64 = f(&Tensor::from_vec(xp, shape, &dev)?)?
                .sum_all()?
                .to_scalar()?;
            let fm: f64 = f(&Tensor::from_vec(xm, shape, &dev)?)?
                .sum_all()?
                .to_scalar()?;
            let fd = (fp - fm) / (2.0 * eps);
            assert!(
                (fd - g[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                "idx {i}: fd {fd} vs {}",
                g[i]
            );
        }
        Ok(())
    }

    #[test]
    fn upfirdn2d_gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let shape = [1usize, 2, 5, 5];
        let x0: Vec<f64> = (0..50)
            .map(|i| ((i * 13) % 11) as f64 / 5.0 - 1.0)
            .collect();
        let k = Tensor::from_vec(asym_kernel(), (4, 4), &dev)?;
        // A probe so the loss is not just a sum (which would hide index mistakes).
        for (up, down, pad) in [(2, 1, (2, 1)), (1, 2, (2, 2)), (1, 1, (-1, 2))] {
            let probe_len = {
                let y = upfirdn2d(
                    &Tensor::zeros(&shape[..], DType::F64, &dev)?,
                    &k,
                    up,
                    down,
                    pad,
                )?;
                y.elem_count()
            };
            let pv: Vec<f64> = (0..probe_len).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
            check_grad(&x0, &shape, |x| {
                let y = upfirdn2d(x, &k, up, down, pad)?;
                let p = Tensor::from_vec(pv.clone(), y.dims(), &dev)?;
                Ok((y * p)?)
            })?;
        }
        Ok(())
    }

    #[test]
    fn separable_matches_reference_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let taps = [1.0f32, 3.0, 3.0, 1.0];
        let x0: Vec<f64> = (0..2 * 3 * 7 * 7)
            .map(|i| ((i * 29) % 17) as f64 / 4.0 - 2.0)
            .collect();
        let x = Tensor::from_vec(x0.clone(), (2, 3, 7, 7), &dev)?;
        for (factor, up, down, pad) in [
            (1, 1, 1, (2, 2)),
            (1, 1, 1, (1, 1)),
            (2, 1, 1, (1, 1)),
            (2, 2, 1, (2, 1)),
            (1, 1, 2, (1, 2)),
            (2, 2, 2, (-1, 1)),
        ] {
            let k = kernel_tensor(&taps, factor, DType::F64, &dev)?;
            let r = upfirdn2d(&x, &k, up, down, pad)?;
            let s = upfirdn2d_separable(&x, &separable_taps(&taps, factor), up, down, pad)?;
            assert_eq!(r.dims(), s.dims());
            let e: f64 = (r - s)?.abs()?.max_all()?.to_scalar()?;
            assert!(
                e < 1e-12,
                "factor {factor} up {up} down {down} pad {pad:?}: {e}"
            );
        }
        let small: Vec<f64> = x0[..50].to_vec();
        let st = separable_taps(&taps, 2);
        check_grad(&small, &[1, 2, 5, 5], |x| {
            let y = upfirdn2d_separable(x, &st, 2, 1, (2, 1))?;
            let n = y.elem_count();
            let p = Tensor::from_vec(
                (0..n)
                    .map(|i| ((i * 7) % 5) as f64 - 2.0)
                    .collect::<Vec<_>>(),
                y.dims(),
                &dev,
            )?;
            Ok((y * p)?)
        })
    }

    #[test]
    fn fused_lrelu_matches_formula_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let xs = [-2.0f64, -0.5, 0.3, 1.7, -0.1, 0.9];
        let x = Tensor::from_vec(xs.to_vec(), (2, 3), &dev)?;
        let b = Tensor::from_vec(vec![0.1f64, -0.2, 0.4], 3, &dev)?;
        let y: Vec<Vec<f64>> = fused_leaky_relu(&x, Some(&b))?.to_vec2()?;
        for i in 0..2 {
            for j in 0..3 {
                let v = xs[i * 3 + j] + [0.1, -0.2, 0.4][j];
                let r = if v >= 0.0 { v } else { 0.2 * v } * LRELU_GAIN;
                assert!((y[i][j] - r).abs() < 1e-12);
            }
        }
        check_grad(&xs, &[2, 3], |x| {
            let p = Tensor::from_vec(vec![1.0f64, -2.0, 0.5, 3.0, 1.0, -1.0], (2, 3), &dev)?;
            Ok((fused_leaky_relu(x, Some(&b))? * p)?)
        })
    }
}
