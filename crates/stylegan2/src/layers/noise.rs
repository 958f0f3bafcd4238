//! rosinality `NoiseInjection`: `out = image + weight · noise`, parameter `weight` `[1]`
//! (zero-initialised); `noise` is `[B or 1, 1, H, W]`, broadcast over channels.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::{Result, check_shape};

/// Learned per-layer noise strength.
#[derive(Debug, Clone)]
pub struct NoiseInjection {
    weight: Tensor,
}

impl NoiseInjection {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(1, "weight", Init::Const(0.0))?,
        })
    }

    /// The scalar weight `[1]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Adds `weight · noise`; `None` adds nothing (noise disabled).
    pub fn forward(&self, image: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
        let Some(noise) = noise else {
            return Ok(image.clone());
        };
        let (_, _, h, w) = image.dims4()?;
        check_shape(noise, "noise input", &[None, Some(1), Some(h), Some(w)])?;
        // weight [1] -> [1,1,1,1] so it broadcasts like a scalar.
        let scaled = noise.broadcast_mul(&self.weight.reshape((1, 1, 1, 1))?)?;
        Ok(image.broadcast_add(&scaled)?)
    }
}
