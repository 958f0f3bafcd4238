//! Gaussian feature statistics and the Frechet distance between them, in f64.
//!
//! Mirrors pytorch-fid's `calculate_frechet_distance` (also clean-fid's and pyiqa's):
//!
//! ```text
//! FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})
//! ```
//!
//! with `mu` the feature mean and `S` the **unbiased** covariance (`np.cov(rowvar=False)`,
//! divisor N - 1). The reference computes `tr((S1 S2)^{1/2})` with `scipy.linalg.sqrtm` (Schur),
//! retrying with `S + 1e-6 I` when the result is not finite and dropping an imaginary part.
//!
//! NOTE: we compute the same trace without a non-symmetric square root: with the symmetric
//! eigendecomposition `S1 = Q L Q^T`, `A = Q L^{1/2} Q^T` (eigenvalues clamped at 0), the
//! symmetric PSD matrix `M = A S2 A` is similar to `S1 S2`, so
//! `tr((S1 S2)^{1/2}) = sum_i sqrt(max(lambda_i(M), 0))`. Two symmetric eigensolves (faer,
//! f64) are stable also for the rank-deficient covariances of small sample sets, where `sqrtm`
//! returns complex noise. On full-rank statistics it equals scipy's value to ~1e-12 relative
//! (`tests/fid.rs`, fixture from `tools/metrics_fid_fixture.py`).

use std::collections::HashMap;
use std::path::Path;

use faer::{Mat, Side};
use serde::{Deserialize, Serialize};

use crate::features::error::{MetricsError, Result};

/// Mean and unbiased covariance of a set of feature vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianStats {
    /// Feature extractor that produced the features (e.g. `inception-v3-fid`).
    pub extractor: String,
    /// Number of feature vectors.
    pub n: usize,
    /// Mean, length `dim`.
    pub mu: Vec<f64>,
    /// Covariance, `dim x dim` row-major (divisor `n - 1`).
    pub sigma: Vec<f64>,
}

impl GaussianStats {
    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.mu.len()
    }

    /// Statistics of `n` row vectors stored row-major in `features` (`n * dim` values).
    /// Accumulates in f64. Needs `n >= 2`.
    pub fn from_features(extractor: &str, features: &[f32], dim: usize) -> Result<Self> {
        if dim == 0 || !features.len().is_multiple_of(dim) {
            return Err(MetricsError::Invalid(format!(
                "{} feature values are not a multiple of the dimension {dim}",
                features.len()
            )));
        }
        let n = features.len() / dim;
        if n < 2 {
            return Err(MetricsError::Invalid(format!(
                "a covariance needs at least 2 feature vectors, got {n}"
            )));
        }
        let x = Mat::<f64>::from_fn(n, dim, |i, j| features[i * dim + j] as f64);
        let mu: Vec<f64> = (0..dim)
            .map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64)
            .collect();
        let xc = Mat::<f64>::from_fn(n, dim, |i, j| x[(i, j)] - mu[j]);
        let cov = xc.transpose() * &xc;
        let denom = (n - 1) as f64;
        let mut sigma = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..dim {
                // Symmetrise exactly (the product is symmetric up to rounding).
                sigma[i * dim + j] = 0.5 * (cov[(i, j)] + cov[(j, i)]) / denom;
            }
        }
        Ok(Self {
            extractor: extractor.to_string(),
            n,
            mu,
            sigma,
        })
    }

    /// Number of images needed for a full-rank covariance (`dim + 1`).
    pub fn images_needed(&self) -> usize {
        self.dim() + 1
    }

    /// A warning when the covariance is necessarily singular (`n <= dim`), else `None`.
    pub fn singular_warning(&self) -> Option<String> {
        (self.n <= self.dim()).then(|| {
            format!(
                "only {} images for {}-d {} features: the covariance is singular and the Frechet \
                 distance is biased upwards; at least {} images are needed (the paper-scale \
                 protocol uses thousands)",
                self.n,
                self.dim(),
                self.extractor,
                self.images_needed()
            )
        })
    }

    /// Writes the statistics to a safetensors file: `mu` `[dim]` and `sigma` `[dim, dim]` as
    /// F64, with `extractor` and `n` in the metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let d = self.dim();
        let mu_bytes: Vec<u8> = self.mu.iter().flat_map(|v| v.to_le_bytes()).collect();
        let sigma_bytes: Vec<u8> = self.sigma.iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = [
            (
                "mu",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![d], &mu_bytes)
                    .map_err(|e| MetricsError::io(path, e))?,
            ),
            (
                "sigma",
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F64,
                    vec![d, d],
                    &sigma_bytes,
                )
                .map_err(|e| MetricsError::io(path, e))?,
            ),
        ];
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "sketch2medi-feature-stats/1".into());
        meta.insert("extractor".to_string(), self.extractor.clone());
        meta.insert("n".to_string(), self.n.to_string());
        let bytes = safetensors::tensor::serialize(views, Some(meta))
            .map_err(|e| MetricsError::io(path, e))?;
        s2m_core::fsio::atomic_write(path, &bytes)?;
        Ok(())
    }

    /// Reads statistics written by [`GaussianStats::save`] (or any safetensors file with F64
    /// `mu` and `sigma`; `n` and `extractor` default to 0 and "unknown" when absent).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| MetricsError::io(path, e))?;
        let st =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| MetricsError::io(path, e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| MetricsError::io(path, e))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let read = |name: &str| -> Result<(Vec<usize>, Vec<f64>)> {
            let t = st.tensor(name).map_err(|e| MetricsError::io(path, e))?;
            if t.dtype() != safetensors::Dtype::F64 {
                return Err(MetricsError::io(
                    path,
                    format!("{name} must be F64, found {:?}", t.dtype()),
                ));
            }
            let v = t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            Ok((t.shape().to_vec(), v))
        };
        let (ms, mu) = read("mu")?;
        let (ss, sigma) = read("sigma")?;
        let d = mu.len();
        if ms.len() != 1 || ss != [d, d] {
            return Err(MetricsError::io(
                path,
                format!("mu {ms:?} and sigma {ss:?} do not form [d] and [d, d]"),
            ));
        }
        Ok(Self {
            extractor: meta
                .get("extractor")
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            n: meta.get("n").and_then(|s| s.parse().ok()).unwrap_or(0),
            mu,
            sigma,
        })
    }
}

fn sym_mat(v: &[f64], d: usize) -> Mat<f64> {
    Mat::<f64>::from_fn(d, d, |i, j| 0.5 * (v[i * d + j] + v[j * d + i]))
}

/// `tr((S1 S2)^{1/2})` for symmetric PSD `S1`, `S2` (`d x d` row-major), via two symmetric
/// eigendecompositions (see the module docs).
pub fn trace_sqrt_product(s1: &[f64], s2: &[f64], d: usize) -> Result<f64> {
    if s1.len() != d * d || s2.len() != d * d {
        return Err(MetricsError::Mismatch(format!(
            "covariances of {} and {} values for dimension {d}",
            s1.len(),
            s2.len()
        )));
    }
    let a = sym_mat(s1, d);
    let b = sym_mat(s2, d);
    let evd = a
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| MetricsError::LinAlg(format!("eigendecomposition of S1: {e:?}")))?;
    let q = evd.U();
    let l = evd.S().column_vector();
    // A = Q diag(sqrt(max(l, 0))) Q^T.
    let qs = Mat::<f64>::from_fn(d, d, |i, j| q[(i, j)] * l[j].max(0.0).sqrt());
    let sqrt_a = &qs * q.transpose();
    let m = &sqrt_a * &b * &sqrt_a;
    let m = Mat::<f64>::from_fn(d, d, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let ev = m
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| MetricsError::LinAlg(format!("eigenvalues of S1^1/2 S2 S1^1/2: {e:?}")))?;
    Ok(ev.iter().map(|v| v.max(0.0).sqrt()).sum())
}

/// The Frechet distance between two Gaussians (see the module docs). Errors when the
/// dimensions differ or a statistic is not finite.
pub fn frechet_distance(a: &GaussianStats, b: &GaussianStats) -> Result<f64> {
    let d = a.dim();
    if b.dim() != d {
        return Err(MetricsError::Mismatch(format!(
            "feature statistics of different dimensions: {d} ({}) vs {} ({})",
            a.extractor,
            b.dim(),
            b.extractor
        )));
    }
    for (s, name) in [(a, "first"), (b, "second")] {
        if s.mu.iter().chain(&s.sigma).any(|v| !v.is_finite()) {
            return Err(MetricsError::Invalid(format!(
                "the {name} statistics ({}) hold non-finite values",
                s.extractor
            )));
        }
    }
    let diff: f64 = a.mu.iter().zip(&b.mu).map(|(x, y)| (x - y) * (x - y)).sum();
    let tr1: f64 = (0..d).map(|i| a.sigma[i * d + i]).sum();
    let tr2: f64 = (0..d).map(|i| b.sigma[i * d + i]).sum();
    let tr_sqrt = trace_sqrt_product(&a.sigma, &b.sigma, d)?;
    // The distance is >= 0; identical statistics can round to about -1e-8.
    Ok((diff + tr1 + tr2 - 2.0 * tr_sqrt).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_stats_have_zero_distance_and_shift_adds_mean_term() {
        let feats: Vec<f32> = (0..40).map(|i| ((i * 7919) % 23) as f32 / 7.0).collect();
        let s = GaussianStats::from_features("t", &feats, 4).unwrap();
        let d0 = frechet_distance(&s, &s).unwrap();
        assert!(d0.abs() < 1e-9, "{d0}");
        let mut t = s.clone();
        t.mu.iter_mut().for_each(|m| *m += 0.5);
        let d1 = frechet_distance(&s, &t).unwrap();
        assert!((d1 - 4.0 * 0.25).abs() < 1e-9, "{d1}");
    }

    #[test]
    fn diagonal_case_matches_closed_form() {
        // S1 = diag(a), S2 = diag(b): tr sqrt = sum sqrt(a b).
        let d = 3;
        let a = [1.0, 4.0, 9.0];
        let b = [4.0, 1.0, 0.25];
        let mut s1 = vec![0.0; 9];
        let mut s2 = vec![0.0; 9];
        for i in 0..d {
            s1[i * d + i] = a[i];
            s2[i * d + i] = b[i];
        }
        let t = trace_sqrt_product(&s1, &s2, d).unwrap();
        assert!((t - (2.0 + 2.0 + 1.5)).abs() < 1e-12, "{t}");
    }
}
