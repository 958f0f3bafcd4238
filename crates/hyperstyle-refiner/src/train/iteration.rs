//! The gradient of one batch: T refinement iterations, each with its own loss (HyperStyle's
//! training iteration).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use e4e_encoder::data::{Pairs, check_pairs};
use s2m_train::TrainError;
use s2m_train::run::{check_finite, scalar, trainable_vars};

use super::extra::BatchLoss;
use super::trainer::RefinerTrainer;
use crate::error::Result;
use crate::refinement::Refinement;

/// The losses of [`RefinerTrainer::accumulated_gradients`].
#[derive(Debug, Clone, PartialEq)]
pub struct IterationLosses {
    /// L_sim(ŷ_0, y): E alone.
    pub sim_e: f64,
    /// L_sim(ŷ_t, y), t = 1..T.
    pub sim_t: Vec<f64>,
    pub l2_last: f64,
    pub perceptual_last: f64,
    /// The unweighted extra terms of the last iteration, by name, in the order of the terms.
    pub extras: Vec<(String, f64)>,
}

/// H's gradients summed over the iterations (each iteration's detached).
#[derive(Default)]
struct GradientSum(HashMap<String, Tensor>);

impl GradientSum {
    /// Adds the gradients `grads` holds for `params`.
    fn add(&mut self, grads: &GradStore, params: &[(String, Var)]) -> Result<()> {
        for (name, var) in params {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = g.detach();
                let next = match self.0.remove(name) {
                    Some(acc) => (acc + g)?,
                    None => g,
                };
                self.0.insert(name.clone(), next);
            }
        }
        Ok(())
    }

    /// `last` with the summed gradients of `params` in place of its own.
    fn into_store(mut self, mut last: GradStore, params: &[(String, Var)]) -> GradStore {
        for (name, var) in params {
            if let Some(g) = self.0.remove(name) {
                last.insert(var.as_tensor(), g);
            }
        }
        last
    }
}

impl RefinerTrainer {
    /// The gradient of one batch: T refinement iterations, each back-propagating its own
    /// L_sim (previous image and offset sum detached), H's gradients summed over t. The
    /// returned store is the last iteration's with H's summed gradients in place of its own
    /// (so it holds the gradient of every `Var` the graph reached; G's and E's weights are
    /// not `Var`s). H's BatchNorm statistics are updated T times (train mode).
    pub fn accumulated_gradients(&self, pairs: &Pairs) -> Result<(GradStore, IterationLosses)> {
        let image_size = self.g.config().size as usize;
        check_pairs(pairs, image_size, self.cfg.hyper.input_size)?;
        let w_plus = self.codes(&pairs.sketches)?;
        let y0 = self.g.image(&w_plus)?.detach();
        let sim_e = scalar(&self.loss.forward(&y0, &pairs.images)?.total)?;

        let params = trainable_vars(&self.h_vars);
        let mut summed = GradientSum::default();
        let mut sum = Refinement::new();
        let mut previous = y0;
        let mut losses = IterationLosses {
            sim_e,
            sim_t: Vec::with_capacity(self.cfg.iterations),
            l2_last: f64::NAN,
            perceptual_last: f64::NAN,
            extras: Vec::with_capacity(self.extras.terms.len()),
        };
        // The extra terms' per-batch state (targets computed once per batch).
        let extras = self
            .extras
            .terms
            .iter()
            .map(|e| e.for_batch(pairs, image_size))
            .collect::<Result<Vec<_>>>()?;
        let mut last = None;
        for t in 1..=self.cfg.iterations {
            // Free the previous iteration's graph before building this one.
            drop(last.take());
            let x = self.h.input(&pairs.sketches, &previous)?;
            let delta = self.h.forward_t(&x, true)?;
            let mut current = sum.detached();
            current.accumulate(&delta)?;
            let image = self.g.image_with_offsets(&w_plus, &current.offsets())?;
            let objective = self.objective(t, &image, &pairs.images, &extras, &mut losses)?;
            let grads = objective.backward()?;
            summed.add(&grads, &params)?;
            // Cut everything the next iteration reads from this one's graph.
            previous = image.detach();
            sum = current.detached();
            last = Some(grads);
        }
        let last = last.ok_or_else(|| TrainError::Config("iterations must be >= 1".into()))?;
        Ok((summed.into_store(last, &params), losses))
    }

    /// L_t = L_sim(ŷ_t, y) + Σ_k weight_k · extra_k(ŷ_t) of iteration `t` for the refined
    /// images `image` and the targets `target`, recording the values in `losses`.
    fn objective(
        &self,
        t: usize,
        image: &Tensor,
        target: &Tensor,
        extras: &[Box<dyn BatchLoss + '_>],
        losses: &mut IterationLosses,
    ) -> Result<Tensor> {
        let terms = self.loss.forward(image, target)?;
        let v = scalar(&terms.total)?;
        check_finite(self.step, &format!("L_sim at iteration {t}"), v, &self.out)?;
        (_, losses.l2_last, losses.perceptual_last, _) = terms.values()?;
        losses.sim_t.push(v);
        let mut objective = terms.total.clone();
        losses.extras.clear();
        for (term, batch_term) in self.extras.terms.iter().zip(extras) {
            let extra = batch_term.loss(image)?;
            losses
                .extras
                .push((term.name().to_string(), scalar(&extra)?));
            objective = (objective + (extra * term.weight())?)?;
        }
        Ok(objective)
    }
}
