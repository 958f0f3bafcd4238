//! Phase 2 of Sketch2MedI's training: the hypernetwork H, with the encoder E and the generator
//! G frozen (HyperStyle `training/coach_hyperstyle.py`, `models/hyperstyle.py`).
//!
//! Per step, on a batch of (sketch x, image y) pairs:
//!
//! ```text
//! w    = E(x) + w_avg                     (E in eval mode, no graph; HyperStyle's W-encoder)
//! ŷ_0  = G(w)                             (constant noise, no offsets)
//! for t = 1..T (T = 3):
//!     Δ_t  = H([ŷ_{t-1}.detach(), x])     (BatchNorm in train mode)
//!     S_t  = S_{t-1}.detach() + Δ_t
//!     ŷ_t  = G(w; θ ⊙ (1 + S_t))
//!     L_t  = L_sim(ŷ_t, y) [+ Σ_k λ_k extra_k(ŷ_t)],  backward(L_t)
//!                                         (gradients accumulate over t)
//! one Adam step on H's parameters
//! ```
//!
//! As in HyperStyle, the previous image and the previous offset sum are detached at every
//! iteration (no gradient flows across iterations) and the loss of every iteration is
//! back-propagated; the gradients of the T losses are summed (computed one iteration at a time,
//! so only one iteration's graph is alive) and H takes one optimiser step. L_sim = 1.0 · MSE +
//! 0.8 · perceptual (+ 0.5 · MoCo when its weights exist); HyperStyle's non-face defaults.
//!
//! Extra loss terms (NOTE: not in HyperStyle or the paper; none by default) plug in through
//! [`ExtraLoss`] and [`RefinerTrainer::open_with_extras`]: each is prepared once per batch,
//! weighted, added to L_sim at every iteration and logged as `{name}_last`. The training aids
//! of the `refiner-aids` crate (the structure feature distance the shipped H was fine-tuned
//! with, the structure, region, sketch-weighted-MSE and realism terms) are such terms.
//!
//! NOTE (deviations from HyperStyle): Adam(lr 1e-4, betas 0.9/0.999) instead of Ranger(1e-4);
//! H's input is `[ŷ, sketch]` (4 channels) instead of `[x, ŷ]` (6); sketches in [-1, 1].
//! Phase 2 draws no random numbers after initialisation (the data order is a function of
//! `(seed, epoch)`), so its checkpoints hold H, Adam's state and the step but no RNG.
//!
//! Exports ([`RefinerTrainer::export`]) go to `<out>/export` in the format of
//! [`crate::bundle`], loaded by [`RefinerBundle::load`](crate::bundle::RefinerBundle::load).
//!
//! ```text
//! sketch2medi refiner train --data data/phantom64 --generator weights/stylegan2_phantom64 \
//!     --encoder runs/enc/export --out runs/ref
//! ```

mod config;
mod export;
mod extra;
mod iteration;
mod resume;
mod trainer;

pub use config::RefinerTrainConfig;
pub use extra::{BatchLoss, ExtraLoss, ExtraTerms};
pub use iteration::IterationLosses;
pub use s2m_train::run::{StopReason, run_training};
pub use trainer::{RefinerStepStats, RefinerTrainer};
