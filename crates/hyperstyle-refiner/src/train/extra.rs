//! The hook for extra loss terms (training aids that are not HyperStyle).

use candle_core::Tensor;
use e4e_encoder::data::Pairs;

use crate::error::Result;
#[cfg(doc)]
use crate::{RefinerMeta, RefinerStepStats, RefinerTrainer};

/// An extra loss term added to L_sim at every refinement iteration (NOTE: not in HyperStyle or
/// the paper; the `refiner-aids` crate holds the terms Sketch2MedI uses). Prepared once per
/// batch ([`ExtraLoss::for_batch`]), then evaluated on ŷ_t at each iteration t:
/// `L_t = L_sim(ŷ_t, y) + Σ_k weight_k · term_k(ŷ_t)`, the terms added in their order.
pub trait ExtraLoss {
    /// Short name: the term's log column is `{name}_last` and [`RefinerStepStats::extra`]
    /// finds its value under this name.
    fn name(&self) -> &str;
    /// The term's weight in the objective.
    fn weight(&self) -> f64;
    /// The term for one batch (its sketches, target images and label maps in `batch`; the
    /// generator's images are `image_size` px): whatever depends only on the batch (masks,
    /// targets' features) is computed here, once.
    fn for_batch<'a>(
        &'a self,
        batch: &'a Pairs,
        image_size: usize,
    ) -> Result<Box<dyn BatchLoss + 'a>>;
}

/// An [`ExtraLoss`] prepared for one batch.
pub trait BatchLoss {
    /// The unweighted term for the refined images ŷ_t `[B, 3, H, W]` of one iteration, with
    /// its autograd graph (its gradient reaches H through ŷ_t).
    fn loss(&self, image: &Tensor) -> Result<Tensor>;
}

/// The extra terms of a run and what the export records about them.
#[derive(Default)]
pub struct ExtraTerms {
    /// The terms, in the order they are added to the objective and logged.
    pub terms: Vec<Box<dyn ExtraLoss>>,
    /// Top-level fields of the export's `refiner.json` describing the terms (weights, frozen
    /// networks and their hashes), [`RefinerMeta::extra_terms`].
    pub record: serde_json::Map<String, serde_json::Value>,
    /// Recorded as `losses.adv` in `refiner.json`: the weight of an adversarial (realism)
    /// term, 0 without one.
    pub adv_lambda: f64,
}
