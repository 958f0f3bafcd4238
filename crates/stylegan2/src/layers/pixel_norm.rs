//! rosinality `PixelNorm`: `x · rsqrt(mean_features(x²) + 1e-8)`, the first element of the
//! mapping network (`style.0`, no parameters).

use candle_core::{D, Tensor};

use crate::error::Result;

/// Normalises each latent to unit root-mean-square over its features.
#[derive(Debug, Clone, Copy, Default)]
pub struct PixelNorm;

impl PixelNorm {
    /// `x` `[B, S]` (or any rank; the last dim is the feature dim).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        Ok(x.broadcast_div(&(ms + 1e-8)?.sqrt()?)?)
    }
}
