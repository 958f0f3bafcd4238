//! The iterative refinement theta_t = theta * (1 + sum_{i<=t} Delta_i) (HyperStyle
//! `models/hyperstyle.py` forward and `utils/inference_utils.py` `run_inversion`).
//!
//! [`Refinement`] accumulates H's outputs; its [`Refinement::offsets`] (= sum Delta) go to
//! `stylegan2::GeneratorInput::with_offsets`, whose modulated convs compute
//! `scale * W * (1 + offset) * style` — i.e. theta_t. [`refine`] runs the whole loop with E's
//! fixed codes.

use std::collections::BTreeMap;

use candle_core::Tensor;
use stylegan2::{Generator, GeneratorInput, NoiseMode, WeightOffsets};

use crate::error::Result;
use crate::hypernet::HyperNetwork;

/// HyperStyle's number of refinement steps used by Sketch2MedI (T = 3).
pub const DEFAULT_STEPS: usize = 3;

/// The running sum of weight offsets.
#[derive(Debug, Clone, Default)]
pub struct Refinement {
    sum: BTreeMap<usize, Tensor>,
    steps: usize,
}

impl Refinement {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one step's Δ (slots absent from `delta` keep their sum; new slots start at Δ).
    pub fn accumulate(&mut self, delta: &WeightOffsets) -> Result<()> {
        for (slot, d) in delta.slots() {
            let next = match self.sum.get(&slot) {
                Some(s) => s.broadcast_add(d)?,
                None => d.clone(),
            };
            self.sum.insert(slot, next);
        }
        self.steps += 1;
        Ok(())
    }

    /// sum Δ per slot, the offsets to hand to the generator (the weight used is
    /// `W * (1 + offset)`).
    pub fn offsets(&self) -> WeightOffsets {
        self.sum.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// `1 + sum Δ` of `slot` (the multiplier of theta), if the slot is refined.
    pub fn multiplier(&self, slot: usize) -> Result<Option<Tensor>> {
        match self.sum.get(&slot) {
            Some(s) => Ok(Some((s + 1.0)?)),
            None => Ok(None),
        }
    }

    /// Number of accumulated steps t.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// A copy whose tensors are detached (HyperStyle training cuts the graph between
    /// iterations and back-propagates every iteration's loss separately).
    pub fn detached(&self) -> Self {
        Self {
            sum: self.sum.iter().map(|(k, v)| (*k, v.detach())).collect(),
            steps: self.steps,
        }
    }
}

/// Result of [`refine`].
#[derive(Debug, Clone)]
pub struct RefineOutput {
    /// ŷ_0 (no offsets) then ŷ_1..ŷ_T.
    pub images: Vec<Tensor>,
    /// The accumulated offsets after T steps.
    pub refinement: Refinement,
    /// The accumulated offsets after each step t = 1..T (`step_offsets[t - 1]` made ŷ_t).
    pub step_offsets: Vec<WeightOffsets>,
}

/// The inference loop: ŷ_0 = G(w_plus); for t = 1..=steps: Δ_t = H([ŷ_{t-1}, sketch]),
/// sum += Δ_t, ŷ_t = G(w_plus; W * (1 + sum)). `noise` should be fixed (HyperStyle:
/// `randomize_noise=False`, i.e. [`NoiseMode::Const`]). Builds an autograd graph only if the
/// inputs or parameters are `Var`s.
pub fn refine(
    h: &HyperNetwork,
    g: &Generator,
    sketch: &Tensor,
    w_plus: &Tensor,
    steps: usize,
    noise: NoiseMode,
) -> Result<RefineOutput> {
    let mut images = Vec::with_capacity(steps + 1);
    let y0 = g.forward(&GeneratorInput::w_plus(w_plus.clone()).with_noise(noise.clone()))?;
    images.push(y0.image);
    let mut refinement = Refinement::new();
    let mut step_offsets = Vec::with_capacity(steps);
    for t in 0..steps {
        let x = h.input(sketch, &images[t])?;
        let delta = h.forward(&x)?;
        refinement.accumulate(&delta)?;
        let offsets = refinement.offsets();
        let y = g.forward(
            &GeneratorInput::w_plus(w_plus.clone())
                .with_noise(noise.clone())
                .with_offsets(&offsets),
        )?;
        images.push(y.image);
        step_offsets.push(offsets);
    }
    Ok(RefineOutput {
        images,
        refinement,
        step_offsets,
    })
}
