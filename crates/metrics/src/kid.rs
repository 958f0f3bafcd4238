//! Kernel Inception Distance: the unbiased MMD^2 with the cubic polynomial kernel
//! `k(x, y) = (x.y / d + 1)^3`, averaged over random subsets.
//!
//! Mirrors torch-fidelity 0.4.0's `kid_features_to_metric` (`kid_subsets` = 100,
//! `kid_subset_size` = 1000, `rng_seed` = 2020, degree 3, gamma = 1/d, coef0 = 1,
//! `mmd_est="unbiased"`), whose estimator clean-fid's `kernel_distance` shares:
//!
//! ```text
//! m     = min(n1, n2, subset_size)
//! per subset (x, y drawn without replacement, m rows each):
//!   mmd2 = [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m (m-1)) - 2 mean_{i,j} k(x_i,y_j)
//! KID   = mean over subsets, reported with the (population) std over subsets as torch-fidelity.
//! ```
//!
//! Subsets ([`KidSampler`]): the default draws them exactly as torch-fidelity does
//! (`np.random.RandomState(seed)`, per subset `choice(n1, m, replace=False)` then
//! `choice(n2, m, replace=False)`, reproduced in [`crate::numpy_random`]), so
//! [`KidConfig::torch_fidelity`] gives torch-fidelity's KID for the same features (parity test
//! in `tests/fid.rs`, fixture from the package itself). [`KidSampler::ChaCha8`] keeps the
//! earlier seeded ChaCha8 stream (`rand::seq::index::sample`).
//!
//! NOTE: torch-fidelity refuses `subset_size` > n; here `m` is clamped to `min(n1, n2)`, which
//! equals torch-fidelity called with `kid_subset_size = m`. The kernels are computed in f64;
//! torch-fidelity computes them in the features' dtype (f32 from its extractors), which moves
//! KID by about 1e-6 relative.

use faer::Mat;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::features::error::{MetricsError, Result};
use crate::numpy_random::RandomState;

/// How the KID subsets are drawn from the seed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KidSampler {
    /// torch-fidelity's draw: numpy's legacy `RandomState(seed)` (seed < 2^32) and
    /// `choice(n, m, replace=False)`, first set then second set, per subset.
    #[default]
    NumpyRandomState,
    /// A seeded ChaCha8 stream (`rand::seq::index::sample`), independent of numpy.
    ChaCha8,
}

/// KID settings; the default is torch-fidelity's ([`KidConfig::torch_fidelity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KidConfig {
    /// Number of subsets (torch-fidelity `kid_subsets`).
    pub subsets: usize,
    /// Rows per subset, clamped to the smaller set (torch-fidelity `kid_subset_size`).
    pub subset_size: usize,
    /// Seed of the subset draw (torch-fidelity `rng_seed`).
    pub seed: u64,
    /// Generator of the subsets (older config files without it get torch-fidelity's).
    #[serde(default)]
    pub sampler: KidSampler,
}

impl KidConfig {
    /// torch-fidelity 0.4.0's defaults: 100 subsets of 1000, `rng_seed` 2020, its numpy draw.
    pub fn torch_fidelity() -> Self {
        Self {
            subsets: 100,
            subset_size: 1000,
            seed: 2020,
            sampler: KidSampler::NumpyRandomState,
        }
    }
}

impl Default for KidConfig {
    fn default() -> Self {
        Self::torch_fidelity()
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

/// The row indices of every subset (`m` rows of each set), as `cfg.sampler` draws them.
pub fn kid_subsets(
    n1: usize,
    n2: usize,
    m: usize,
    cfg: &KidConfig,
) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    if m > n1.min(n2) {
        return Err(MetricsError::Invalid(format!(
            "KID subsets of {m} rows from sets of {n1} and {n2} rows"
        )));
    }
    match cfg.sampler {
        KidSampler::NumpyRandomState => {
            let seed = u32::try_from(cfg.seed).map_err(|_| {
                MetricsError::Invalid(format!(
                    "KID seed {} out of numpy RandomState's range [0, 2^32)",
                    cfg.seed
                ))
            })?;
            let mut rng = RandomState::new(seed);
            Ok((0..cfg.subsets)
                .map(|_| {
                    let rx = rng.choice_without_replacement(n1, m);
                    (rx, rng.choice_without_replacement(n2, m))
                })
                .collect())
        }
        KidSampler::ChaCha8 => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
            Ok((0..cfg.subsets)
                .map(|_| {
                    let mut rx = rand::seq::index::sample(&mut rng, n1, m).into_vec();
                    let mut ry = rand::seq::index::sample(&mut rng, n2, m).into_vec();
                    // The estimator is order-invariant; sorting keeps memory access regular.
                    rx.sort_unstable();
                    ry.sort_unstable();
                    (rx, ry)
                })
                .collect())
        }
    }
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
    let vals: Vec<f64> = kid_subsets(n1, n2, m, cfg)?
        .iter()
        .map(|(rx, ry)| mmd2_unbiased(fx, fy, dim, rx, ry))
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
