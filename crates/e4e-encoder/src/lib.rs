//! The sketch encoder E (e4e / ReStyle / HyperStyle W-encoder) and the e4e latent
//! discriminator D_w of Sketch2MedI.
//!
//! - [`EncoderConfig`] (serde; presets [`EncoderConfig::ir_se50`], [`EncoderConfig::resnet34`],
//!   [`EncoderConfig::resnet50`], [`EncoderConfig::narrow_cpu`], `.with_w_plus(n)`) and
//!   [`Encoder`]: a 1-channel sketch -> one w `[B, S]` (or W+ `[B, n, S]` with e4e's
//!   progressive deltas); the caller adds the generator's average latent
//!   ([`Encoder::add_latent_avg`]).
//! - [`LatentDiscriminator`] (e4e `LatentCodesDiscriminator`) with [`d_loss`], [`g_adv_loss`]
//!   and the lazy [`r1_loss`].
//! - [`ResNetBody`]: ReStyle/HyperStyle's ResNet body (custom stem, `body.N`), shared with the
//!   HyperStyle refiner.
//! - [`init::seeded_var_map`]: seeded fresh parameters (candle's CPU RNG cannot be seeded).
//! - [`bundle`]: the export format of E and [`EncoderBundle`] (load an export, embed sketches).
//! - [`train`]: phase 1 of the training (E + D_w with G frozen, on the `s2m-train` loop);
//!   [`data`]: the (image, sketch) pairs both phases train on; [`generator`]: the frozen G they
//!   train through (shared with phase 2, `hyperstyle_refiner::train`).
//!
//! Parameter names are the PyTorch state-dict keys of the mirrored modules (see
//! [`encoder`] and [`discriminator`]); `docs/ENCODER_REFINER.md` has the tables and the parity
//! numbers.

pub mod body;
pub mod bundle;
pub mod config;
pub mod data;
pub mod discriminator;
pub mod encoder;
pub mod error;
pub mod generator;
pub mod heads;
pub mod init;
pub mod testing;
pub mod train;

pub use body::ResNetBody;
pub use bundle::{
    ENCODER_FORMAT, ENCODER_JSON, ENCODER_WEIGHTS, EncoderBundle, EncoderInit, EncoderMeta,
    LATENT_AVG_FILE, torchvision_to_body_names,
};
pub use config::{EncoderBackbone, EncoderConfig, EncoderHead};
pub use data::{PairDataset, Pairs, TensorPairs};
pub use discriminator::{
    D_REG_EVERY, LatentDiscriminator, LatentDiscriminatorConfig, R1_GAMMA, d_loss, g_adv_loss,
    r1_loss,
};
pub use encoder::Encoder;
pub use error::{E4eError, Result};
pub use generator::FrozenGenerator;
/// The error of loading and using an [`EncoderBundle`] (the training error type: bundle files
/// are named in [`TrainError::Bundle`]).
pub use s2m_train::TrainError as EncoderError;
pub use s2m_train::{TrainError, TrainResult};
pub use train::{EncoderTrainConfig, EncoderTrainer};
