//! StyleGAN2 generator G and discriminator D with rosinality's parameter names
//! (`rosinality/stylegan2-pytorch` `model.py`, the revision vendored by HyperStyle), the
//! per-sample weight-offset path used by the HyperStyle refiner, R1 / path-length
//! regularisers, and a safetensors loader that verifies every key before building.
//!
//! Entry points:
//! - [`StyleGan2Config`] and its presets; [`Generator`] ([`GeneratorInput`], [`NoiseMode`],
//!   [`WeightOffsets`], [`Generator::modulated_layer_shapes`]); [`Discriminator`];
//! - [`weights::Checkpoint`] to load, [`init::init_generator`] / [`init::init_discriminator`]
//!   for seeded fresh models;
//! - [`regularizers`]: `r1_penalty`, `path_length_penalty`, logistic losses.
//! - [`layers`]: rosinality's modules (EqualLinear, ModulatedConv2d, StyledConv, ToRGB,
//!   ConvLayer, ResBlock, ...), each built as `new(&config, vb)`.
//!
//! Second-order gradients (R1, path length) need `CANDLE_GRAD_DO_NOT_DETACH=1` in the process
//! environment; the regularisers check it and refuse otherwise.

pub mod config;
pub mod discriminator;
pub mod error;
pub mod fast;
pub mod generator;
pub mod init;
pub mod layers;
pub mod ops;
pub mod regularizers;
pub mod train;
pub mod weights;

pub use config::{ChannelTable, StyleGan2Config};
pub use discriminator::Discriminator;
pub use error::{Result, StyleGan2Error};
pub use generator::{
    Generator, GeneratorInput, GeneratorOutput, Latents, MappingNetwork, ModulatedLayerShape,
    NoiseMode, WeightOffsets, modulated_layer_shapes, random_inject_index, random_noise_buffers,
};
pub use regularizers::{
    R1Output, d_logistic_loss, g_nonsaturating_loss, path_length_penalty, r1_penalty,
};
pub use weights::{Checkpoint, Part};
