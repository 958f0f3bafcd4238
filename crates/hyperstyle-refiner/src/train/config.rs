//! The hyper-parameters of phase 2.

use std::path::PathBuf;

use losses::SimilarityLoss;
use s2m_train::{Schedule, TrainError};
use serde::{Deserialize, Serialize};

use crate::config::HyperConfig;
use crate::error::Result;
use crate::refinement::DEFAULT_STEPS;

/// Hyper-parameters of phase 2 (HyperStyle defaults unless noted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefinerTrainConfig {
    /// H's architecture (its output table comes from the generator config).
    pub hyper: HyperConfig,
    /// Pairs per step (HyperStyle README: 8).
    pub batch: usize,
    /// Adam learning rate (HyperStyle: 1e-4 with Ranger).
    pub lr: f64,
    /// Refinement iterations per sample T, each with its loss (Sketch2MedI: 3).
    pub iterations: usize,
    /// L_sim weights (MSE 1.0, perceptual 0.8, MoCo 0.5 when available).
    pub l2_lambda: f64,
    pub lpips_lambda: f64,
    pub moco_lambda: f64,
    /// Warm start: an export folder of a refiner with the same `hyper` config and generator
    /// whose weights (and BatchNorm statistics) initialise H when the run starts fresh (a
    /// checkpoint in the run folder takes precedence). Adam starts from zero.
    pub init_from: Option<PathBuf>,
    /// Base seed (init, data order) and the cadences of the sample strips (+ loss curves),
    /// checkpoints and log rows; top-level keys of the JSON.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Rows of the sample strip.
    pub val_samples: usize,
    /// The settings of the run's extra loss terms ([`crate::ExtraLoss`]), recorded in checkpoints as
    /// top-level fields of the config (e.g. `refiner_aids::AidsConfig`); empty for the paper's
    /// loss. The terms themselves are handed to [`crate::RefinerTrainer::open_with_extras`].
    #[serde(flatten)]
    pub extra_terms: serde_json::Map<String, serde_json::Value>,
}

impl Default for RefinerTrainConfig {
    fn default() -> Self {
        Self {
            hyper: HyperConfig::narrow_cpu(),
            batch: 8,
            lr: 1e-4,
            iterations: DEFAULT_STEPS,
            l2_lambda: SimilarityLoss::DEFAULT_L2,
            lpips_lambda: SimilarityLoss::DEFAULT_LPIPS,
            moco_lambda: SimilarityLoss::DEFAULT_MOCO,
            init_from: None,
            schedule: Schedule::default(),
            val_samples: 8,
            extra_terms: serde_json::Map::new(),
        }
    }
}

impl RefinerTrainConfig {
    pub fn validate(&self) -> Result<()> {
        self.hyper.validate()?;
        self.schedule.validate()?;
        let bad = |m: String| Err(TrainError::Config(m).into());
        if self.batch == 0 || self.iterations == 0 {
            return bad("batch and iterations must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr = {} must be positive", self.lr));
        }
        for (name, v) in [
            ("l2_lambda", self.l2_lambda),
            ("lpips_lambda", self.lpips_lambda),
            ("moco_lambda", self.moco_lambda),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("{name} = {v} must be finite and >= 0"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_keys_are_top_level_and_not_extra_terms() {
        let mut cfg = RefinerTrainConfig {
            schedule: Schedule {
                seed: 7,
                sample_every: 3,
                checkpoint_every: 4,
                keep_checkpoints: 5,
                log_every: 6,
            },
            ..RefinerTrainConfig::default()
        };
        cfg.extra_terms
            .insert("region_lambda".into(), serde_json::json!(0.5));
        let value = serde_json::to_value(&cfg).unwrap();
        for (key, v) in [
            ("seed", 7),
            ("sample_every", 3),
            ("checkpoint_every", 4),
            ("keep_checkpoints", 5),
            ("log_every", 6),
        ] {
            assert_eq!(value[key], serde_json::json!(v), "{key}");
        }
        assert_eq!(value["region_lambda"], serde_json::json!(0.5));
        let back: RefinerTrainConfig = serde_json::from_value(value).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(back.extra_terms.len(), 1);
        let e = RefinerTrainConfig {
            schedule: Schedule {
                log_every: 0,
                ..Schedule::default()
            },
            ..RefinerTrainConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("log_every must be >= 1"), "{e}");
    }
}
