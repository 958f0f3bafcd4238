//! rosinality `ConstantInput(channel, size=4)`: the learned `input` `[1, C, 4, 4]` (randn
//! init), repeated over the batch.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::Result;

/// The generator's learned 4×4 starting tensor (`input.input`).
#[derive(Debug, Clone)]
pub struct ConstantInput {
    input: Tensor,
}

impl ConstantInput {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            input: vb.get_with_hints(
                (1, channels, 4, 4),
                "input",
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )?,
        })
    }

    /// `[B, C, 4, 4]` (a broadcast: its backward sums over the batch).
    pub fn forward(&self, batch: usize) -> Result<Tensor> {
        let (_, c, h, w) = self.input.dims4()?;
        Ok(self.input.broadcast_as((batch, c, h, w))?)
    }
}
