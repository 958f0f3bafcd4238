//! CPU inference kernels for the backbones: used only when no gradient is tracked, on the CPU,
//! in f32 (inference with loaded weights, e.g. the SOLOv2 synthesizer and the metrics). Each
//! computes the same function as the differentiable op chain it stands for, in one pass:
//!
//! - [`lerp_axis`]: the separable bilinear resize of [`crate::ops::resize_bilinear`] along one
//!   axis (`a + λ·(b − a)` with gathered rows `a`, `b`), instead of two `index_select`s, a
//!   subtraction, a broadcast multiplication and an addition;
//! - [`scale_shift`]: eval-mode BatchNorm folded to `x·scale[c] + shift[c]`, instead of a
//!   broadcast multiplication and a broadcast addition.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use s2m_kernels::conv::contiguous_f32 as f32_data;
pub use s2m_kernels::conv::cpu_f32_untracked as applies;

/// Linear interpolation along `dim` of a contiguous tensor: output index `j` is
/// `x[i0[j]] + lam[j]·(x[i1[j]] − x[i0[j]])`.
struct LerpAxis {
    dim: usize,
    i0: Vec<u32>,
    i1: Vec<u32>,
    lam: Vec<f32>,
}

impl CustomOp1 for LerpAxis {
    fn name(&self) -> &'static str {
        "backbones-lerp-axis"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_data(s, l, self.name())?;
        let dims = l.dims();
        let outer: usize = dims[..self.dim].iter().product();
        let inp = dims[self.dim];
        let inner: usize = dims[self.dim + 1..].iter().product();
        let out = self.lam.len();
        let mut dst = vec![0f32; outer * out * inner];
        for o in 0..outer {
            let src = &x[o * inp * inner..(o + 1) * inp * inner];
            let d = &mut dst[o * out * inner..(o + 1) * out * inner];
            for j in 0..out {
                let (a, b) = (self.i0[j] as usize * inner, self.i1[j] as usize * inner);
                let lam = self.lam[j];
                let row = &mut d[j * inner..(j + 1) * inner];
                for ((r, va), vb) in row
                    .iter_mut()
                    .zip(&src[a..a + inner])
                    .zip(&src[b..b + inner])
                {
                    *r = va + (vb - va) * lam;
                }
            }
        }
        let mut shape = dims.to_vec();
        shape[self.dim] = out;
        Ok((CpuStorage::F32(dst), Shape::from(shape)))
    }
}

/// `x` resized along `dim` by gathering rows `i0`, `i1` and mixing them with weights `lam`.
pub fn lerp_axis(
    x: &Tensor,
    dim: usize,
    i0: Vec<u32>,
    i1: Vec<u32>,
    lam: Vec<f32>,
) -> candle_core::Result<Tensor> {
    let inp = x.dim(dim)? as u32;
    if i0.len() != lam.len() || i1.len() != lam.len() || i0.iter().chain(&i1).any(|i| *i >= inp) {
        candle_core::bail!("lerp_axis: inconsistent taps for an axis of {inp}")
    }
    x.contiguous()?
        .apply_op1_no_bwd(&LerpAxis { dim, i0, i1, lam })
}

/// `x·scale[c] + shift[c]` on `[B, C, H, W]`.
struct ScaleShift {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl CustomOp1 for ScaleShift {
    fn name(&self) -> &'static str {
        "backbones-scale-shift"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_data(s, l, self.name())?;
        let dims = l.dims();
        let (c, hw) = (dims[1], dims[2..].iter().product::<usize>().max(1));
        let dst: Vec<f32> = x
            .chunks(hw)
            .enumerate()
            .flat_map(|(plane, src)| {
                let (a, b) = (self.scale[plane % c], self.shift[plane % c]);
                src.iter().map(move |v| v * a + b)
            })
            .collect();
        Ok((CpuStorage::F32(dst), l.shape().clone()))
    }
}

/// `x` `[B, C, ...]` times `scale` `[C]` plus `shift` `[C]`, per channel.
pub fn scale_shift(x: &Tensor, scale: &Tensor, shift: &Tensor) -> candle_core::Result<Tensor> {
    let c = x.dim(1)?;
    let scale = scale
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    let shift = shift
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    if scale.len() != c || shift.len() != c {
        candle_core::bail!(
            "scale_shift: {c} channels but {} / {} parameters",
            scale.len(),
            shift.len()
        )
    }
    x.contiguous()?
        .apply_op1_no_bwd(&ScaleShift { scale, shift })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use s2m_core::testing::{max_abs_diff, randn};

    #[test]
    fn bilinear_resize_kernel_matches_the_differentiable_path() {
        let x = randn(&[2, 3, 7, 5], 1);
        // A Var input takes the differentiable index_select path.
        let tracked = Var::from_tensor(&x).unwrap();
        for (h, w) in [(14, 10), (3, 4), (7, 9), (1, 1)] {
            let reference = crate::ops::resize_bilinear(tracked.as_tensor(), h, w).unwrap();
            let fast = crate::ops::resize_bilinear(&x, h, w).unwrap();
            assert!(max_abs_diff(&fast, &reference.detach()) < 1e-6, "{h}x{w}");
        }
        assert!(lerp_axis(&x, 3, vec![0, 9], vec![1, 1], vec![0.5, 0.5]).is_err());
    }

    #[test]
    fn batch_norm_kernel_matches_the_broadcast_ops() {
        let x = randn(&[2, 4, 3, 5], 2);
        let scale = randn(&[4], 3);
        let shift = randn(&[4], 4);
        let reference = x
            .broadcast_mul(&scale.reshape((1, 4, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&shift.reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        assert!(max_abs_diff(&scale_shift(&x, &scale, &shift).unwrap(), &reference) < 1e-6);
        assert!(scale_shift(&x, &randn(&[3], 5), &shift).is_err());
    }
}
