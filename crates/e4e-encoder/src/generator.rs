//! [`FrozenGenerator`]: G with plain-tensor (non-`Var`) weights, so no gradient can reach
//! them, plus the sha256 recorded in every export.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use s2m_train::bundle::{check_finite, sha256_bytes, sha256_tensors};
use s2m_train::{TrainError, TrainResult};
use stylegan2::{Generator, GeneratorInput, NoiseMode, StyleGan2Config, WeightOffsets};

/// The generator G, frozen: its weights are plain tensors (never `Var`s), so a loss through G
/// produces gradients for its inputs (w, weight offsets) but none for its weights. Always run
/// with constant noise (`noises.noise_i`; HyperStyle's `randomize_noise=False`).
#[derive(Debug, Clone)]
pub struct FrozenGenerator {
    generator: Generator,
    sha256: String,
    source: String,
}

/// File name of a generator inside a generator folder.
pub const GENERATOR_FILE: &str = "generator.safetensors";

impl FrozenGenerator {
    /// Loads `path` (a `generator.safetensors` with its `.json` config, or a folder holding
    /// one) through `stylegan2::Checkpoint` (every key checked); records the file's sha256.
    /// A tensor holding NaN or infinity is refused, naming the file and the tensor.
    pub fn load(path: &Path, device: &Device) -> TrainResult<Self> {
        let file = if path.is_dir() {
            path.join(GENERATOR_FILE)
        } else {
            path.to_path_buf()
        };
        if !file.is_file() {
            return Err(TrainError::bundle(&file, "generator weights not found"));
        }
        let ck = stylegan2::Checkpoint::open(&file)?;
        let generator = ck.generator("", DType::F32, device)?;
        // One more read for the hash and the finiteness check (the checkpoint keeps its own
        // buffer private).
        let bytes = std::fs::read(&file).map_err(|e| s2m_core::CoreError::io(&file, e))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| TrainError::bundle(&file, format!("unreadable safetensors: {e}")))?;
        check_finite(&file, &tensors)?;
        Ok(Self {
            generator,
            sha256: sha256_bytes(&bytes),
            source: file.display().to_string(),
        })
    }

    /// A generator from in-memory tensors (rosinality names, noise buffers included). Every
    /// tensor is detached first, so even `Var`s handed in become constants.
    pub fn from_tensors(
        config: &StyleGan2Config,
        tensors: HashMap<String, Tensor>,
        source: &str,
        device: &Device,
    ) -> TrainResult<Self> {
        let sha256 = sha256_tensors(&tensors)?;
        let detached: HashMap<String, Tensor> =
            tensors.into_iter().map(|(k, t)| (k, t.detach())).collect();
        let generator = Generator::new(
            config,
            VarBuilder::from_tensors(detached, DType::F32, device),
        )?;
        Ok(Self {
            generator,
            sha256,
            source: source.to_string(),
        })
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }
    pub fn config(&self) -> &StyleGan2Config {
        self.generator.config()
    }
    /// sha256 of the weights file (or of the tensors for [`FrozenGenerator::from_tensors`]).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The file (or label) the weights came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn input(codes: &Tensor) -> TrainResult<GeneratorInput<'static>> {
        let input = match codes.rank() {
            2 => GeneratorInput::w(vec![codes.clone()]),
            3 => GeneratorInput::w_plus(codes.clone()),
            _ => {
                return Err(crate::E4eError::Shape {
                    what: "codes for the generator".into(),
                    expected: "[B, S] or [B, n_latent, S]".into(),
                    got: codes.dims().to_vec(),
                }
                .into());
            }
        };
        Ok(input.with_noise(NoiseMode::Const))
    }

    /// G(w) for `[B, S]` (one w broadcast to every layer) or W+ `[B, n_latent, S]` codes.
    pub fn image(&self, codes: &Tensor) -> TrainResult<Tensor> {
        Ok(self.generator.forward(&Self::input(codes)?)?.image)
    }

    /// G(w; theta * (1 + offsets)).
    pub fn image_with_offsets(
        &self,
        codes: &Tensor,
        offsets: &WeightOffsets,
    ) -> TrainResult<Tensor> {
        let input = Self::input(codes)?.with_offsets(offsets);
        Ok(self.generator.forward(&input)?.image)
    }
}
