//! The HyperStyle refiner H of Sketch2MedI: a hypernetwork on `[current image, sketch]`
//! predicting per-sample weight offsets for the generator's modulated convs, applied
//! iteratively: theta_t = theta * (1 + sum_{i<=t} Delta_i) (T = 3 by default).
//!
//! - [`HyperConfig`] (serde; presets [`HyperConfig::hyperstyle`], [`HyperConfig::narrow_cpu`];
//!   [`LayersToTune`], [`SharedLayers`], [`OwnBlock`] for HyperStyle's separable variant) and [`output_table`]: the tuned slots and their shapes,
//!   derived from the generator config with `stylegan2::modulated_layer_shapes`.
//! - [`HyperNetwork`]: HyperStyle's `SharedWeightsHyperNetResNet` (ResNet-34 body with a
//!   4-channel stem, `RefinementBlock`s, `HyperRefinementBlock`s + one
//!   `SharedWeightsHypernet`); output a `stylegan2::WeightOffsets`.
//! - [`Refinement`] (the running sum of Δ) and [`refine`] (the T-step loop).
//! - [`bundle`]: the export format of H and [`RefinerBundle`] (load an export).
//! - [`train`]: phase 2 of the training (H with E and G frozen, L_sim at every iteration), with
//!   the [`ExtraLoss`] hook for extra terms (the `refiner-aids` crate holds Sketch2MedI's).
//!
//! See `docs/ENCODER_REFINER.md` for names, presets and tests.

pub mod blocks;
pub mod bundle;
pub mod config;
pub mod error;
pub mod hypernet;
pub mod refinement;
#[doc(hidden)]
pub mod testing;
pub mod train;

pub use blocks::{
    HyperRefinementBlock, RefinementBlock, RefinementBlockSeparable, SeparableBlock,
    SharedWeightsHypernet,
};
pub use bundle::{
    EncoderRef, InitRef, REFINER_FORMAT, REFINER_JSON, REFINER_WEIGHTS, RefinerBundle, RefinerMeta,
};
pub use config::{
    BlockKind, HyperConfig, LayersToTune, OutputSlot, OwnBlock, SharedLayers, output_table,
};
pub use error::{RefinerError, Result};
pub use hypernet::{DEFAULT_SKETCH_CHANNEL_INIT, HyperNetwork};
pub use refinement::{DEFAULT_STEPS, RefineOutput, Refinement, refine};
pub use train::{
    BatchLoss, ExtraLoss, ExtraTerms, RefinerStepStats, RefinerTrainConfig, RefinerTrainer,
};
