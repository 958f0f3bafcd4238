//! Models with seeded random weights for timing the pipeline's stages at a given
//! configuration, without weight files: the `bench pipeline` command and the criterion bench
//! `benches/pipeline.rs`. The outputs mean nothing, so these models are for timing only.
//!
//! The weights are drawn (each model's own initialisation, from the workspace's seeded RNG)
//! and then held as plain tensors, as loaded weights are. Zero weights would time the same
//! arithmetic but not the same memory: a zero-filled allocation maps the kernel's shared zero
//! page until written, so large weight matrices (H's 313 M parameters at 256 px) would neither
//! count in the resident size nor stream from memory.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use e4e_encoder::{Encoder, EncoderConfig};
use hyperstyle_refiner::{HyperConfig, HyperNetwork, Refinement};
use stylegan2::{Generator, GeneratorInput, NoiseMode, StyleGan2Config};

use crate::pipeline::Result;

const TIMING_SEED: u64 = 0x7133;

/// Builds a model with seeded random weights (its own initialisation hints), then rebuilds it
/// on plain copies of them (no `Var`s: the inference paths of loaded weights).
fn plain<M, E>(
    seed: u64,
    device: &Device,
    build: impl Fn(VarBuilder) -> std::result::Result<M, E>,
) -> std::result::Result<M, E> {
    let (_, vars) = s2m_core::init::seeded_var_map(seed, DType::F32, device, &build)?;
    let tensors = s2m_train::optim::varmap_tensors(&vars);
    drop(vars);
    build(VarBuilder::from_tensors(tensors, DType::F32, device))
}

/// A pipeline configuration to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingPreset {
    /// The shipped CPU pipeline: `phantom_64` G, `narrow_cpu` E and H (64 px).
    Phantom64,
    /// The paper's models: `paper_256` G, IR-SE-50 E, HyperStyle's ResNet-34 H (256 px).
    Paper256,
}

impl std::str::FromStr for TimingPreset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "phantom64" | "phantom_64" => Ok(Self::Phantom64),
            "paper256" | "paper_256" => Ok(Self::Paper256),
            other => Err(format!(
                "unknown preset {other:?}: use phantom64 or paper256"
            )),
        }
    }
}

/// E, G and H of a [`TimingPreset`] with seeded random weights (plain tensors: no autograd
/// graph).
pub struct TimingModels {
    pub encoder: Encoder,
    pub generator: Generator,
    pub hypernet: HyperNetwork,
    pub size: usize,
    device: Device,
}

impl TimingModels {
    pub fn new(preset: TimingPreset, device: &Device) -> Result<Self> {
        let (g_cfg, e_cfg, h_cfg) = match preset {
            TimingPreset::Phantom64 => {
                let g = StyleGan2Config::phantom_64();
                let e = EncoderConfig::narrow_cpu().for_generator(&g);
                (g, e, HyperConfig::narrow_cpu())
            }
            TimingPreset::Paper256 => {
                let g = StyleGan2Config::paper_256();
                let e = EncoderConfig::ir_se50().for_generator(&g);
                (g, e, HyperConfig::hyperstyle())
            }
        };
        let mut rng = s2m_core::rng::rng_from_seed(TIMING_SEED);
        let generator =
            stylegan2::init::init_generator_frozen(&g_cfg, &mut rng, DType::F32, device)?;
        let encoder = plain(TIMING_SEED + 1, device, |vb| {
            Encoder::new(e_cfg.clone(), vb)
        })?;
        let hypernet = plain(TIMING_SEED + 2, device, |vb| {
            HyperNetwork::new(h_cfg.clone(), &g_cfg, vb)
        })?;
        Ok(Self {
            encoder,
            generator,
            hypernet,
            size: g_cfg.size as usize,
            device: device.clone(),
        })
    }

    /// A batch of `b` sketches `[b,1,n,n]` (a constant page: values do not matter for timing).
    pub fn sketches(&self, b: usize) -> Result<Tensor> {
        Ok(Tensor::ones(
            (b, 1, self.size, self.size),
            DType::F32,
            &self.device,
        )?)
    }

    /// E: sketch -> w `[b, S]`.
    pub fn encode(&self, sketch: &Tensor) -> Result<Tensor> {
        Ok(self.encoder.forward(sketch)?)
    }

    fn w_plus(&self, w: &Tensor) -> Result<Tensor> {
        Ok(Encoder::to_w_plus(w, self.generator.n_latent())?)
    }

    /// One refinement step: Δ = H([image, sketch]), then G with the accumulated offsets.
    pub fn refinement_step(&self, sketch: &Tensor, w: &Tensor, image: &Tensor) -> Result<Tensor> {
        let delta = self
            .hypernet
            .forward(&self.hypernet.input(sketch, image)?)?;
        let mut r = Refinement::new();
        r.accumulate(&delta)?;
        let offsets = r.offsets();
        let y = self.generator.forward(
            &GeneratorInput::w_plus(self.w_plus(w)?)
                .with_noise(NoiseMode::Const)
                .with_offsets(&offsets),
        )?;
        Ok(y.image)
    }

    /// G from w alone (E's image ŷ_0).
    pub fn synthesize(&self, w: &Tensor) -> Result<Tensor> {
        Ok(self
            .generator
            .forward(&GeneratorInput::w_plus(self.w_plus(w)?).with_noise(NoiseMode::Const))?
            .image)
    }

    /// What `Sketch2MedI::generate_batch` computes: E, ŷ_0, then `steps` refinements.
    pub fn generate(&self, sketch: &Tensor, steps: usize) -> Result<Tensor> {
        let w = self.encode(sketch)?;
        let out = hyperstyle_refiner::refine(
            &self.hypernet,
            &self.generator,
            sketch,
            &self.w_plus(&w)?,
            steps,
            NoiseMode::Const,
        )?;
        Ok(out.images.last().expect("ŷ_0 at least").clone())
    }
}
