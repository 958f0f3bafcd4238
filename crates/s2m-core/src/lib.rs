//! Shared ground of the sketch2medi workspace.
//!
//! Everything here is needed by more than one crate and belongs to no model:
//! - [`anatomy`]: the four anatomical classes of the paper (uvula, pharyngeal wall, tonsil,
//!   tongue), the instance label-map encoding used in dataset folders, and instance masks with
//!   scores (what SOLOv2 predicts and what sketches are drawn from);
//! - [`rng`]: seeded, platform-stable random streams (candle's CPU RNG cannot be seeded);
//! - [`imageio`]: image <-> candle tensor conversion in the model range [-1, 1];
//! - [`fsio`]: atomic file writes (temp file + rename) so nothing is left half-written;
//! - [`init`]: seeded initial values for any model built through a `VarBuilder`.
//!
//! Training infrastructure shared by every training loop:
//! - [`optim`]: Adam/AdamW (PyTorch semantics) with checkpointable state, grad-norm clipping;
//! - [`checkpoint`]: one-file safetensors checkpoints (models, optimisers, JSON header with step,
//!   seed, config and RNG positions), latest-checkpoint lookup and keep-last-N rotation;
//! - [`logcsv`]: append-only CSV logs of training scalars, truncated on resume;
//! - [`plot`]: loss curves to PNG (bundled font, no system dependencies);
//! - [`gradcheck`]: finite-difference checks of first- and second-order gradients for tests.

pub mod anatomy;
pub mod autograd;
pub mod error;
pub mod fsio;
pub mod gan;
pub mod imageio;
pub mod init;
pub mod progress;
pub mod rng;
pub mod testing;

// Training infrastructure.
pub mod checkpoint;
pub mod conv;
pub mod gradcheck;
pub mod logcsv;
pub mod optim;
pub mod plot;

pub use anatomy::{Class, InstanceMask, LabelMap};
pub use error::CoreError;
