//! 2-D convolutions with a fast backward on the CPU.
//!
//! candle computes the input gradient of `conv2d` with `conv_transpose2d`, whose CPU kernel is
//! a direct loop without gemm, 3-6x slower than the forward (candle-core `cpu_backend`'s `ConvTranspose2D`).
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
//! The forward of [`conv2d`] on the CPU in f32 (with or without gradient tracking) is
//! [`conv2d_f32`]: im2col of a few output rows at a time (row copies for
//! stride 1; a block of a few MB stays in the caches) and the `gemm` crate writing straight into
//! the output. candle's own CPU conv builds its patches element by element and was 2-3x slower
//! on the generator's 256 px layers.
//!
//! The plain candle ops stay the reference: the tests compare values, first- and second-order
//! gradients with them. On non-CPU devices both functions call candle's ops directly.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

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

/// Whether CPU inference kernels (custom ops without a backward) may stand in for a chain of
/// differentiable ops: every tensor f32, on the CPU, with no gradient tracked.
pub fn cpu_f32_untracked(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op())
}

/// The contiguous f32 data of a custom op's CPU input (an error naming `op` otherwise).
pub fn contiguous_f32<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op}: f32 input expected")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: contiguous input expected"),
    }
}

/// Largest im2col block (elements) of [`conv2d_f32`]: 4 MiB of f32, so that a block and the
/// weight stay in the caches while the GEMM runs.
const CONV_BLOCK_ELEMS: usize = 1 << 20;

/// Shapes of one [`conv2d_f32`] call.
#[derive(Debug, Clone, Copy)]
struct ConvDims {
    cin: usize,
    h: usize,
    w: usize,
    k: usize,
    padding: usize,
    stride: usize,

    ow: usize,
}

/// Fills `cols` `[cin·k·k, rows·ow]` with the patches of output rows `r0..r0 + rows` of one
/// sample `x` `[cin, h, w]`, zero outside the image.
fn im2col_rows(x: &[f32], d: ConvDims, r0: usize, rows: usize, cols: &mut [f32]) {
    let (k, p, s) = (d.k, d.padding as i64, d.stride);
    let n = rows * d.ow;
    for ci in 0..d.cin {
        let plane = &x[ci * d.h * d.w..(ci + 1) * d.h * d.w];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((ci * k + ky) * k + kx) * n..][..n];
                let dx = kx as i64 - p;
                for y in 0..rows {
                    let seg = &mut row[y * d.ow..(y + 1) * d.ow];
                    let sy = ((r0 + y) * s) as i64 + ky as i64 - p;
                    if sy < 0 || sy >= d.h as i64 {
                        seg.fill(0.0);
                        continue;
                    }
                    let src = &plane[sy as usize * d.w..(sy as usize + 1) * d.w];
                    if s == 1 {
                        // Output columns lo..hi read src[ox + dx]: one shifted copy.
                        let lo = (-dx).clamp(0, d.ow as i64) as usize;
                        let hi = (d.w as i64 - dx).clamp(lo as i64, d.ow as i64) as usize;
                        seg[..lo].fill(0.0);
                        if hi > lo {
                            let a = (lo as i64 + dx) as usize;
                            seg[lo..hi].copy_from_slice(&src[a..a + (hi - lo)]);
                        }
                        seg[hi..].fill(0.0);
                    } else {
                        for (ox, v) in seg.iter_mut().enumerate() {
                            let sx = (ox * s) as i64 + dx;
                            *v = if sx >= 0 && sx < d.w as i64 {
                                src[sx as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Convolution of contiguous f32 data, `x` `[b, cin, h, w]` with `wt` `[cout, cin, k, k]`
/// (square kernel, symmetric zero padding, dilation 1, groups 1): `[b, cout, oh, ow]`, computed
/// as im2col of output-row blocks + one GEMM per block into the output. Blocks run in parallel
/// (single-threaded GEMMs) when there are enough of them, else in turn with a parallel GEMM.
pub fn conv2d_f32(
    x: &[f32],
    (b, cin, h, w): (usize, usize, usize, usize),
    wt: &[f32],
    (cout, k): (usize, usize),
    padding: usize,
    stride: usize,
) -> candle_core::Result<(Vec<f32>, (usize, usize))> {
    if stride == 0 || k == 0 || h + 2 * padding < k || w + 2 * padding < k {
        candle_core::bail!(
            "conv2d: {h}x{w} input with padding {padding} is smaller than the {k}x{k} kernel \
             (or stride 0)"
        )
    }
    if x.len() != b * cin * h * w || wt.len() != cout * cin * k * k {
        candle_core::bail!("conv2d: data lengths do not match the shapes")
    }
    let (oh, ow) = (
        (h + 2 * padding - k) / stride + 1,
        (w + 2 * padding - k) / stride + 1,
    );
    let d = ConvDims {
        cin,
        h,
        w,
        k,
        padding,
        stride,
        ow,
    };
    let kk = cin * k * k;
    let mut out = vec![0f32; b * cout * oh * ow];
    if out.is_empty() || kk == 0 {
        return Ok((out, (oh, ow)));
    }
    let rows = (CONV_BLOCK_ELEMS / (kk * ow)).clamp(1, oh);
    let blocks: Vec<(usize, usize)> = (0..b)
        .flat_map(|bi| (0..oh).step_by(rows).map(move |r0| (bi, r0)))
        .collect();
    let threads = rayon::current_num_threads();
    let (outer, inner) = if blocks.len() >= 2 * threads || threads == 1 {
        (true, gemm::Parallelism::None)
    } else {
        (false, gemm::Parallelism::Rayon(threads))
    };
    let out_addr = out.as_mut_ptr() as usize;
    let run = |&(bi, r0): &(usize, usize)| {
        let n_rows = rows.min(oh - r0);
        let n = n_rows * ow;
        let mut cols = vec![0f32; kk * n];
        im2col_rows(
            &x[bi * cin * h * w..(bi + 1) * cin * h * w],
            d,
            r0,
            n_rows,
            &mut cols,
        );
        // SAFETY: block (bi, r0) writes output rows r0..r0 + n_rows of every output channel of
        // sample bi, which no other block touches, and `out` outlives the loop. The strides
        // describe [cout, n] inside the [b, cout, oh, ow] buffer, `wt` as [cout, kk] and `cols`
        // as [kk, n], all row-major and in bounds.
        unsafe {
            let dst = (out_addr as *mut f32).add(bi * cout * oh * ow + r0 * ow);
            gemm::gemm(
                cout,
                n,
                kk,
                dst,
                1,
                (oh * ow) as isize,
                false,
                wt.as_ptr(),
                1,
                kk as isize,
                cols.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                inner,
            );
        }
    };
    if outer {
        blocks.par_iter().for_each(run);
    } else {
        blocks.iter().for_each(run);
    }
    Ok((out, (oh, ow)))
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

/// The data of `l` in row-major order: borrowed when contiguous, else gathered.
fn contiguous_or_gather<'a, T: Copy>(v: &'a [T], l: &Layout) -> std::borrow::Cow<'a, [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => std::borrow::Cow::Borrowed(&v[a..b]),
        None => std::borrow::Cow::Owned(gather(v, l)),
    }
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
        if let (CpuStorage::F32(xv), CpuStorage::F32(wv)) = (s1, s2) {
            let (xd, wd) = (l1.dims(), l2.dims());
            if xd.len() == 4 && wd.len() == 4 && wd[1] == xd[1] && wd[2] == wd[3] {
                let x = contiguous_or_gather(xv, l1);
                let w = contiguous_or_gather(wv, l2);
                let (b, cout) = (xd[0], wd[0]);
                let (out, (oh, ow)) = conv2d_f32(
                    &x,
                    (xd[0], xd[1], xd[2], xd[3]),
                    &w,
                    (cout, wd[2]),
                    self.padding,
                    self.stride,
                )?;
                return Ok((CpuStorage::F32(out), Shape::from((b, cout, oh, ow))));
            }
        }
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
    use candle_core::Var;
    use s2m_core::rng::{randn_vec, rng_from_seed};

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
    fn f32_gemm_kernel_matches_candle() {
        // (batch, cin, cout, h, w, k, pad, stride): odd and even sizes, k 1/3/5/7, strides 1-2,
        // padding 0 to k − 1; the last spans several row blocks (cin·k·k·w > block / 4).
        for (b, ci, co, h, w, k, pad, stride) in [
            (1, 3, 4, 8, 8, 3, 1, 1),
            (2, 5, 3, 7, 9, 3, 0, 1),
            (2, 4, 6, 9, 6, 3, 1, 2),
            (1, 3, 2, 5, 5, 1, 0, 1),
            (1, 2, 3, 6, 7, 5, 4, 1),
            (3, 3, 8, 11, 10, 7, 3, 2),
            (2, 2, 2, 4, 3, 3, 2, 1),
            (2, 128, 16, 70, 90, 3, 1, 1),
            // The generator's "same" convolutions (padding k / 2).
            (1, 5, 7, 6, 4, 3, 1, 1),
            (3, 4, 2, 9, 7, 3, 1, 1),
            (2, 3, 3, 4, 3, 1, 0, 1),
            (1, 2, 2, 3, 2, 5, 2, 1),
        ] {
            let x = randn(6, &[b, ci, h, w], DType::F32);
            let wt = randn(7, &[co, ci, k, k], DType::F32);
            let plain = x.conv2d(&wt, pad, stride, 1, 1).unwrap();
            let fast = conv2d(&x, &wt, pad, stride).unwrap();
            assert_eq!(plain.dims(), fast.dims());
            // f32 sums of up to 1,152 products of N(0, 1) values in another order.
            let e = max_abs(&plain, &fast);
            assert!(e < 1e-3, "{:?}: {e}", (b, ci, co, h, w, k, pad, stride));
        }
        // A non-contiguous input (a transposed view) is gathered first.
        let x = randn(8, &[1, 3, 9, 6], DType::F32).transpose(2, 3).unwrap();
        let wt = randn(9, &[2, 3, 3, 3], DType::F32);
        let plain = x.contiguous().unwrap().conv2d(&wt, 1, 1, 1, 1).unwrap();
        assert!(max_abs(&plain, &conv2d(&x, &wt, 1, 1).unwrap()) < 1e-5);
        // Through the autograd op: the f32 forward and the unchanged backward.
        let xv = Var::from_tensor(&randn(10, &[2, 3, 6, 6], DType::F32)).unwrap();
        let wv = Var::from_tensor(&randn(11, &[4, 3, 3, 3], DType::F32)).unwrap();
        let gp = xv
            .conv2d(&wv, 1, 1, 1, 1)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let gf = conv2d(&xv, &wv, 1, 1)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let (gp, gf) = (gp.backward().unwrap(), gf.backward().unwrap());
        for v in [&xv, &wv] {
            assert!(max_abs(gp.get(v).unwrap(), gf.get(v).unwrap()) < 1e-3);
        }
        // A kernel larger than the padded input is an error, not a panic.
        assert!(conv2d(&randn(12, &[1, 1, 2, 2], DType::F32), &wt, 0, 1).is_err());
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
            let checks = s2m_train::gradcheck::check_grad_of_grad(
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
