//! Training harness of the sketch2medi workspace: everything a training loop needs that belongs
//! to no model. The StyleGAN2, SOLOv2, encoder (E) and refiner (H) trainers all build on it.
//!
//! - [`optim`]: Adam/AdamW (PyTorch semantics) with checkpointable state, grad-norm clipping;
//! - [`checkpoint`]: one-file safetensors checkpoints (models, optimisers, JSON header with step,
//!   seed, config and RNG positions), latest-checkpoint lookup and keep-last-N rotation, so a
//!   resumed run continues exactly;
//! - [`logcsv`]: append-only CSV logs of training scalars, truncated on resume;
//! - `plot` (feature `plot`): loss curves to PNG (bundled DejaVu Sans font, no system
//!   dependencies); crates that only need the GAN losses or the optimiser do not compile it;
//! - [`gan`]: the stable softplus, the non-saturating logistic D/G losses and the R1 penalty,
//!   generic over the discriminator;
//! - [`autograd`]: the check that second-order gradients work in this process
//!   (`CANDLE_GRAD_DO_NOT_DETACH=1`);
//! - [`gradcheck`]: finite-difference checks of first- and second-order gradients for tests;
//! - [`run`]: the loop ([`run::TrainLoop`], [`run::run_training`]) with exact resume
//!   ([`run::EpochOrder`]), a wall-clock budget and the run-folder helpers;
//! - [`schedule`]: the [`Schedule`] (seed and cadences) every trainer's config embeds;
//! - [`bundle`]: exported bundle folders (staged, renamed into place) and sha256 of weights;
//! - [`TrainError`]: the one error type of every trainer.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{Init, VarMap};
//! use s2m_train::optim::{Adam, AdamConfig, varmap_named_vars};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let vars = VarMap::new();
//! let w = vars.get(3, "w", Init::Const(1.0), DType::F32, &Device::Cpu)?;
//! let mut adam = Adam::new(varmap_named_vars(&vars), AdamConfig::default())?;
//! let loss = w.sqr()?.sum_all()?;
//! adam.step(&loss.backward()?)?;
//! # Ok(()) }
//! ```

pub mod autograd;
pub mod bundle;
pub mod checkpoint;
pub mod error;
pub mod gan;
pub mod gradcheck;
pub mod logcsv;
pub mod optim;
#[cfg(feature = "plot")]
pub mod plot;
pub mod resume;
pub mod run;
pub mod schedule;

pub use error::{TrainError, TrainResult};
pub use schedule::Schedule;
