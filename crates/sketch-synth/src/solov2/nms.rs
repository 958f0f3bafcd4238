//! Matrix NMS (SOLOv2 paper, section 4.2), exactly as mmdetection's
//! `mmdet/models/layers/matrix_nms.py::mask_matrix_nms` (read at 7fb530c; the official
//! WXinlong/SOLO `matrix_nms` computes the same decay):
//!
//! 1. sort by score (descending), keep the first `nms_pre`;
//! 2. IoU_ij = inter_ij / (area_i + area_j - inter_ij), strict upper triangle (i scored higher),
//!    times the same-label indicator: D;
//! 3. compensation comp_i = max_k D_ki;
//! 4. decay_j = min_i exp(-sigma D_ij^2) / exp(-sigma comp_i^2) (Gaussian) or
//!    min_i (1 - D_ij) / (1 - comp_i) (linear);
//! 5. score_j *= decay_j; keep scores >= `filter_thr` (when > 0); sort again; keep `max_num`.
//!
//! The arithmetic follows torch's f32 order (same formula, same operation order). NaN
//! propagates as in torch: through the minimum and the compensation maximum, and through the
//! label indicator (IoU x 0), so the 0/0 IoU of two empty masks, even of different labels,
//! turns every decayed score into NaN and a positive `filter_thr` then drops all masks
//! (checked against mmdet 3.3.0, `tests/solov2_mmdet.rs`); the linear 0/0 of three identical
//! masks likewise. NaN sorts as the largest score (`torch.sort`).
//! NOTE: ties in the score sort keep the input order (stable sort); `torch.sort` does not
//! promise any order for ties.

use candle_core::{DType, Tensor};

use super::config::NmsKernel;
use super::error::{Result, SoloError};

/// Matrix NMS settings (mmdet argument names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatrixNmsParams {
    /// Decay kernel.
    pub kernel: NmsKernel,
    /// Gaussian sigma (2.0).
    pub sigma: f32,
    /// Masks kept before the decay (`nms_pre`; 0 = all).
    pub nms_pre: usize,
    /// Score threshold after the decay (`filter_thr`; <= 0 = none).
    pub filter_thr: f32,
    /// Masks kept at the end (`max_num`; 0 = all).
    pub max_num: usize,
}

impl Default for MatrixNmsParams {
    fn default() -> Self {
        Self {
            kernel: NmsKernel::Gaussian,
            sigma: 2.0,
            nms_pre: 0,
            filter_thr: -1.0,
            max_num: 0,
        }
    }
}

/// Output of [`matrix_nms`]: decayed scores (descending) and, for each, the index of the mask
/// in the caller's input order (mmdet's `keep_inds`).
#[derive(Debug, Clone, PartialEq)]
pub struct NmsOutput {
    /// Decayed scores, sorted descending.
    pub scores: Vec<f32>,
    /// Input index of each kept mask.
    pub keep: Vec<usize>,
}

/// Descending sort; NaN counts as larger than any number (as in `torch.sort`), whatever its
/// sign bit.
fn sort_desc(idx: &mut [usize], score: impl Fn(usize) -> f32) {
    let key = |i: usize| {
        let s = score(i);
        (s.is_nan(), if s.is_nan() { 0.0 } else { s })
    };
    idx.sort_by(|&a, &b| {
        let (na, sa) = key(a);
        let (nb, sb) = key(b);
        nb.cmp(&na).then(sb.total_cmp(&sa))
    });
}

/// Minimum that propagates NaN like `torch.min`.
fn min_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

/// Maximum that propagates NaN like `torch.max`.
fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// Matrix NMS over binary `masks` `[N, H, W]` (any dtype, values 0/1) with class `labels` and
/// `scores`; `areas` defaults to the mask sums (mmdet's `mask_area`).
pub fn matrix_nms(
    masks: &Tensor,
    labels: &[usize],
    scores: &[f32],
    areas: Option<&[f32]>,
    p: &MatrixNmsParams,
) -> Result<NmsOutput> {
    let d = masks.dims();
    if d.len() != 3 || d[0] != labels.len() || d[0] != scores.len() {
        return Err(SoloError::Shape {
            what: "matrix_nms masks".into(),
            expected: format!(
                "[N, H, W] with N = {} labels = {} scores",
                labels.len(),
                scores.len()
            ),
            got: d.to_vec(),
        });
    }
    if let Some(a) = areas
        && a.len() != labels.len()
    {
        return Err(SoloError::Input(format!(
            "matrix_nms: {} areas for {} masks",
            a.len(),
            labels.len()
        )));
    }
    let n0 = labels.len();
    if n0 == 0 {
        return Ok(NmsOutput {
            scores: vec![],
            keep: vec![],
        });
    }
    let flat = masks.to_dtype(DType::F32)?.reshape((n0, d[1] * d[2]))?;
    let mut order: Vec<usize> = (0..n0).collect();
    sort_desc(&mut order, |i| scores[i]);
    if p.nms_pre > 0 && order.len() > p.nms_pre {
        order.truncate(p.nms_pre);
    }
    let n = order.len();
    let idx = Tensor::new(
        order.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        flat.device(),
    )?;
    let m = flat.index_select(&idx, 0)?;
    let inter: Vec<Vec<f32>> = m.matmul(&m.t()?)?.to_vec2()?;
    let area: Vec<f32> = match areas {
        Some(a) => order.iter().map(|&i| a[i]).collect(),
        None => m.sum(1)?.to_vec1()?,
    };
    let lab: Vec<usize> = order.iter().map(|&i| labels[i]).collect();
    // D (decay IoU): strict upper triangle times the same-label indicator. As in mmdet, the
    // IoU is multiplied by 0 for other labels, so the 0/0 of two empty masks stays NaN.
    let mut dmat = vec![vec![0f32; n]; n];
    for i in 0..n {
        for j in (i + 1)..n {
            let same = if lab[i] == lab[j] { 1.0 } else { 0.0 };
            dmat[i][j] = inter[i][j] / (area[i] + area[j] - inter[i][j]) * same;
        }
    }
    // comp_i = max over k of D_ki (column max; NaN propagates as in `torch.max`).
    let comp: Vec<f32> = (0..n)
        .map(|i| (0..n).map(|k| dmat[k][i]).fold(f32::NEG_INFINITY, max_nan))
        .collect();
    let mut new_scores = Vec::with_capacity(n);
    for j in 0..n {
        let mut decay = f32::INFINITY;
        for i in 0..n {
            let r = match p.kernel {
                NmsKernel::Gaussian => {
                    (-p.sigma * (dmat[i][j] * dmat[i][j])).exp()
                        / (-p.sigma * (comp[i] * comp[i])).exp()
                }
                NmsKernel::Linear => (1.0 - dmat[i][j]) / (1.0 - comp[i]),
            };
            decay = min_nan(decay, r);
        }
        new_scores.push(scores[order[j]] * decay);
    }
    let mut pos: Vec<usize> = (0..n)
        .filter(|&j| p.filter_thr <= 0.0 || new_scores[j] >= p.filter_thr)
        .collect();
    sort_desc(&mut pos, |j| new_scores[j]);
    if p.max_num > 0 && pos.len() > p.max_num {
        pos.truncate(p.max_num);
    }
    Ok(NmsOutput {
        scores: pos.iter().map(|&j| new_scores[j]).collect(),
        keep: pos.iter().map(|&j| order[j]).collect(),
    })
}
