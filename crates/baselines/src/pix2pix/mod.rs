//! pix2pix (Isola et al., CVPR 2017), as the official junyanz/pytorch-CycleGAN-and-pix2pix code
//! defines it: a U-Net generator with skip connections, BatchNorm and dropout 0.5
//! ([`UnetGenerator`]), a 70x70 PatchGAN on the `(sketch, image)` pair ([`PatchGan`]), the
//! vanilla GAN loss plus 100 x L1 ([`loss`]). Parameter paths are the official state-dict keys
//! (`model.model.1.model.3...`), so an official `latest_net_G.pth`, converted to safetensors by
//! `tools/baselines_convert.py`, loads without remapping.
//!
//! Configs: [`Pix2PixConfig::official_256`] (`unet_256`, ngf = ndf = 64) and the 64 px presets
//! [`Pix2PixConfig::official_64`], [`Pix2PixConfig::narrow_64`] (ngf = ndf = 32, for the CPU)
//! and [`Pix2PixConfig::tiny_64`] (tests). Parity with the official code: `tests/pix2pix.rs`
//! against fixtures of `tools/baselines_pix2pix_fixtures.py`; numbers in `docs/BASELINES.md`.
//!
//! Modes: the official test script does not pass `--eval`, so pix2pix is usually *run* with
//! batch statistics and dropout on; [`ForwardMode::eval`] is `--eval` (running statistics, no
//! dropout, deterministic), [`ForwardMode::train`] is train mode with seeded dropout.

pub mod config;
pub mod discriminator;
pub mod generator;
pub mod loss;
pub mod train;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use s2m_core::init::seeded_var_map;
use s2m_core::rng::derive_seed;

pub use config::{NormKind, PatchGanConfig, Pix2PixConfig, UnetConfig};
pub use discriminator::PatchGan;
pub use generator::UnetGenerator;

use crate::error::{BaselinesError, Result, check_image};
use crate::layers::{ForwardMode, NormMode};
use crate::weights::load_model;

/// A generator with f32 vars (the official normal(0, 0.02) init drawn from `seed`).
pub fn seeded_generator(
    cfg: &UnetConfig,
    seed: u64,
    dev: &Device,
) -> Result<(UnetGenerator, VarMap)> {
    seeded_generator_dtype(cfg, seed, DType::F32, dev)
}

/// [`seeded_generator`] with vars of `dtype` (f64 for gradient checks).
pub fn seeded_generator_dtype(
    cfg: &UnetConfig,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> Result<(UnetGenerator, VarMap)> {
    seeded_var_map(seed, dtype, dev, |vb: VarBuilder| {
        UnetGenerator::new(cfg, vb)
    })
}

/// A discriminator with f32 vars (the official normal(0, 0.02) init drawn from `seed`).
pub fn seeded_discriminator(
    cfg: &PatchGanConfig,
    seed: u64,
    dev: &Device,
) -> Result<(PatchGan, VarMap)> {
    seeded_discriminator_dtype(cfg, seed, DType::F32, dev)
}

/// [`seeded_discriminator`] with vars of `dtype`.
pub fn seeded_discriminator_dtype(
    cfg: &PatchGanConfig,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> Result<(PatchGan, VarMap)> {
    seeded_var_map(seed, dtype, dev, |vb: VarBuilder| PatchGan::new(cfg, vb))
}

/// A generator loaded from a state-dict safetensors (official keys; every key must be present
/// with its shape and no other key may be present).
pub fn load_generator(
    cfg: &UnetConfig,
    path: &Path,
    dev: &Device,
) -> Result<(UnetGenerator, VarMap)> {
    load_model(path, dev, "pix2pix generator", || {
        seeded_generator(cfg, 0, dev)
    })
}

/// A discriminator loaded from a state-dict safetensors (as [`load_generator`]).
pub fn load_discriminator(
    cfg: &PatchGanConfig,
    path: &Path,
    dev: &Device,
) -> Result<(PatchGan, VarMap)> {
    load_model(path, dev, "pix2pix discriminator", || {
        seeded_discriminator(cfg, 0, dev)
    })
}

/// The state-dict keys and shapes of a model built by `build` (sorted), to compare with the
/// official `state_dict()`.
pub fn parameter_shapes<M>(
    build: impl FnOnce(VarBuilder) -> Result<M>,
) -> Result<Vec<(String, Vec<usize>)>> {
    let (_, vars) = seeded_var_map(0, DType::F32, &Device::Cpu, build)?;
    let mut v: Vec<(String, Vec<usize>)> = s2m_train::optim::varmap_named_vars(&vars)
        .into_iter()
        .map(|(n, t)| (n, t.dims().to_vec()))
        .collect();
    v.sort();
    Ok(v)
}

/// G and D of one pix2pix model with their vars.
pub struct Pix2Pix {
    pub config: Pix2PixConfig,
    pub generator: UnetGenerator,
    pub discriminator: PatchGan,
    pub g_vars: VarMap,
    pub d_vars: VarMap,
}

impl Pix2Pix {
    /// Fresh G and D (official init) from independent streams of `seed`.
    pub fn seeded(config: &Pix2PixConfig, seed: u64, dev: &Device) -> Result<Self> {
        config.validate()?;
        let (generator, g_vars) =
            seeded_generator(&config.generator, derive_seed(seed, 1, 0), dev)?;
        let (discriminator, d_vars) =
            seeded_discriminator(&config.discriminator, derive_seed(seed, 2, 0), dev)?;
        Ok(Self {
            config: config.clone(),
            generator,
            discriminator,
            g_vars,
            d_vars,
        })
    }

    /// `G(sketch)`: `[B, input_nc, S, S]` -> `[B, output_nc, S, S]`.
    pub fn generate(&self, sketch: &Tensor, mode: &mut ForwardMode<'_>) -> Result<Tensor> {
        let g = &self.config.generator;
        check_image("pix2pix sketch", sketch, g.input_nc, self.config.image_size)?;
        self.generator.forward(sketch, mode)
    }

    /// `D(cat(sketch, image))`: patch logits `[B, 1, s, s]`.
    pub fn discriminate(&self, sketch: &Tensor, image: &Tensor, mode: NormMode) -> Result<Tensor> {
        let g = &self.config.generator;
        check_image("pix2pix sketch", sketch, g.input_nc, self.config.image_size)?;
        check_image("pix2pix image", image, g.output_nc, self.config.image_size)?;
        if sketch.dim(0)? != image.dim(0)? {
            return Err(BaselinesError::Shape {
                what: "pix2pix image (batch must match the sketch)".into(),
                expected: format!("batch {}", sketch.dim(0)?),
                got: image.dims().to_vec(),
            });
        }
        let pair = Tensor::cat(&[sketch, image], 1)?; // [B, in + out, S, S]
        self.discriminator.forward(&pair, mode)
    }
}
