//! Differentiable pooling and resizing built from primitives that have a backward in candle 0.11.1.
//!
//! candle's `max_pool2d` / `avg_pool2d` have no backward when kernel != stride (the ResNet stem's
//! 3x3/s2 pool, AlexNet's and Inception's 3x3/s2 pools) and `upsample_bilinear2d` has none at all.
//! Everything here is built from `narrow`, `index_select`, `cat`, `maximum`, `add` and `conv2d`,
//! which all differentiate (also to second order under `CANDLE_GRAD_DO_NOT_DETACH=1`).
//! Pools are separable (a k x k max/sum is a k-max/sum over W then over H), so they cost 2k
//! elementwise ops instead of k^2.
//!
//! Tie handling differs from PyTorch: PyTorch sends a max-pool gradient to one arg-max, candle's
//! `maximum` splits it between tied inputs. Sums of gradients agree; only ties are affected.

use candle_core::{D, DType, Device, Tensor};

use crate::error::{BackboneError, Result};

fn out_len(what: &str, len: usize, k: usize, s: usize, pad: usize) -> Result<usize> {
    if k == 0 || s == 0 {
        return Err(BackboneError::Config(format!(
            "{what}: kernel and stride must be positive (kernel {k}, stride {s})"
        )));
    }
    // PyTorch rejects pad > k/2: a window made only of padding would have no defined max.
    if 2 * pad > k {
        return Err(BackboneError::Config(format!(
            "{what}: padding {pad} must be at most half the kernel {k}"
        )));
    }
    if len + 2 * pad < k {
        return Err(BackboneError::Config(format!(
            "{what}: input length {len} + 2 x padding {pad} is smaller than the kernel {k}"
        )));
    }
    Ok((len + 2 * pad - k) / s + 1)
}

/// Pads `dim` of `x` with `before`/`after` slices filled with `value` (differentiable via `cat`).
fn pad_const(x: &Tensor, dim: usize, before: usize, after: usize, value: f64) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let mut parts = Vec::with_capacity(3);
    let mut shape = x.dims().to_vec();
    if before > 0 {
        shape[dim] = before;
        parts.push(Tensor::full(value, shape.as_slice(), x.device())?.to_dtype(x.dtype())?);
    }
    parts.push(x.clone());
    if after > 0 {
        shape[dim] = after;
        parts.push(Tensor::full(value, shape.as_slice(), x.device())?.to_dtype(x.dtype())?);
    }
    Ok(Tensor::cat(&parts, dim)?)
}

/// Picks positions `offset, offset + s, ...` (`n` of them) along `dim`.
fn strided(x: &Tensor, dim: usize, offset: usize, s: usize, n: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(x.narrow(dim, offset, n)?);
    }
    let idx: Vec<u32> = (0..n).map(|o| (offset + o * s) as u32).collect();
    let idx = Tensor::new(idx, x.device())?;
    Ok(x.index_select(&idx, dim)?)
}

#[derive(Clone, Copy)]
enum Reduce {
    Max,
    Sum,
}

/// One separable pass along `dim` (2 or 3) of a 4-d tensor.
fn pool_axis(
    x: &Tensor,
    dim: usize,
    k: usize,
    s: usize,
    pad: usize,
    reduce: Reduce,
) -> Result<Tensor> {
    let len = x.dim(dim)?;
    let n = out_len("pool", len, k, s, pad)?;
    let fill = match reduce {
        Reduce::Max => f64::NEG_INFINITY,
        Reduce::Sum => 0.0,
    };
    let xp = pad_const(x, dim, pad, pad, fill)?;
    let mut acc = strided(&xp, dim, 0, s, n)?;
    for d in 1..k {
        let v = strided(&xp, dim, d, s, n)?;
        acc = match reduce {
            Reduce::Max => acc.maximum(&v)?,
            Reduce::Sum => (acc + v)?,
        };
    }
    Ok(acc)
}

fn check4(what: &str, x: &Tensor) -> Result<()> {
    if x.rank() != 4 {
        return Err(BackboneError::Shape {
            what: what.to_string(),
            expected: "a 4-d [B, C, H, W] tensor".to_string(),
            got: x.dims().to_vec(),
        });
    }
    Ok(())
}

/// `torch.nn.functional.max_pool2d(x, k, s, pad)` (ceil_mode=False, dilation 1) with a backward
/// for any kernel/stride. Padding counts as -inf, as in PyTorch.
pub fn max_pool2d(x: &Tensor, k: usize, s: usize, pad: usize) -> Result<Tensor> {
    check4("max_pool2d input", x)?;
    let y = pool_axis(x, 3, k, s, pad, Reduce::Max)?;
    pool_axis(&y, 2, k, s, pad, Reduce::Max)
}

/// `torch.nn.functional.avg_pool2d(x, k, s, pad, count_include_pad)` (ceil_mode=False) with a
/// backward for any kernel/stride. `count_include_pad=false` divides by the number of real
/// pixels in each window, as TF and the FID Inception do.
pub fn avg_pool2d(
    x: &Tensor,
    k: usize,
    s: usize,
    pad: usize,
    count_include_pad: bool,
) -> Result<Tensor> {
    check4("avg_pool2d input", x)?;
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    let y = pool_axis(x, 3, k, s, pad, Reduce::Sum)?;
    let y = pool_axis(&y, 2, k, s, pad, Reduce::Sum)?;
    if count_include_pad || pad == 0 {
        return Ok((y / (k * k) as f64)?);
    }
    // Per-axis counts of real (non-padding) pixels in each window; the 2-d count is their product.
    let counts = |len: usize, n: usize| -> Vec<f32> {
        (0..n)
            .map(|o| {
                let start = (o * s) as isize - pad as isize;
                let end = start + k as isize;
                (end.min(len as isize) - start.max(0)) as f32
            })
            .collect()
    };
    let (ho, wo) = (y.dim(2)?, y.dim(3)?);
    let ch = Tensor::from_vec(counts(h, ho), (ho, 1), x.device())?;
    let cw = Tensor::from_vec(counts(w, wo), (1, wo), x.device())?;
    let c = ch.broadcast_mul(&cw)?.to_dtype(x.dtype())?;
    Ok(y.broadcast_div(&c)?)
}

/// PyTorch `nn.MaxPool2d(kernel_size=1, stride=s)`: keeps every `s`-th pixel (IR-SE shortcut).
pub fn subsample(x: &Tensor, s: usize) -> Result<Tensor> {
    check4("subsample input", x)?;
    if s == 1 {
        return Ok(x.clone());
    }
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    let y = strided(x, 3, 0, s, (w - 1) / s + 1)?;
    strided(&y, 2, 0, s, (h - 1) / s + 1)
}

/// Global average pool to `[B, C]` (mean over H and W).
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    check4("global_avg_pool input", x)?;
    Ok(x.mean(D::Minus1)?.mean(D::Minus1)?)
}

/// Source indices and weights of PyTorch bilinear interpolation with `align_corners=False`
/// (half-pixel centres, no antialias): src = (dst + 0.5) * in / out - 0.5, clamped at 0.
fn bilinear_taps(inp: usize, out: usize) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let scale = inp as f64 / out as f64;
    let mut i0 = Vec::with_capacity(out);
    let mut i1 = Vec::with_capacity(out);
    let mut lam = Vec::with_capacity(out);
    for o in 0..out {
        let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
        let a = (src.floor() as usize).min(inp - 1);
        let b = (a + 1).min(inp - 1);
        i0.push(a as u32);
        i1.push(b as u32);
        lam.push((src - a as f64) as f32);
    }
    (i0, i1, lam)
}

fn resize_axis(x: &Tensor, dim: usize, out: usize) -> Result<Tensor> {
    let inp = x.dim(dim)?;
    if inp == out {
        return Ok(x.clone());
    }
    let (i0, i1, lam) = bilinear_taps(inp, out);
    if crate::fast::applies(&[x]) {
        // Inference on the CPU: the same interpolation in one pass.
        return Ok(crate::fast::lerp_axis(x, dim, i0, i1, lam)?);
    }
    let dev = x.device();
    let a = x.index_select(&Tensor::new(i0, dev)?, dim)?;
    let b = x.index_select(&Tensor::new(i1, dev)?, dim)?;
    let mut shape = vec![1usize; x.rank()];
    shape[dim] = out;
    let lam = Tensor::from_vec(lam, shape, dev)?.to_dtype(x.dtype())?;
    // a + lam * (b - a)
    Ok((&a + (b - &a)?.broadcast_mul(&lam)?)?)
}

/// `F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)` without antialias,
/// differentiable (separable `index_select` + weights). Used by the FID Inception's resize to 299.
pub fn resize_bilinear(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    check4("resize_bilinear input", x)?;
    if h == 0 || w == 0 {
        return Err(BackboneError::Config(format!(
            "resize_bilinear: output size {h}x{w} must be positive"
        )));
    }
    let y = resize_axis(x, 3, w)?;
    resize_axis(&y, 2, h)
}

/// The DISTS L2-pooling blur kernel: outer product of hanning(5)[1:-1] = [0.5, 1, 0.5],
/// normalised to sum 1, i.e. `[[1,2,1],[2,4,2],[1,2,1]] / 16`.
pub fn l2pool_kernel(device: &Device, dtype: DType) -> Result<Tensor> {
    let a = [0.5f32, 1.0, 0.5];
    let mut g = Vec::with_capacity(9);
    for u in a {
        for v in a {
            g.push(u * v / 4.0);
        }
    }
    Ok(Tensor::from_vec(g, (1, 1, 3, 3), device)?.to_dtype(dtype)?)
}

/// DISTS `L2pooling(channels, filter_size=5, stride=2)`:
/// sqrt(depthwise_conv(x^2, g, stride 2, padding 1) + 1e-12).
///
/// The depthwise conv runs as one groups=1 conv on a `[B*C, 1, H, W]` reshape: candle's grouped
/// conv is a per-group loop whose backward materialises C full-size tensors.
pub fn l2_pool(x: &Tensor) -> Result<Tensor> {
    check4("l2_pool input", x)?;
    let (b, c, h, w) = x.dims4()?;
    let g = l2pool_kernel(x.device(), x.dtype())?;
    let y = x.sqr()?.reshape((b * c, 1, h, w))?.conv2d(&g, 1, 2, 1, 1)?;
    let (_, _, ho, wo) = y.dims4()?;
    Ok((y.reshape((b, c, ho, wo))? + 1e-12)?.sqrt()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: (usize, usize, usize, usize), dtype: DType) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        // A non-monotone, tie-free pattern so that max positions are unique.
        let v: Vec<f64> = (0..n)
            .map(|i| (i as f64 * 0.7331).sin() + 1e-3 * i as f64)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    #[test]
    fn max_pool_matches_candle_without_padding() {
        let x = ramp((2, 3, 9, 8), DType::F32);
        for (k, s) in [(2, 2), (3, 2), (3, 1), (2, 1), (3, 3)] {
            let ours = max_pool2d(&x, k, s, 0).unwrap();
            let theirs = x.max_pool2d_with_stride(k, s).unwrap();
            assert_eq!(ours.dims(), theirs.dims(), "k{k} s{s}");
            let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "k{k} s{s}");
        }
    }

    #[test]
    fn max_pool_padding_is_minus_infinity() {
        // All-negative input: zero padding would leak 0 into the border outputs.
        let x = (ramp((1, 1, 5, 5), DType::F32) - 10.0).unwrap();
        let y = max_pool2d(&x, 3, 2, 1).unwrap();
        assert_eq!(y.dims(), &[1, 1, 3, 3]);
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let yv = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Corner window covers rows 0..=1, cols 0..=1 of the input.
        let want = xv[0].max(xv[1]).max(xv[5]).max(xv[6]);
        assert_eq!(yv[0], want);
        assert!(yv.iter().all(|v| *v < 0.0));
    }

    /// Central finite differences in f64 of L = sum(w * f(x)) against candle's backward.
    fn check_grad(f: &dyn Fn(&Tensor) -> Tensor, shape: (usize, usize, usize, usize)) {
        let x = candle_core::Var::from_tensor(&ramp(shape, DType::F64)).unwrap();
        let y = f(x.as_tensor());
        let wts = ramp(
            (
                y.dim(0).unwrap(),
                y.dim(1).unwrap(),
                y.dim(2).unwrap(),
                y.dim(3).unwrap(),
            ),
            DType::F64,
        )
        .affine(1.0, 0.3)
        .unwrap();
        let loss = (&y * &wts).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let gx = g
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let x0 = x
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let eps = 1e-6;
        let eval = |v: &[f64]| -> f64 {
            let t = Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap();
            (f(&t) * &wts)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let mut worst = 0.0f64;
        for i in 0..x0.len() {
            let mut p = x0.clone();
            p[i] += eps;
            let mut m = x0.clone();
            m[i] -= eps;
            let fd = (eval(&p) - eval(&m)) / (2.0 * eps);
            worst = worst.max((fd - gx[i]).abs());
        }
        assert!(worst < 1e-6, "max |fd - grad| = {worst}");
    }

    #[test]
    fn max_pool_gradient_matches_finite_differences() {
        check_grad(&|x| max_pool2d(x, 3, 2, 1).unwrap(), (1, 2, 7, 6));
        check_grad(&|x| max_pool2d(x, 3, 2, 0).unwrap(), (1, 1, 7, 7));
    }

    #[test]
    fn avg_pool_and_resize_gradients_match_finite_differences() {
        check_grad(&|x| avg_pool2d(x, 3, 1, 1, false).unwrap(), (1, 2, 5, 4));
        check_grad(&|x| resize_bilinear(x, 7, 3).unwrap(), (1, 1, 4, 5));
        check_grad(&|x| l2_pool(x).unwrap(), (1, 2, 6, 6));
    }

    #[test]
    fn avg_pool_exclude_pad_divides_by_real_count() {
        let x = Tensor::ones((1, 1, 4, 5), DType::F32, &Device::Cpu).unwrap();
        let y = avg_pool2d(&x, 3, 1, 1, false).unwrap();
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|a| (a - 1.0).abs() < 1e-6), "{v:?}");
        let y = avg_pool2d(&x, 3, 1, 1, true).unwrap();
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!((v[0] - 4.0 / 9.0).abs() < 1e-6);
    }

    #[test]
    fn avg_pool_matches_candle_when_kernel_equals_stride() {
        let x = ramp((1, 2, 6, 8), DType::F32);
        let ours = avg_pool2d(&x, 2, 2, 0, true).unwrap();
        let theirs = x.avg_pool2d(2).unwrap();
        let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
    }

    #[test]
    fn resize_matches_candle_bilinear_forward() {
        let x = ramp((1, 2, 5, 7), DType::F32);
        let ours = resize_bilinear(&x, 9, 4).unwrap();
        let theirs = x.upsample_bilinear2d(9, 4, false).unwrap();
        let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
    }

    #[test]
    fn bad_pool_arguments_are_errors() {
        let x = ramp((1, 1, 4, 4), DType::F32);
        assert!(max_pool2d(&x, 3, 0, 1).is_err());
        assert!(max_pool2d(&x, 3, 2, 2).is_err());
        assert!(max_pool2d(&x.flatten_all().unwrap(), 3, 2, 1).is_err());
    }
}
