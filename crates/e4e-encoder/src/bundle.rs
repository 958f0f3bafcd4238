//! The export format of the encoder E (`encoder.json` + two safetensors files) and
//! [`EncoderBundle`], which loads an export and embeds sketches. The provenance records
//! ([`GeneratorRef`], [`DataInfo`], [`LossInfo`]) are shared with the refiner's format.
//!
//! ```text
//! encoder.safetensors    E's tensors under its PyTorch names (BatchNorm statistics included)
//! latent_avg.safetensors `latent_avg` [1, S]
//! encoder.json           EncoderMeta: format tag, EncoderConfig, generator file + sha256 +
//!                        config, latent_avg provenance, data + sketch source, losses,
//!                        optimiser, steps, seed, time, sha256 of encoder.safetensors and
//!                        (exports since it was added) of latent_avg.safetensors
//! ```
//!
//! Written by [`crate::train::EncoderTrainer::export`]. [`torchvision_to_body_names`] is the
//! crate's one key remap (torchvision ResNet names -> the ReStyle/HyperStyle body names).

use std::collections::HashMap;
use std::path::Path;

use backbones::{ExtraChannelInit, ResNetDepth};
use candle_core::{DType, Device, Tensor};
use losses::SimilarityLoss;
use serde::{Deserialize, Serialize};
use stylegan2::StyleGan2Config;

use crate::config::EncoderConfig;
use crate::encoder::Encoder;
use s2m_train::bundle::{bundle_file, check_finite, read_bundle_json, sha256_file, verify_sha256};
use s2m_train::{TrainError, TrainResult};

/// Format tag of `encoder.json`.
pub const ENCODER_FORMAT: &str = "sketch2medi-encoder/1";
/// File names of an encoder bundle.
pub const ENCODER_WEIGHTS: &str = "encoder.safetensors";
pub const LATENT_AVG_FILE: &str = "latent_avg.safetensors";
pub const ENCODER_JSON: &str = "encoder.json";
/// The tensor name inside [`LATENT_AVG_FILE`].
pub const LATENT_AVG_KEY: &str = "latent_avg";
/// Number of z's averaged for w_avg (e4e's `mean_latent(10000)` fallback).
pub const LATENT_AVG_SAMPLES: usize = 10_000;

/// The generator an encoder or refiner was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorRef {
    /// Path (or label) of the weights at training time.
    pub file: String,
    /// sha256 of the weights file.
    pub sha256: String,
    pub config: StyleGan2Config,
}

/// Provenance of w_avg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentAvgInfo {
    pub file: String,
    pub samples: usize,
    /// Seed of the z stream.
    pub seed: u64,
    pub how: String,
}

/// The training data of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    pub description: String,
    /// Where the sketches came from (ground-truth contours or the synthesizer S).
    pub sketch_source: String,
}

/// The loss weights of a run, and what was left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossInfo {
    pub l2: f64,
    pub perceptual: f64,
    /// "ST-LPIPS-alex", "LPIPS-alex", ...
    pub perceptual_net: String,
    pub moco: f64,
    /// False when the MoCo-v2 weights were not available (the term was left out).
    pub moco_active: bool,
    /// lambda_adv: phase 1, the latent discriminator's; phase 2, the weight of the frozen
    /// image discriminator's realism term (0 = the paper's loss).
    pub adv: f64,
    pub notes: Vec<String>,
}

impl LossInfo {
    /// The weights and notes of `loss` (as configured for the run) and lambda_adv.
    pub fn new(loss: &SimilarityLoss, adv: f64) -> Self {
        Self {
            l2: loss.l2,
            perceptual: loss.lpips_weight,
            perceptual_net: loss.perceptual().name(),
            moco: loss.moco_weight,
            moco_active: loss.moco().is_some() && loss.moco_weight > 0.0,
            adv,
            notes: loss.notes().to_vec(),
        }
    }
}

/// `encoder.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderMeta {
    /// [`ENCODER_FORMAT`].
    pub format: String,
    pub encoder: EncoderConfig,
    pub generator: GeneratorRef,
    pub latent_avg: LatentAvgInfo,
    pub data: DataInfo,
    pub losses: LossInfo,
    pub optimizer: String,
    /// Training steps done.
    pub steps: u64,
    pub batch: usize,
    pub seed: u64,
    pub created_unix_s: u64,
    /// sha256 of `encoder.safetensors` (checked on load).
    pub encoder_sha256: String,
    /// sha256 of `latent_avg.safetensors` (checked on load when present; exports written
    /// before it was recorded have none and still load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_avg_sha256: Option<String>,
    /// The encoder export this run was fine-tuned from (folder, sha256 of its weights, its
    /// steps); absent for a run from a seeded initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<EncoderInit>,
}

/// The encoder export a run was initialised from ([`crate::train::EncoderTrainConfig::init_from`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderInit {
    /// The export folder given.
    pub dir: String,
    /// sha256 of its `encoder.safetensors`.
    pub sha256: String,
    /// Its training steps (from its `encoder.json`).
    pub steps: u64,
}

/// Reads the export folder `dir` for fine-tuning: its metadata, its E tensors (sha256
/// checked) and its `latent_avg` `[1, S]`. Errors name the missing or bad file.
pub fn read_encoder_export(
    dir: &Path,
    device: &Device,
) -> TrainResult<(EncoderMeta, HashMap<String, Tensor>, Tensor)> {
    let bundle = EncoderBundle::load(dir, device)?;
    let weights = bundle_file(dir, ENCODER_WEIGHTS, "encoder")?;
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .map_err(|e| TrainError::bundle(&weights, format!("unreadable safetensors: {e}")))?;
    Ok((bundle.meta, tensors, bundle.latent_avg))
}

/// A trained encoder: E, w_avg and the metadata of its export folder.
#[derive(Debug, Clone)]
pub struct EncoderBundle {
    pub encoder: Encoder,
    /// `[1, S]`.
    pub latent_avg: Tensor,
    /// sha256 of the `latent_avg.safetensors` loaded (computed at load, for provenance).
    pub latent_avg_sha256: String,
    pub meta: EncoderMeta,
}

impl EncoderBundle {
    /// Loads an export folder (see the module docs). Errors name the missing or bad file:
    /// a sha256 that differs from the one `encoder.json` records (`encoder_sha256`, and
    /// `latent_avg_sha256` when present), or a tensor holding NaN or infinity.
    pub fn load(dir: &Path, device: &Device) -> TrainResult<Self> {
        let meta: EncoderMeta = read_bundle_json(dir, ENCODER_JSON, "encoder", ENCODER_FORMAT)?;
        let weights = bundle_file(dir, ENCODER_WEIGHTS, "encoder")?;
        let avg_path = bundle_file(dir, LATENT_AVG_FILE, "encoder")?;
        verify_sha256(&weights, &meta.encoder_sha256)?;
        let latent_avg_sha256 = sha256_file(&avg_path)?;
        if let Some(recorded) = &meta.latent_avg_sha256
            && *recorded != latent_avg_sha256
        {
            return Err(TrainError::bundle(
                &avg_path,
                format!(
                    "sha256 {latent_avg_sha256} differs from the {recorded} recorded in \
                     {ENCODER_JSON}"
                ),
            ));
        }
        let tensors = backbones::weights::read_safetensors(&weights, device)
            .map_err(|e| TrainError::bundle(&weights, e.to_string()))?;
        check_finite(&weights, &tensors)?;
        let encoder = Encoder::from_tensors(
            &weights.display().to_string(),
            tensors,
            meta.encoder.clone(),
            ExtraChannelInit::MeanOfRgb,
            DType::F32,
            device,
        )?;
        let avg = backbones::weights::read_safetensors(&avg_path, device)
            .map_err(|e| TrainError::bundle(&avg_path, e.to_string()))?;
        check_finite(&avg_path, &avg)?;
        let s = meta.encoder.style_dim;
        let latent_avg = match avg.get(LATENT_AVG_KEY) {
            Some(t) if t.elem_count() == s => t.to_dtype(DType::F32)?.reshape((1, s))?,
            Some(t) => {
                return Err(TrainError::bundle(
                    &avg_path,
                    format!(
                        "`{LATENT_AVG_KEY}` has shape {:?}, expected [1, {s}]",
                        t.dims()
                    ),
                ));
            }
            None => {
                return Err(TrainError::bundle(
                    &avg_path,
                    format!("no tensor `{LATENT_AVG_KEY}`"),
                ));
            }
        };
        Ok(Self {
            encoder,
            latent_avg,
            latent_avg_sha256,
            meta,
        })
    }

    /// w = E(sketch) + w_avg for `sketch` `[B, 1, n, n]` in [-1, 1] (n = the encoder's input
    /// size): `[B, S]` (or `[B, n_latent, S]` for a W+ encoder). Eval mode, no autograd graph.
    pub fn embed(&self, sketch: &Tensor) -> TrainResult<Tensor> {
        let codes = self.encoder.forward(sketch)?;
        Ok(Encoder::add_latent_avg(&codes, &self.latent_avg)?.detach())
    }

    /// The generator config E was trained with.
    pub fn generator_config(&self) -> &StyleGan2Config {
        &self.meta.generator.config
    }
}

/// Renames a torchvision ResNet state dict (`conv1`, `bn1`, `layer{s}.{i}.*`, `fc.*`) to the
/// ReStyle/HyperStyle body names (`conv1`, `bn1`, `body.{N}.*`; `fc.*` dropped), which is what
/// their constructors do with `resnet34(pretrained=True)`. The stem `relu` (PReLU) has no
/// torchvision counterpart and must come from elsewhere (a fresh init: PyTorch's 0.25).
pub fn torchvision_to_body_names(
    tensors: HashMap<String, Tensor>,
    depth: ResNetDepth,
) -> HashMap<String, Tensor> {
    let blocks = depth.blocks();
    let mut offset = [0usize; 4];
    for s in 1..4 {
        offset[s] = offset[s - 1] + blocks[s - 1];
    }
    tensors
        .into_iter()
        .filter_map(|(k, v)| {
            if k.starts_with("fc.") {
                return None;
            }
            if let Some(rest) = k.strip_prefix("layer") {
                let mut parts = rest.splitn(3, '.');
                let s: usize = parts.next()?.parse().ok()?;
                let i: usize = parts.next()?.parse().ok()?;
                let tail = parts.next()?;
                if !(1..=4).contains(&s) {
                    return None;
                }
                return Some((format!("body.{}.{tail}", offset[s - 1] + i), v));
            }
            Some((k, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_names_map_to_the_flat_body() {
        let dev = Device::Cpu;
        let t = |n: usize| Tensor::zeros(n, DType::F32, &dev).unwrap();
        let m: HashMap<String, Tensor> = [
            ("conv1.weight", t(1)),
            ("layer1.2.bn1.weight", t(1)),
            ("layer2.0.downsample.0.weight", t(1)),
            ("layer4.2.conv2.weight", t(1)),
            ("fc.bias", t(1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut k: Vec<String> = torchvision_to_body_names(m, ResNetDepth::R34)
            .into_keys()
            .collect();
        k.sort();
        assert_eq!(
            k,
            [
                "body.15.conv2.weight",
                "body.2.bn1.weight",
                "body.3.downsample.0.weight",
                "conv1.weight"
            ]
        );
    }
}
