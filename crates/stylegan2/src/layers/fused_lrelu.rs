//! rosinality `FusedLeakyReLU(channel)`: `leaky_relu(x + bias, 0.2) · √2`, parameter `bias`
//! `[C]` (zero-initialised).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::Result;
use crate::ops::fused_leaky_relu;

/// Bias + leaky ReLU + gain, with the bias as its own parameter (`<module>.bias`).
#[derive(Debug, Clone)]
pub struct FusedLeakyReLU {
    bias: Tensor,
}

impl FusedLeakyReLU {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
        })
    }

    /// The bias `[C]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// `x` `[B, C, ...]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        fused_leaky_relu(x, Some(&self.bias))
    }
}
