//! The training loop shared by the trainers: a run lives in one folder (`checkpoints/`,
//! `log.csv`, `loss.png`, `samples/`, `export/`), checkpoints are atomic and rotated
//! ([`crate::checkpoint`]), the data order is a pure function of `(seed, epoch)`
//! ([`EpochOrder`]) so a resumed run sees exactly the batches an uninterrupted one would, and a
//! non-finite loss stops the run with [`TrainError::Diverged`].
//!
//! A trainer implements [`TrainLoop`]; [`run_training`] drives it until a step or a wall-clock
//! budget, with checkpoints, sample strips and loss curves on schedule:
//!
//! ```ignore
//! let reason = run_training(&mut trainer, &data, 10_000, Some(budget), |stats| bar.set(stats))?;
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;
use s2m_core::rng::{derive_seed, seeded_permutation};
use serde::Serialize;

use crate::checkpoint::CheckpointMeta;
use crate::error::{TrainError, TrainResult};
use crate::logcsv::CsvLogger;

/// A checkpoint header with the run's step, seed, training config and the hashes of the frozen
/// networks it depends on (`extra`).
pub fn checkpoint_meta<C: Serialize>(
    step: u64,
    seed: u64,
    config: &C,
    hashes: &[(&str, &str)],
) -> TrainResult<CheckpointMeta> {
    let mut meta = CheckpointMeta::new(step, seed);
    meta.config = serde_json::to_value(config)
        .map_err(|e| TrainError::Config(format!("cannot serialise the config: {e}")))?;
    for (k, v) in hashes {
        meta.extra.insert(k.to_string(), (*v).into());
    }
    Ok(meta)
}

/// Seeded epoch orders: sample `i` of step `s` is a pure function of `(seed, epoch)`.
#[derive(Debug, Clone)]
pub struct EpochOrder {
    seed: u64,
    stream: u64,
    cache: Option<(u64, Vec<usize>)>,
}

/// Stream id of the data order (the default of [`EpochOrder::new`]).
pub const DATA_STREAM: u64 = 0xDA7A;

impl EpochOrder {
    /// The order of a run with base seed `seed` on the stream [`DATA_STREAM`].
    pub fn new(seed: u64) -> Self {
        Self::with_stream(seed, DATA_STREAM)
    }

    /// The order on another stream id (a trainer whose checkpoints were made with it).
    pub fn with_stream(seed: u64, stream: u64) -> Self {
        Self {
            seed,
            stream,
            cache: None,
        }
    }

    /// Indices of the `batch` pairs of `step` in a dataset of `n` pairs.
    pub fn indices(&mut self, step: u64, batch: usize, n: usize) -> Vec<usize> {
        let b = batch as u64;
        (0..b)
            .map(|i| {
                let pos = step * b + i;
                let epoch = pos / n as u64;
                let within = (pos % n as u64) as usize;
                if self.cache.as_ref().map(|(e, _)| *e) != Some(epoch) {
                    let seed = derive_seed(self.seed, self.stream, epoch);
                    self.cache = Some((epoch, seeded_permutation(n, seed)));
                }
                self.cache
                    .as_ref()
                    .map(|(_, o)| o[within])
                    .unwrap_or(within)
            })
            .collect()
    }
}

/// Creates `out`, `out/checkpoints` and `out/samples`.
pub fn create_run_folders(out: &Path) -> TrainResult<()> {
    for dir in [
        out.to_path_buf(),
        out.join("checkpoints"),
        out.join("samples"),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| s2m_core::CoreError::io(&dir, e))?;
    }
    Ok(())
}

/// `out/log.csv`: continued (rows after `step` dropped) when resuming, else created.
pub fn open_log(out: &Path, columns: &[&str], step: u64) -> TrainResult<CsvLogger> {
    let path = out.join("log.csv");
    Ok(if step > 0 && path.exists() {
        CsvLogger::resume(&path, columns, step)?
    } else {
        CsvLogger::create(&path, columns)?
    })
}

/// Redraws `out/loss.png` from `out/log.csv` (one panel per column with finite values).
#[cfg(feature = "plot")]
pub fn write_loss_plot(out: &Path, title: &str, columns: &[&str]) -> TrainResult<()> {
    Ok(crate::plot::plot_training_log(
        out.join("log.csv"),
        out.join("loss.png"),
        title,
        columns,
    )?)
}

/// `Err(Diverged)` for a non-finite value.
pub fn check_finite(step: u64, what: &str, value: f64, out: &Path) -> TrainResult<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(TrainError::Diverged {
            step,
            what: what.to_string(),
            value,
            dir: out.join("checkpoints"),
        })
    }
}

/// A scalar tensor as f64.
pub fn scalar(t: &Tensor) -> TrainResult<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// The vars of `varmap` an optimiser should update: all but BatchNorm running statistics
/// (which train-mode BatchNorm updates in place and checkpoints save with the model).
pub fn trainable_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    crate::optim::varmap_named_vars(varmap)
        .into_iter()
        .filter(|(n, _)| !(n.ends_with("running_mean") || n.ends_with("running_var")))
        .collect()
}

/// Seconds since the Unix epoch (export timestamps).
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why [`run_training`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The requested step was reached.
    Finished,
    /// The wall-clock budget ran out (at a step boundary).
    Budget,
}

/// A trainer that [`run_training`] can drive; `'d` is the lifetime of the training data (a
/// trait object such as `dyn ImageDataset + 'd`).
pub trait TrainLoop<'d> {
    /// What one step reports.
    type Stats;
    /// The trainer's error (the harness's own errors convert into it).
    type Error: From<TrainError>;
    /// The training data (a trait object of the trainer's dataset trait).
    type Data: ?Sized + 'd;
    /// Steps completed so far.
    fn step(&self) -> u64;
    /// The run folder.
    fn out_dir(&self) -> &Path;
    /// `(checkpoint_every, sample_every)`: the configs' `Schedule` keeps both >= 1 (`run_training`
    /// itself treats 0 as "only at the end").
    fn schedule(&self) -> (u64, u64);
    /// Prepares the run before the first step (e.g. the fixed validation samples of the
    /// sample strips).
    fn prepare(&mut self, data: &Self::Data) -> Result<(), Self::Error>;
    /// One optimisation step.
    fn train_step(&mut self, data: &Self::Data) -> Result<Self::Stats, Self::Error>;
    /// Writes a checkpoint of the whole run state (atomic, rotated); returns its path.
    fn save_checkpoint(&self) -> Result<PathBuf, Self::Error>;
    /// Writes the sample strip to `path`.
    fn write_samples(&self, path: &Path) -> Result<(), Self::Error>;
    /// Redraws the loss curves.
    fn write_loss_plot(&self) -> Result<(), Self::Error>;
}

/// Trains until `until_step` or until `budget` of wall-clock time has passed (checked at step
/// boundaries), with checkpoints, sample strips and loss curves on schedule, then a final
/// checkpoint, strip (`samples/final.png`) and curve. `on_step` sees every step's stats.
pub fn run_training<'d, T: TrainLoop<'d>>(
    trainer: &mut T,
    data: &T::Data,
    until_step: u64,
    budget: Option<Duration>,
    mut on_step: impl FnMut(&T::Stats),
) -> Result<StopReason, T::Error> {
    trainer.prepare(data)?;
    let started = Instant::now();
    let (checkpoint_every, sample_every) = trainer.schedule();
    let mut reason = StopReason::Finished;
    while trainer.step() < until_step {
        if budget.is_some_and(|b| started.elapsed() >= b) {
            reason = StopReason::Budget;
            break;
        }
        let stats = trainer.train_step(data)?;
        on_step(&stats);
        let s = trainer.step();
        if checkpoint_every > 0 && s.is_multiple_of(checkpoint_every) {
            trainer.save_checkpoint()?;
        }
        if sample_every > 0 && s.is_multiple_of(sample_every) {
            let path = trainer
                .out_dir()
                .join("samples")
                .join(format!("step{s:07}.png"));
            trainer.write_samples(&path)?;
            trainer.write_loss_plot()?;
        }
    }
    trainer.save_checkpoint()?;
    let final_png = trainer.out_dir().join("samples").join("final.png");
    trainer.write_samples(&final_png)?;
    trainer.write_loss_plot()?;
    Ok(reason)
}
