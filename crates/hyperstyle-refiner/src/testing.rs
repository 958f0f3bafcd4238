//! Tiny runs for the training tests of this crate and `refiner-aids` (test support, not model
//! code; the models come from `e4e_encoder::testing`).

use std::path::{Path, PathBuf};

use candle_core::Device;
use e4e_encoder::testing::{reachable_pairs, tiny_encoder_config, tiny_generator};
use e4e_encoder::{EncoderTrainConfig, EncoderTrainer, TensorPairs};
use losses::SimilarityLoss;
use s2m_train::Schedule;

use crate::config::HyperConfig;
use crate::error::Result;
use crate::train::RefinerTrainConfig;

/// L_sim with the shipped perceptual weights, on the CPU.
pub fn test_loss() -> Result<SimilarityLoss> {
    Ok(SimilarityLoss::cpu_default(
        &losses::weights::shipped_weights_dir(),
    )?)
}

/// A phase-2 config for the tiny models: batch 2, lr 1e-3, seed 3, a log row every step, no
/// samples or checkpoints before the end.
pub fn tiny_train_config() -> RefinerTrainConfig {
    RefinerTrainConfig {
        hyper: HyperConfig::tiny_test(),
        batch: 2,
        lr: 1e-3,
        schedule: Schedule {
            seed: 3,
            log_every: 1,
            ..Schedule::default()
        }
        .only_at_end(),
        val_samples: 2,
        ..RefinerTrainConfig::default()
    }
}

/// A fresh (untrained) encoder for the tiny generator `g_seed`, exported to
/// `<dir>/enc_export` (its run folder is `<dir>/enc_run`).
pub fn encoder_export(dir: &Path, g_seed: u64) -> Result<PathBuf> {
    let cfg = EncoderTrainConfig {
        encoder: tiny_encoder_config(),
        latent_avg_samples: 256,
        ..EncoderTrainConfig::default()
    };
    let t = EncoderTrainer::open(
        cfg,
        tiny_generator(g_seed)?,
        test_loss()?,
        dir.join("enc_run"),
        &Device::Cpu,
    )?;
    let export = dir.join("enc_export");
    t.export(&export)?;
    Ok(export)
}

/// `n` pairs the tiny generator (seed 1) can produce, with 32 px sketches (seed 11).
pub fn tiny_pairs(n: usize) -> Result<TensorPairs> {
    Ok(reachable_pairs(&tiny_generator(1)?, n, 32, 11)?)
}
