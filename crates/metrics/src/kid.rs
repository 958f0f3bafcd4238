//! Kernel Inception Distance: the unbiased MMD^2 with the cubic polynomial kernel
//! `k(x, y) = (x.y / d + 1)^3`, averaged over random subsets.
//!
//! Mirrors torch-fidelity's `kid` (`kid_subsets` = 100, `kid_subset_size` = 1000, degree 3,
//! gamma = 1/d, coef0 = 1) and clean-fid's `kernel_distance` (same estimator):
//!
//! ```text
//! m     = min(n1, n2, subset_size)
//! per subset (x, y drawn without replacement, m rows each):
//!   mmd2 = [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m (m-1)) - 2 mean_{i,j} k(x_i,y_j)
//! KID   = mean over subsets, reported with the (population) std over subsets as torch-fidelity.
//! ```
//!
//! NOTE: subsets are drawn with a seeded ChaCha8 stream (`rand::seq::index::sample`), not
//! numpy's generator, so the subsets differ from the Python tools; the estimator on given
//! subsets is identical (parity test on fixed subsets in `tests/kid.rs`). With `m = n1 = n2`
//! and one subset the value is deterministic and equals the Python value exactly.

use faer::Mat;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::features::error::{MetricsError, Result};

/// KID settings (torch-fidelity defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KidConfig {
    pub subsets: usize,
    pub subset_size: usize,
    pub seed: u64,
}

impl Default for KidConfig {
    fn default() -> Self {
        Self {
            subsets: 100,
            subset_size: 1000,
            seed: 0,
        }
    }
}

/// KID mean and std over subsets, with the subset size used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KidValue {
    pub mean: f64,
    pub std: f64,
    pub subset_size: usize,
    pub subsets: usize,
}

fn to_mat(f: &[f32], dim: usize, rows: &[usize]) -> Mat<f64> {
    Mat::<f64>::from_fn(rows.len(), dim, |i, j| f[rows[i] * dim + j] as f64)
}

/// Unbiased MMD^2 between the rows `rx` of `fx` and the rows `ry` of `fy` (equal counts `m`).
pub fn mmd2_unbiased(fx: &[f32], fy: &[f32], dim: usize, rx: &[usize], ry: &[usize]) -> f64 {
    let m = rx.len();
    let x = to_mat(fx, dim, rx);
    let y = to_mat(fy, dim, ry);
    let k = |g: Mat<f64>| -> Mat<f64> {
        Mat::<f64>::from_fn(g.nrows(), g.ncols(), |i, j| {
            (g[(i, j)] / dim as f64 + 1.0).powi(3)
        })
    };
    let kxx = k(&x * x.transpose());
    let kyy = k(&y * y.transpose());
    let kxy = k(&x * y.transpose());
    let off = |a: &Mat<f64>| -> f64 {
        let mut s = 0.0;
        for i in 0..m {
            for j in 0..m {
                if i != j {
                    s += a[(i, j)];
                }
            }
        }
        s
    };
    let sxy: f64 = (0..m)
        .map(|i| (0..m).map(|j| kxy[(i, j)]).sum::<f64>())
        .sum();
    let mf = m as f64;
    (off(&kxx) + off(&kyy)) / (mf * (mf - 1.0)) - 2.0 * sxy / (mf * mf)
}

/// KID between two feature sets (row-major, `dim` columns), with seeded subsets.
pub fn kid(fx: &[f32], fy: &[f32], dim: usize, cfg: &KidConfig) -> Result<KidValue> {
    if dim == 0 || !fx.len().is_multiple_of(dim) || !fy.len().is_multiple_of(dim) {
        return Err(MetricsError::Mismatch(format!(
            "KID: {} and {} feature values are not multiples of the dimension {dim}",
            fx.len(),
            fy.len()
        )));
    }
    let (n1, n2) = (fx.len() / dim, fy.len() / dim);
    let m = n1.min(n2).min(cfg.subset_size);
    if m < 2 || cfg.subsets == 0 {
        return Err(MetricsError::Invalid(format!(
            "KID needs at least 2 images per set and 1 subset (got {n1} and {n2} images, \
             {} subsets)",
            cfg.subsets
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let vals: Vec<f64> = (0..cfg.subsets)
        .map(|_| {
            let mut rx = rand::seq::index::sample(&mut rng, n1, m).into_vec();
            let mut ry = rand::seq::index::sample(&mut rng, n2, m).into_vec();
            // The estimator is order-invariant; sorting keeps memory access regular.
            rx.sort_unstable();
            ry.sort_unstable();
            mmd2_unbiased(fx, fy, dim, &rx, &ry)
        })
        .collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / vals.len() as f64;
    Ok(KidValue {
        mean,
        std: var.sqrt(),
        subset_size: m,
        subsets: cfg.subsets,
    })
}
