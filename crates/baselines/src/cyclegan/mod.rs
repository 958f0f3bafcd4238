//! CycleGAN (Zhu et al., ICCV 2017), as the official junyanz/pytorch-CycleGAN-and-pix2pix code
//! defines it (`models/networks.py`, `models/cycle_gan_model.py`, `util/image_pool.py`): two
//! ResNet generators with InstanceNorm and reflection padding ([`ResnetGenerator`]; G_A: A -> B,
//! G_B: B -> A), two PatchGAN discriminators with InstanceNorm (the pix2pix [`PatchGan`] with
//! `norm: Instance`; D_A judges B images, D_B judges A images), the LSGAN loss, cycle losses
//! weighted 10, identity losses weighted 0.5 x 10 ([`loss`]) and the 50-image pools ([`pool`]).
//! Parameter paths are the official state-dict keys (`model.1.weight`,
//! `model.10.conv_block.1.weight`, ...), so `latest_net_G_A.pth` etc., converted by
//! `tools/baselines_convert.py`, load without remapping.
//!
//! Configs: [`CycleGanConfig::official_256`] (`resnet_9blocks`, ngf = ndf = 64),
//! [`CycleGanConfig::official_64`] (`resnet_6blocks`), [`CycleGanConfig::narrow_64`]
//! (ngf = ndf = 16, for the CPU) and [`CycleGanConfig::tiny_64`] (tests). Parity with the
//! official code: `tests/cyclegan.rs` against `tools/baselines_cyclegan_fixtures.py`; numbers in
//! `docs/BASELINES.md`.
//!
//! ```
//! use baselines::cyclegan::{CycleGan, CycleGanConfig};
//! use baselines::layers::ForwardMode;
//! use candle_core::{Device, Tensor};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = CycleGan::seeded(&CycleGanConfig::tiny_64().with_channels(1, 3), 7, &Device::Cpu)?;
//! let sketch = Tensor::zeros((1, 1, 64, 64), candle_core::DType::F32, &Device::Cpu)?;
//! let image = model.g_a.forward(&sketch, &mut ForwardMode::eval())?;
//! assert_eq!(image.dims(), &[1, 3, 64, 64]);
//! # Ok(()) }
//! ```

pub mod config;
pub mod generator;
pub mod loss;
pub mod pool;
pub mod train;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use s2m_core::init::seeded_var_map;
use s2m_core::rng::derive_seed;

pub use config::{CycleGanConfig, CycleLossConfig, ResnetConfig};
pub use generator::{ResnetBlock, ResnetGenerator};
pub use pool::ImagePool;

use crate::error::{Result, check_image};
use crate::layers::{ForwardMode, NormMode};
use crate::pix2pix::{PatchGan, PatchGanConfig, seeded_discriminator_dtype};
use crate::weights::load_model;

/// A ResNet generator with vars of `dtype` (the official normal(0, 0.02) init drawn from `seed`).
pub fn seeded_generator(
    cfg: &ResnetConfig,
    seed: u64,
    dtype: DType,
    dev: &Device,
) -> Result<(ResnetGenerator, VarMap)> {
    seeded_var_map(seed, dtype, dev, |vb: VarBuilder| {
        ResnetGenerator::new(cfg, vb)
    })
}

/// A ResNet generator loaded from a state-dict safetensors (official keys, as
/// `tools/baselines_convert.py --norm instance` writes them from `latest_net_G_A.pth`; every key
/// must be present with its shape and no other key may be present).
pub fn load_generator(
    cfg: &ResnetConfig,
    path: &Path,
    dev: &Device,
) -> Result<(ResnetGenerator, VarMap)> {
    load_model(path, dev, "CycleGAN generator", || {
        seeded_generator(cfg, 0, DType::F32, dev)
    })
}

/// A CycleGAN discriminator (PatchGAN) loaded from a state-dict safetensors (`latest_net_D_A.pth`
/// converted), as [`load_generator`].
pub fn load_discriminator(
    cfg: &PatchGanConfig,
    path: &Path,
    dev: &Device,
) -> Result<(PatchGan, VarMap)> {
    load_model(path, dev, "CycleGAN discriminator", || {
        seeded_discriminator_dtype(cfg, 0, DType::F32, dev)
    })
}

/// The four networks of one CycleGAN model with their vars.
pub struct CycleGan {
    pub config: CycleGanConfig,
    /// A -> B.
    pub g_a: ResnetGenerator,
    /// B -> A.
    pub g_b: ResnetGenerator,
    /// Judges domain-B images.
    pub d_a: PatchGan,
    /// Judges domain-A images.
    pub d_b: PatchGan,
    pub g_a_vars: VarMap,
    pub g_b_vars: VarMap,
    pub d_a_vars: VarMap,
    pub d_b_vars: VarMap,
}

/// The outputs of one generator step (translations and losses).
pub struct GeneratorStep {
    pub images: loss::Translations,
    pub loss: loss::GLoss,
}

impl CycleGan {
    /// Fresh networks (official init) in f32 from independent streams of `seed`.
    pub fn seeded(config: &CycleGanConfig, seed: u64, dev: &Device) -> Result<Self> {
        Self::seeded_dtype(config, seed, DType::F32, dev)
    }

    /// [`CycleGan::seeded`] with vars of `dtype` (f64 for gradient checks).
    pub fn seeded_dtype(
        config: &CycleGanConfig,
        seed: u64,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let s = |stream| derive_seed(seed, stream, 0);
        let (g_a, g_a_vars) = seeded_generator(&config.generator, s(1), dtype, dev)?;
        let (g_b, g_b_vars) = seeded_generator(&config.generator_b(), s(2), dtype, dev)?;
        let (d_a, d_a_vars) =
            seeded_discriminator_dtype(&config.discriminator_a(), s(3), dtype, dev)?;
        let (d_b, d_b_vars) =
            seeded_discriminator_dtype(&config.discriminator_b(), s(4), dtype, dev)?;
        Ok(Self {
            config: config.clone(),
            g_a,
            g_b,
            d_a,
            d_b,
            g_a_vars,
            g_b_vars,
            d_a_vars,
            d_b_vars,
        })
    }

    /// The networks by their official checkpoint names (`G_A`, `G_B`, `D_A`, `D_B`).
    pub fn named_var_maps(&self) -> [(&'static str, &VarMap); 4] {
        [
            ("G_A", &self.g_a_vars),
            ("G_B", &self.g_b_vars),
            ("D_A", &self.d_a_vars),
            ("D_B", &self.d_b_vars),
        ]
    }

    fn check_pair(&self, real_a: &Tensor, real_b: &Tensor) -> Result<()> {
        let g = &self.config.generator;
        let s = self.config.image_size;
        check_image("CycleGAN domain-A batch", real_a, g.input_nc, s)?;
        check_image("CycleGAN domain-B batch", real_b, g.output_nc, s)
    }

    /// The official `forward` + `backward_G` loss: the translations and the weighted G loss
    /// (D outputs in `norm` mode; InstanceNorm ignores it). `real_a` and `real_b` are unpaired
    /// and may have different batch sizes.
    pub fn generator_step(
        &self,
        real_a: &Tensor,
        real_b: &Tensor,
        mode: &mut ForwardMode<'_>,
    ) -> Result<GeneratorStep> {
        self.check_pair(real_a, real_b)?;
        let l = &self.config.loss;
        let fake_b = self.g_a.forward(real_a, mode)?;
        let rec_a = self.g_b.forward(&fake_b, mode)?;
        let fake_a = self.g_b.forward(real_b, mode)?;
        let rec_b = self.g_a.forward(&fake_a, mode)?;
        let (idt_a, idt_b) = if l.lambda_identity > 0.0 {
            (
                Some(self.g_a.forward(real_b, mode)?),
                Some(self.g_b.forward(real_a, mode)?),
            )
        } else {
            (None, None)
        };
        let pred_fake_b = self.d_a.forward(&fake_b, mode.norm)?;
        let pred_fake_a = self.d_b.forward(&fake_a, mode.norm)?;
        let images = loss::Translations {
            fake_b,
            rec_a,
            fake_a,
            rec_b,
            idt_a,
            idt_b,
        };
        let loss = loss::g_loss(
            &pred_fake_b,
            &pred_fake_a,
            &images,
            real_a,
            real_b,
            l.lambda_a,
            l.lambda_b,
            l.lambda_identity,
        )?;
        Ok(GeneratorStep { images, loss })
    }

    /// `backward_D_A` + `backward_D_B` losses: `(loss_D_A, loss_D_B)` on the real batches and
    /// the (pooled) fakes, which are detached here.
    pub fn discriminator_losses(
        &self,
        real_a: &Tensor,
        real_b: &Tensor,
        fake_a: &Tensor,
        fake_b: &Tensor,
        norm: NormMode,
    ) -> Result<(Tensor, Tensor)> {
        self.check_pair(real_a, real_b)?;
        let g = &self.config.generator;
        let s = self.config.image_size;
        check_image("CycleGAN fake A batch", fake_a, g.input_nc, s)?;
        check_image("CycleGAN fake B batch", fake_b, g.output_nc, s)?;
        let pred_real_b = self.d_a.forward(real_b, norm)?;
        let pred_fake_b = self.d_a.forward(&fake_b.detach(), norm)?;
        let loss_d_a = loss::d_loss(&pred_real_b, &pred_fake_b)?;
        let pred_real_a = self.d_b.forward(real_a, norm)?;
        let pred_fake_a = self.d_b.forward(&fake_a.detach(), norm)?;
        let loss_d_b = loss::d_loss(&pred_real_a, &pred_fake_a)?;
        Ok((loss_d_a, loss_d_b))
    }
}
