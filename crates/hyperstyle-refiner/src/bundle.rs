//! The export format of the refiner H (`refiner.json` + `refiner.safetensors`) and
//! [`RefinerBundle`], which loads an export for a generator.
//!
//! ```text
//! refiner.safetensors  H's tensors under HyperStyle's names (BatchNorm statistics included)
//! refiner.json         RefinerMeta: format tag, HyperConfig, T, generator sha256 + config,
//!                      encoder sha256 + folder, data + sketch source, losses, optimiser,
//!                      steps, seed, time, sha256 of refiner.safetensors
//! ```
//!
//! Written by [`crate::train::RefinerTrainer::export`]. H's parameter names are HyperStyle's, so
//! no key remap is needed.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use e4e_encoder::bundle::{DataInfo, GeneratorRef, LossInfo};
use s2m_train::TrainError;
use s2m_train::bundle::{bundle_file, check_finite, read_bundle_json, verify_sha256};
use serde::{Deserialize, Serialize};
use stylegan2::StyleGan2Config;

use crate::config::HyperConfig;
use crate::error::Result;
use crate::hypernet::{DEFAULT_SKETCH_CHANNEL_INIT, HyperNetwork};

/// Format tag of `refiner.json`.
pub const REFINER_FORMAT: &str = "sketch2medi-refiner/1";
pub const REFINER_WEIGHTS: &str = "refiner.safetensors";
pub const REFINER_JSON: &str = "refiner.json";

/// The refiner a run was initialised from (`RefinerTrainConfig::init_from`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitRef {
    /// The export folder given.
    pub dir: String,
    /// sha256 of its `refiner.safetensors`.
    pub sha256: String,
    /// Its training steps (from its `refiner.json`).
    pub steps: u64,
}

/// The metadata and the weights file of the refiner export `dir` (errors name the missing or
/// bad file). The caller checks the metadata, then the file's sha256 ([`verify_sha256`]).
pub(crate) fn read_export(dir: &Path) -> Result<(RefinerMeta, PathBuf)> {
    let meta: RefinerMeta = read_bundle_json(dir, REFINER_JSON, "refiner", REFINER_FORMAT)?;
    let weights = bundle_file(dir, REFINER_WEIGHTS, "refiner")?;
    Ok((meta, weights))
}

/// The encoder a refiner was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderRef {
    /// The encoder's export folder at training time.
    pub dir: String,
    /// sha256 of its `encoder.safetensors`.
    pub sha256: String,
}

/// `refiner.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefinerMeta {
    /// [`REFINER_FORMAT`].
    pub format: String,
    pub hyper: HyperConfig,
    /// T used in training (and the default at inference).
    pub iterations: usize,
    pub generator: GeneratorRef,
    pub encoder: EncoderRef,
    pub data: DataInfo,
    pub losses: LossInfo,
    /// Fields recorded by the run's extra loss terms (`train::ExtraTerms::record`; for the
    /// terms of `refiner-aids`: `sketch_l2`, `discriminator`, `region`, `structure`); none for
    /// the paper's loss.
    #[serde(flatten)]
    pub extra_terms: serde_json::Map<String, serde_json::Value>,
    /// The refiner the run was initialised from (a fine-tuning run); `steps` counts this
    /// run's steps only.
    #[serde(default)]
    pub init: Option<InitRef>,
    pub optimizer: String,
    pub steps: u64,
    pub batch: usize,
    pub seed: u64,
    pub created_unix_s: u64,
    /// sha256 of `refiner.safetensors` (checked on load).
    pub refiner_sha256: String,
}

/// A trained refiner: H and the metadata of its export folder.
#[derive(Debug, Clone)]
pub struct RefinerBundle {
    pub hypernet: HyperNetwork,
    pub meta: RefinerMeta,
}

impl RefinerBundle {
    /// Loads an export folder for a generator with config `gen_cfg` (which must be the one H
    /// was trained for). Errors name the missing or bad file (a sha256 that differs from the
    /// one `refiner.json` records, a tensor holding NaN or infinity).
    pub fn load(dir: &Path, gen_cfg: &StyleGan2Config, device: &Device) -> Result<Self> {
        let (meta, weights) = read_export(dir)?;
        if &meta.generator.config != gen_cfg {
            return Err(TrainError::Bundle {
                path: dir.join(REFINER_JSON),
                message: format!(
                    "the refiner was trained for generator config {:?}, not {gen_cfg:?}",
                    meta.generator.config
                ),
            }
            .into());
        }
        verify_sha256(&weights, &meta.refiner_sha256)?;
        let tensors = backbones::weights::read_safetensors(&weights, device)
            .map_err(|e| TrainError::bundle(&weights, e.to_string()))?;
        check_finite(&weights, &tensors)?;
        let hypernet = HyperNetwork::from_tensors(
            &weights.display().to_string(),
            tensors,
            meta.hyper.clone(),
            gen_cfg,
            DEFAULT_SKETCH_CHANNEL_INIT,
            DType::F32,
            device,
        )?;
        Ok(Self { hypernet, meta })
    }
}
