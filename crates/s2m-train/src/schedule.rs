//! The schedule of a training run: its base seed and how often it logs, draws samples and loss
//! curves, and writes checkpoints. Every trainer's config embeds one [`Schedule`] with
//! `#[serde(flatten)]`, so its fields are top-level keys of the config's JSON (checkpoint
//! headers, exported bundles):
//!
//! ```
//! use s2m_train::Schedule;
//! let schedule = Schedule { checkpoint_every: 100, ..Schedule::default() };
//! schedule.validate().unwrap();
//! let zero = Schedule { log_every: 0, ..Schedule::default() };
//! assert_eq!(zero.validate().unwrap_err().to_string(), "invalid training config: log_every must be >= 1");
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{TrainError, TrainResult};

/// Seed and cadences of a run (steps are counted from 1; a checkpoint, a sample strip and the
/// loss curves are also written when the run stops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Schedule {
    /// Base seed (initial weights, data order, augmentation, latents).
    pub seed: u64,
    /// Sample strip / grid and loss curves every N steps.
    pub sample_every: u64,
    /// Checkpoint every N steps.
    pub checkpoint_every: u64,
    /// Checkpoints kept in `<out>/checkpoints`.
    pub keep_checkpoints: usize,
    /// A `log.csv` row every N steps.
    pub log_every: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            seed: 0,
            sample_every: 500,
            checkpoint_every: 500,
            keep_checkpoints: 2,
            log_every: 10,
        }
    }
}

impl Schedule {
    /// The same schedule with samples, loss curves and checkpoints written only when the run
    /// stops (both cadences set to `u64::MAX`): short runs in tests and benches.
    pub fn only_at_end(self) -> Self {
        Self {
            sample_every: u64::MAX,
            checkpoint_every: u64::MAX,
            ..self
        }
    }

    /// Rejects a cadence or a checkpoint count of 0, naming the option.
    pub fn validate(&self) -> TrainResult<()> {
        for (name, v) in [
            ("sample_every", self.sample_every),
            ("checkpoint_every", self.checkpoint_every),
            ("keep_checkpoints", self.keep_checkpoints as u64),
            ("log_every", self.log_every),
        ] {
            if v == 0 {
                return Err(TrainError::Config(format!("{name} must be >= 1")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Schedule::default().validate().unwrap();
    }

    #[test]
    fn only_at_end_keeps_seed_and_log_cadence() {
        let s = Schedule {
            seed: 9,
            log_every: 1,
            ..Schedule::default()
        }
        .only_at_end();
        assert_eq!((s.seed, s.log_every, s.keep_checkpoints), (9, 1, 2));
        assert_eq!((s.sample_every, s.checkpoint_every), (u64::MAX, u64::MAX));
        s.validate().unwrap();
    }

    #[test]
    fn zero_is_rejected_for_every_cadence_and_the_checkpoint_count() {
        let d = Schedule::default();
        for (name, s) in [
            (
                "sample_every",
                Schedule {
                    sample_every: 0,
                    ..d
                },
            ),
            (
                "checkpoint_every",
                Schedule {
                    checkpoint_every: 0,
                    ..d
                },
            ),
            (
                "keep_checkpoints",
                Schedule {
                    keep_checkpoints: 0,
                    ..d
                },
            ),
            ("log_every", Schedule { log_every: 0, ..d }),
        ] {
            let err = s.validate().unwrap_err();
            assert!(matches!(err, TrainError::Config(_)), "{name}: {err:?}");
            assert_eq!(
                err.to_string(),
                format!("invalid training config: {name} must be >= 1")
            );
        }
        // A seed of 0 is a seed like any other.
        Schedule {
            seed: 0,
            ..Schedule::default()
        }
        .validate()
        .unwrap();
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    struct Cfg {
        batch: usize,
        #[serde(flatten)]
        schedule: Schedule,
        val_samples: usize,
    }

    impl Default for Cfg {
        fn default() -> Self {
            Self {
                batch: 8,
                schedule: Schedule::default(),
                val_samples: 8,
            }
        }
    }

    #[test]
    fn flattened_fields_are_top_level_keys_in_order() {
        let cfg = Cfg {
            batch: 4,
            schedule: Schedule {
                seed: u64::MAX,
                sample_every: 7,
                checkpoint_every: 9,
                keep_checkpoints: 3,
                log_every: 1,
            },
            val_samples: 2,
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"batch":4,"seed":{},"sample_every":7,"checkpoint_every":9,"keep_checkpoints":3,"log_every":1,"val_samples":2}}"#,
                u64::MAX
            )
        );
        assert_eq!(serde_json::from_str::<Cfg>(&json).unwrap(), cfg);
        let value = serde_json::to_value(&cfg).unwrap();
        assert_eq!(serde_json::from_value::<Cfg>(value).unwrap(), cfg);
        // Missing keys take the defaults.
        let partial: Cfg = serde_json::from_str(r#"{"checkpoint_every":3}"#).unwrap();
        assert_eq!(
            partial,
            Cfg {
                schedule: Schedule {
                    checkpoint_every: 3,
                    ..Schedule::default()
                },
                ..Cfg::default()
            }
        );
    }
}
