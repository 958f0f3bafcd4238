//! Input validation shared by every loss and metric: NCHW shapes, equal pair shapes, value
//! ranges checked with a tolerance ([`RANGE_TOL`]), non-finite values.

use candle_core::{DType, Tensor};

use crate::error::{LossError, Result};

/// Slack allowed beyond a required range such as [-1, 1]: images converted from `u8` are exactly
/// in range, but resampling or JPEG decoding elsewhere may overshoot by rounding.
pub const RANGE_TOL: f64 = 1e-3;

/// `x` must be `[B, channels, H, W]` with `B >= 1` and `H, W >= min_hw`.
pub fn check_nchw(what: &str, x: &Tensor, channels: usize, min_hw: usize) -> Result<()> {
    let d = x.dims();
    if d.len() == 4 && d[0] >= 1 && d[1] == channels && d[2] >= min_hw && d[3] >= min_hw {
        return Ok(());
    }
    Err(LossError::Shape {
        what: what.to_string(),
        expected: format!("[B, {channels}, H, W] with B >= 1 and H, W >= {min_hw}"),
        got: d.to_vec(),
    })
}

/// Both images of a pair must be `[B, channels, H, W]` (H, W >= `min_hw`) with equal shapes.
pub fn check_pair(
    what: &str,
    a: &Tensor,
    b: &Tensor,
    channels: usize,
    min_hw: usize,
) -> Result<()> {
    check_nchw(&format!("{what} (first image)"), a, channels, min_hw)?;
    check_nchw(&format!("{what} (second image)"), b, channels, min_hw)?;
    if a.dims() != b.dims() {
        return Err(LossError::Shape {
            what: format!("{what}: the two images of a pair differ in shape"),
            expected: format!("the first image's shape {:?}", a.dims()),
            got: b.dims().to_vec(),
        });
    }
    Ok(())
}

/// Every value of `x` must be finite and in `[lo - tol, hi + tol]`.
pub fn check_range(what: &str, x: &Tensor, lo: f64, hi: f64, tol: f64) -> Result<()> {
    let flat = x.flatten_all()?.to_dtype(DType::F64)?;
    let min = flat.min(0)?.to_scalar::<f64>()?;
    let max = flat.max(0)?.to_scalar::<f64>()?;
    let sum = flat.sum_all()?.to_scalar::<f64>()?;
    let finite = min.is_finite() && max.is_finite() && sum.is_finite();
    if finite && min >= lo - tol && max <= hi + tol {
        return Ok(());
    }
    let hint = if !finite {
        " (the tensor holds NaN or infinite values)".to_string()
    } else if lo == -1.0 && min >= -tol && max > 1.0 + tol {
        " (looks like [0, 255] data: convert with s2m_core::imageio)".to_string()
    } else if lo == 0.0 && min < -tol {
        " (looks like [-1, 1] data: map it with (x + 1) / 2)".to_string()
    } else {
        String::new()
    };
    Err(LossError::Range {
        what: what.to_string(),
        lo,
        hi,
        tol,
        min,
        max,
        hint,
    })
}
