//! The plumbing the baseline trainers share ([`crate::pix2pix::train`],
//! [`crate::cyclegan::train`]): the official optimiser settings and `linear` learning-rate
//! policy, resuming from the latest checkpoint of a run folder (the model config must be the
//! same), rotated checkpoint saving and the sample strips.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use s2m_core::imageio::{image_grid, save_png, tensor_to_rgb_batch};
use s2m_core::rng::Rng;
use s2m_train::checkpoint::{Checkpoint, RngState};
use s2m_train::optim::AdamConfig;
use s2m_train::resume::ResumeReport;
use s2m_train::run::checkpoint_meta;
use s2m_train::{Schedule, TrainError, TrainResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The official Adam of both baselines: `lr`, betas (`beta1`, 0.999), no weight decay.
pub(crate) fn official_adam(lr: f64, beta1: f64) -> AdamConfig {
    AdamConfig {
        lr,
        beta1,
        beta2: 0.999,
        ..AdamConfig::default()
    }
}

/// Checks the optimiser settings shared by the trainers' configs: `batch >= 1`, `lr > 0`,
/// `beta1` in [0, 1).
pub(crate) fn validate_optim(batch: usize, lr: f64, beta1: f64) -> TrainResult<()> {
    if batch == 0 {
        return Err(TrainError::Config("batch must be >= 1".into()));
    }
    if !(lr.is_finite() && lr > 0.0 && (0.0..1.0).contains(&beta1)) {
        return Err(TrainError::Config(format!(
            "lr {lr} must be > 0 and beta1 {beta1} in [0, 1)"
        )));
    }
    Ok(())
}

/// The official `linear` policy: the learning-rate factor in (1-based) epoch `epoch`, constant
/// for `n_epochs`, then `1 - (e - n_epochs) / (n_epochs_decay + 1)`.
pub(crate) fn linear_lr_factor(epoch: u64, n_epochs: u64, n_epochs_decay: u64) -> f64 {
    1.0 - epoch.saturating_sub(n_epochs) as f64 / (n_epochs_decay + 1) as f64
}

/// Opens the run folder `out` for resuming ([`s2m_train::resume::open_run`]: leftovers of
/// killed processes removed, damaged newer checkpoints skipped and reported) and returns the
/// newest checkpoint that loads, after checking that it was trained with the requested config
/// but for the reporting cadences ([`s2m_train::resume::MAY_CHANGE`]); the error lists every
/// difference.
pub(crate) fn latest_resumable<C: DeserializeOwned + Serialize>(
    out: &Path,
    requested: &C,
) -> TrainResult<(Option<Checkpoint>, ResumeReport)> {
    let (found, report) = s2m_train::resume::open_run(out)?;
    let Some((path, ck)) = found else {
        return Ok((None, report));
    };
    s2m_train::resume::check_run_config(&path, &ck, requested, s2m_train::resume::MAY_CHANGE)?;
    Ok((Some(ck), report))
}

/// A checkpoint of run state at `step` with the training config `cfg` and the RNG `rng` saved
/// under `rng_name`; the caller adds the networks and optimisers.
pub(crate) fn new_checkpoint<C: Serialize>(
    step: u64,
    schedule: &Schedule,
    cfg: &C,
    rng_name: &str,
    rng: &Rng,
) -> TrainResult<Checkpoint> {
    let mut meta = checkpoint_meta(step, schedule.seed, cfg, &[])?;
    meta.rng.insert(rng_name.into(), RngState::capture(rng));
    Ok(Checkpoint::new(meta))
}

/// Saves `ck` in `<out>/checkpoints`, atomic and rotated (keeping `keep_checkpoints`).
pub(crate) fn save_rotated(
    ck: Checkpoint,
    out: &Path,
    schedule: &Schedule,
) -> TrainResult<PathBuf> {
    Ok(ck.save_in(out.join("checkpoints"), schedule.keep_checkpoints.max(1))?)
}

/// Writes a sample strip: one column per tensor of `cols` (`[B, 1 or 3, S, S]` in [-1, 1],
/// clamped; greyscale repeated to RGB), one row per batch item.
pub(crate) fn write_strip(path: &Path, cols: &[&Tensor]) -> TrainResult<()> {
    let rgb = |t: &Tensor| -> TrainResult<Vec<_>> {
        let t = if t.dim(1)? == 1 {
            Tensor::cat(&[t, t, t], 1)?
        } else {
            t.clone()
        };
        Ok(tensor_to_rgb_batch(&t.clamp(-1f32, 1f32)?)?)
    };
    let cols = cols
        .iter()
        .map(|t| rgb(t))
        .collect::<TrainResult<Vec<_>>>()?;
    let mut tiles = Vec::new();
    for row in 0..cols[0].len() {
        for c in &cols {
            tiles.push(c[row].clone());
        }
    }
    save_png(path, &image_grid(&tiles, cols.len(), 2)?)?;
    Ok(())
}

/// `impl TrainLoop` for a baseline trainer whose inherent methods (`train_step`,
/// `save_checkpoint`, `set_validation`, `write_samples`, `write_loss_plot`) and fields (`step`,
/// `out`, `cfg.schedule`, `val`) carry the loop.
macro_rules! impl_train_loop {
    ($trainer:ident, $lt:lifetime, $data:ty, $stats:ty) => {
        impl<$lt> s2m_train::run::TrainLoop<$lt> for $trainer {
            type Stats = $stats;
            type Error = s2m_train::TrainError;
            type Data = $data;

            fn step(&self) -> u64 {
                self.step
            }
            fn out_dir(&self) -> &std::path::Path {
                &self.out
            }
            fn schedule(&self) -> (u64, u64) {
                (
                    self.cfg.schedule.checkpoint_every,
                    self.cfg.schedule.sample_every,
                )
            }
            fn prepare(&mut self, data: &$data) -> s2m_train::TrainResult<()> {
                if self.val.is_none() {
                    self.set_validation(data)?;
                }
                Ok(())
            }
            fn train_step(&mut self, data: &$data) -> s2m_train::TrainResult<$stats> {
                $trainer::train_step(self, data)
            }
            fn save_checkpoint(&self) -> s2m_train::TrainResult<std::path::PathBuf> {
                $trainer::save_checkpoint(self)
            }
            fn write_samples(&self, path: &std::path::Path) -> s2m_train::TrainResult<()> {
                $trainer::write_samples(self, path)
            }
            fn write_loss_plot(&self) -> s2m_train::TrainResult<()> {
                $trainer::write_loss_plot(self)
            }
        }
    };
}
pub(crate) use impl_train_loop;
