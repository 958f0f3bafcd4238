//! Shared ground of the sketch2medi workspace.
//!
//! Everything here is needed by more than one crate and belongs to no model:
//! - [`anatomy`]: the four anatomical classes of the paper (uvula, pharyngeal wall, tonsil,
//!   tongue), the instance label-map encoding used in dataset folders, and instance masks with
//!   scores (what SOLOv2 predicts and what sketches are drawn from);
//! - [`rng`]: seeded, platform-stable random streams (candle's CPU RNG cannot be seeded);
//! - [`imageio`]: image <-> candle tensor conversion in the model range [-1, 1];
//! - [`fsio`]: atomic file writes (temp file + rename) so nothing is left half-written;
//! - [`init`]: seeded initial values for any model built through a `VarBuilder`;
//! - [`error`]: [`CoreError`], the error of everything above;
//! - [`testing`]: helpers for parity tests against committed PyTorch fixtures, and crafted
//!   image files for the decode-limit tests.
//!
//! Training (optimisers, checkpoints, logs, plots) lives in `s2m-train`, the convolution kernels
//! in `s2m-kernels`.

pub mod anatomy;
pub mod error;
pub mod fsio;
pub mod imageio;
pub mod init;
pub mod progress;
pub mod rng;
pub mod testing;

pub use anatomy::{Class, InstanceMask, LabelMap};
pub use error::CoreError;
