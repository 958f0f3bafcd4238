//! 2-D convolutions with a fast backward on the CPU.
//!
//! candle computes the input gradient of `conv2d` with `conv_transpose2d`, whose CPU kernel is
//! a direct loop without gemm, 3-6x slower than the forward (see the candle notes, section 2).
//! A transposed convolution is itself a plain convolution of the zero-dilated input with the
//! flipped, channel-transposed kernel, which candle runs as im2col + gemm. This module uses that
//! identity twice:
//!
//! - [`conv2d`]: the forward is candle's `conv2d`; the backward (a `CustomOp2`) computes the
//!   input gradient as such a convolution and the kernel gradient as candle does. Both are
//!   written with differentiable tensor ops, so second-order gradients (R1, path length) keep
//!   working under `CANDLE_GRAD_DO_NOT_DETACH=1` (tested against the plain op).
//! - [`conv_transpose2d`]: at stride 1, a pad and [`conv2d`] with the flipped kernel, so forward
//!   and backward are both gemm-based. At stride 2 candle's direct kernel is kept: the
//!   equivalent dilated convolution multiplies 4x as many (mostly zero) values and measured
//!   3-6x slower. The stride-2 input gradient of [`conv2d`] likewise stays candle's.
//!
//! The plain candle ops stay the reference: the tests compare values, first- and second-order
//! gradients with them. On non-CPU devices both functions call candle's ops directly.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};

/// `x` `[B,Cin,H,W]` correlated with `w` `[Cout,Cin,k,k]` (groups 1, dilation 1), as
/// `x.conv2d(w, padding, stride, 1, 1)`, with a gemm-based backward on the CPU.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() {
        return x.conv2d(w, padding, stride, 1, 1);
    }
    x.apply_op2(w, FastConv2d { padding, stride })
}

/// `x` `[B,Cin,H,W]` with `w` `[Cin,Cout,k,k]` (PyTorch's transposed-conv layout), as
/// `x.conv_transpose2d(w, padding, output_padding, stride, 1)`, gemm-based both ways.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    output_padding: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    let (_, _, k, k2) = w.dims4()?;
    // Only stride 1 gains: for stride s the dilated input is s² times larger and mostly zeros,
    // and candle's direct kernel skips them (measured: 3-6x faster at stride 2).
    if stride != 1 || k != k2 || padding > k - 1 || !x.device().is_cpu() {
        return x.conv_transpose2d(w, padding, output_padding, stride, 1);
    }
    // [Cin,Cout,k,k] -> flipped [Cout,Cin,k,k]
    let wf = flip_spatial(&w.transpose(0, 1)?)?.contiguous()?;
    let xd = dilate(x, stride)?;
    let p = k - 1 - padding;
    // Output padding adds rows/columns at the bottom/right only.
    let xd = xd
        .pad_with_zeros(2, p, p + output_padding)?
        .pad_with_zeros(3, p, p + output_padding)?;
    conv2d(&xd, &wf, 0, 1)
}

/// Inserts `stride - 1` zeros between neighbouring pixels: `[B,C,H,W]` ->
/// `[B,C,(H-1)s+1,(W-1)s+1]`. Differentiable (reshape, pad, narrow).
pub fn dilate(x: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
    if stride == 1 {
        return Ok(x.clone());
    }
    let (b, c, h, w) = x.dims4()?;
    // [B,C,H,1,W,1] -> pad -> [B,C,H,s,W,s] -> [B,C,Hs,Ws]
    let y = x
        .reshape((b, c, h, 1, w, 1))?
        .pad_with_zeros(3, 0, stride - 1)?
        .pad_with_zeros(5, 0, stride - 1)?
        .reshape((b, c, h * stride, w * stride))?;
    y.narrow(2, 0, (h - 1) * stride + 1)?
        .narrow(3, 0, (w - 1) * stride + 1)
}

/// Reverses both spatial axes of a `[.., .., k, k]` kernel (differentiable index_select).
pub fn flip_spatial(w: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, kh, kw) = w.dims4()?;
    let rev = |n: usize| {
        Tensor::new(
            (0..n as u32).rev().collect::<Vec<_>>().as_slice(),
            w.device(),
        )
    };
    w.contiguous()?
        .index_select(&rev(kh)?, 2)?
        .index_select(&rev(kw)?, 3)
}

struct FastConv2d {
    padding: usize,
    stride: usize,
}

fn gather<T: Copy>(v: &[T], l: &Layout) -> Vec<T> {
    if let Some((a, b)) = l.contiguous_offsets() {
        return v[a..b].to_vec();
    }
    // Walk the multi-index in row-major order with the layout's strides.
    let dims = l.dims();
    let strides = l.stride();
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; dims.len()];
    for _ in 0..n {
        let offset: usize =
            l.start_offset() + index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
        out.push(v[offset]);
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

fn storage_to_tensor(s: &CpuStorage, l: &Layout) -> candle_core::Result<Tensor> {
    match s {
        CpuStorage::F32(v) => Tensor::from_vec(gather(v, l), l.shape(), &Device::Cpu),
        CpuStorage::F64(v) => Tensor::from_vec(gather(v, l), l.shape(), &Device::Cpu),
        _ => candle_core::bail!("fast conv2d supports f32 and f64 only"),
    }
}

impl CustomOp2 for FastConv2d {
    fn name(&self) -> &'static str {
        "fast-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = storage_to_tensor(s1, l1)?;
        let w = storage_to_tensor(s2, l2)?;
        let y = x.conv2d(&w, self.padding, self.stride, 1, 1)?;
        let shape = y.shape().clone();
        let flat = y.flatten_all()?;
        let storage = match flat.dtype() {
            DType::F32 => CpuStorage::F32(flat.to_vec1::<f32>()?),
            DType::F64 => CpuStorage::F64(flat.to_vec1::<f64>()?),
            dt => candle_core::bail!("fast conv2d: unexpected dtype {dt:?}"),
        };
        Ok((storage, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, wd) = x.dims4()?;
        let (_, _, k, _) = w.dims4()?;
        let (_, _, gh, gw) = grad.dims4()?;
        // Rows/columns of the input that no output position reads (stride > 1 with a
        // remainder) get zero gradient: the transposed conv's output padding.
        let out_h = (gh - 1) * self.stride + k - 2 * self.padding;
        let out_w = (gw - 1) * self.stride + k - 2 * self.padding;
        let (op_h, op_w) = (h - out_h, wd - out_w);
        // w [Cout,Cin,k,k] is already the transposed-conv kernel that maps Cout back to Cin.
        // Stride 1: a plain gemm convolution (the fast path). Stride > 1: candle's direct
        // transposed conv, which skips the zeros a dilated convolution would multiply.
        let grad_x = if self.stride == 1 && op_h == 0 && op_w == 0 {
            conv_transpose2d(grad, w, self.padding, op_h, self.stride)?
        } else {
            grad.conv_transpose2d(w, self.padding, op_h.max(op_w), self.stride, 1)?
                .narrow(2, 0, h)?
                .narrow(3, 0, wd)?
        };
        // As candle: correlate the input with the output gradient, batch and channels swapped.
        let grad_w = x
            .transpose(0, 1)?
            .conv2d(&grad.transpose(0, 1)?, self.padding, 1, self.stride, 1)?
            .transpose(0, 1)?;
        let (_, _, g0, g1) = grad_w.dims4()?;
        let grad_w = if g0 != k || g1 != k {
            grad_w.narrow(2, 0, k)?.narrow(3, 0, k)?
        } else {
            grad_w
        };
        Ok((Some(grad_x), Some(grad_w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{randn_vec, rng_from_seed};
    use candle_core::Var;

    fn randn(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(randn_vec(&mut rng_from_seed(seed), n), shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn forward_and_gradients_match_candle() {
        for (pad, stride, k, hw) in [
            (1, 1, 3, 8),
            (0, 1, 1, 7),
            (1, 2, 3, 8),
            (0, 2, 3, 9),
            (1, 2, 3, 7),
        ] {
            let x = Var::from_tensor(&randn(1, &[2, 3, hw, hw], DType::F64)).unwrap();
            let w = Var::from_tensor(&randn(2, &[4, 3, k, k], DType::F64)).unwrap();
            let probe = {
                let y = x.conv2d(&w, pad, stride, 1, 1).unwrap();
                randn(3, y.dims(), DType::F64)
            };
            let plain = x.conv2d(&w, pad, stride, 1, 1).unwrap();
            let fast = conv2d(&x, &w, pad, stride).unwrap();
            assert!(max_abs(&plain, &fast) < 1e-12);
            let gp = (plain * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gf = (fast * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &w] {
                let e = max_abs(gp.get(v).unwrap(), gf.get(v).unwrap());
                assert!(e < 1e-10, "pad {pad} stride {stride} k {k} hw {hw}: {e}");
            }
        }
    }

    #[test]
    fn transposed_conv_matches_candle() {
        for (pad, opad, stride) in [(0, 0, 2), (1, 0, 2), (1, 1, 2), (0, 0, 1)] {
            let x = Var::from_tensor(&randn(4, &[2, 3, 5, 5], DType::F64)).unwrap();
            let w = Var::from_tensor(&randn(5, &[3, 4, 3, 3], DType::F64)).unwrap();
            let plain = x.conv_transpose2d(&w, pad, opad, stride, 1).unwrap();
            let fast = conv_transpose2d(&x, &w, pad, opad, stride).unwrap();
            assert_eq!(plain.dims(), fast.dims());
            assert!(max_abs(&plain, &fast) < 1e-12);
            let probe = randn(6, plain.dims(), DType::F64);
            let gp = (plain * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gf = (fast * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &w] {
                assert!(max_abs(gp.get(v).unwrap(), gf.get(v).unwrap()) < 1e-10);
            }
        }
    }

    #[test]
    fn second_order_gradient_matches_finite_differences() {
        // R1-style: d/dw of || d(sum(leaky(conv(x, w)) * v)) / dx ||^2, checked against finite
        // differences by the workspace's checker (which also verifies the env variable).
        let x = randn(7, &[1, 2, 6, 6], DType::F64);
        let w = randn(8, &[3, 2, 3, 3], DType::F64);
        let v = randn(9, &[1, 3, 3, 3], DType::F64);
        for (stride, v) in [(2usize, &v), (1, &randn(10, &[1, 3, 6, 6], DType::F64))] {
            let d = |input: &Tensor, params: &[Tensor]| -> candle_core::Result<Tensor> {
                let y = conv2d(input, &params[0], 1, stride)?;
                let y = (y.maximum(0.0)? + (y.minimum(0.0)? * 0.2)?)?;
                (y * v)?.sum_all()
            };
            let penalty = |g: &Tensor| g.sqr()?.sum_all();
            let checks = crate::gradcheck::check_grad_of_grad(
                d,
                penalty,
                &x,
                std::slice::from_ref(&w),
                1e-5,
            )
            .unwrap();
            for c in checks {
                assert!(c.passes(1e-6), "stride {stride}: {c:?}");
            }
        }
    }
}
