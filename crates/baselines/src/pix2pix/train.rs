//! Training pix2pix as the official `train.py --model pix2pix` does, on the workspace's loop
//! (`s2m_train::run`): seeded, checkpoints with exact resume, CSV log, loss curves, sample strips.
//!
//! One step (junyanz `Pix2PixModel.optimize_parameters`):
//! 1. `fake = G(sketch)` in train mode (batch statistics, dropout masks from the run's RNG);
//! 2. D: `0.5 * [BCE(D(sketch, fake.detach()), 0) + BCE(D(sketch, image), 1)]`, Adam step;
//! 3. G: `BCE(D(sketch, fake), 1) + lambda_L1 * |fake - image|_1` with the *updated* D, Adam
//!    step (D's gradients from this loss are discarded, as `set_requires_grad(D, False)`).
//!
//! Adam lr 2e-4, betas (0.5, 0.999), no weight decay, for G and D. The learning rate follows
//! the official `linear` policy per epoch (an epoch = ceil(pairs / batch) steps): constant for
//! `n_epochs`, then `1 - (e - n_epochs) / (n_epochs_decay + 1)` in epoch e (1-based).
//! Sample strips (`sketch | G(sketch) | image`) use eval mode, so writing them changes no state
//! (a resumed run is bit-identical to an uninterrupted one).
//!
//! NOTE: the official data pipeline (resize 286 + random crop 256 + flip) is not reproduced:
//! the pairs come at the model's size from [`PairedData`] (augmentation, if any, is the
//! dataset's, drawn from the step as `load_for_step` allows).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use s2m_core::rng::{Rng, derive_seed, rng_from_seed};
use s2m_train::logcsv::CsvLogger;
use s2m_train::optim::Adam;
use s2m_train::run::{EpochOrder, check_finite, create_run_folders, open_log, scalar};
pub use s2m_train::run::{StopReason, run_training};
use s2m_train::{Schedule, TrainError, TrainResult};
use serde::{Deserialize, Serialize};

use crate::layers::{ForwardMode, NormMode};
use crate::pix2pix::{Pix2Pix, Pix2PixConfig, loss};
use crate::train_common::{
    impl_train_loop, latest_resumable, linear_lr_factor, new_checkpoint, official_adam,
    save_rotated, validate_optim, write_strip,
};
use crate::weights::trainable_vars;
use s2m_train::resume::ResumeReport;

const TRAIN_STREAM: u64 = 0x5020;
const TRAIN_RNG: &str = "train";

/// Columns of `log.csv`.
pub const LOG_COLUMNS: [&str; 8] = [
    "loss_d",
    "loss_g",
    "loss_g_gan",
    "loss_g_l1",
    "d_real",
    "d_fake",
    "lr",
    "seconds",
];

/// (sketch, image) pairs for paired training.
pub trait PairedData: Sync {
    /// Number of pairs.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(sketches [B, input_nc, S, S], images [B, output_nc, S, S])`, both in [-1, 1], of the
    /// pairs at `indices` for training step `step` (0-based; augmenting datasets draw from it).
    fn load_for_step(
        &self,
        step: u64,
        indices: &[usize],
        device: &Device,
    ) -> TrainResult<(Tensor, Tensor)>;
    /// What the data is (folder, split, count), for the logs and exports.
    fn description(&self) -> String {
        format!("{} pairs", self.len())
    }
}

/// Pairs held in memory (tests, small experiments).
#[derive(Debug, Clone)]
pub struct TensorPairs {
    /// `[N, input_nc, S, S]`.
    pub sketches: Tensor,
    /// `[N, output_nc, S, S]`.
    pub images: Tensor,
}

impl PairedData for TensorPairs {
    fn len(&self) -> usize {
        self.sketches.dim(0).unwrap_or(0)
    }

    fn load_for_step(
        &self,
        _step: u64,
        indices: &[usize],
        device: &Device,
    ) -> TrainResult<(Tensor, Tensor)> {
        let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let idx = Tensor::new(idx, self.sketches.device())?;
        Ok((
            self.sketches.index_select(&idx, 0)?.to_device(device)?,
            self.images.index_select(&idx, 0)?.to_device(device)?,
        ))
    }
}

/// Hyper-parameters of a pix2pix run (official defaults unless noted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pix2PixTrainConfig {
    pub model: Pix2PixConfig,
    /// Pairs per step (`--batch_size` 1).
    pub batch: usize,
    /// Adam learning rate of G and D (`--lr` 2e-4) and beta1 (`--beta1` 0.5; beta2 0.999).
    pub lr: f64,
    pub beta1: f64,
    /// Epochs at the initial rate (`--n_epochs` 100), then of linear decay (`--n_epochs_decay` 100).
    pub n_epochs: u64,
    pub n_epochs_decay: u64,
    /// Seed and cadences; top-level keys of the JSON.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Rows of the sample strip (the first pairs of the data).
    pub val_samples: usize,
}

impl Default for Pix2PixTrainConfig {
    fn default() -> Self {
        Self {
            model: Pix2PixConfig::narrow_64(),
            batch: 1,
            lr: 2e-4,
            beta1: 0.5,
            n_epochs: 100,
            n_epochs_decay: 100,
            schedule: Schedule::default(),
            val_samples: 4,
        }
    }
}

impl Pix2PixTrainConfig {
    pub fn validate(&self) -> TrainResult<()> {
        self.model.validate()?;
        self.schedule.validate()?;
        validate_optim(self.batch, self.lr, self.beta1)
    }

    /// The official `linear` policy: the learning-rate factor in (1-based) epoch `epoch`.
    pub fn lr_factor(&self, epoch: u64) -> f64 {
        linear_lr_factor(epoch, self.n_epochs, self.n_epochs_decay)
    }
}

/// What one step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pix2PixStepStats {
    pub step: u64,
    pub loss_d: f64,
    pub loss_g: f64,
    pub loss_g_gan: f64,
    /// `|fake - image|_1` (unweighted).
    pub loss_g_l1: f64,
    /// Mean D logits on the real and the (detached) fake pairs.
    pub d_real: f64,
    pub d_fake: f64,
    pub lr: f64,
    pub seconds: f64,
}

/// A pix2pix run in a folder: `checkpoints/`, `log.csv`, `loss.png`, `samples/`.
pub struct Pix2PixTrainer {
    cfg: Pix2PixTrainConfig,
    out: PathBuf,
    device: Device,
    model: Pix2Pix,
    g_opt: Adam,
    d_opt: Adam,
    rng: Rng,
    step: u64,
    logger: CsvLogger,
    order: EpochOrder,
    val: Option<(Tensor, Tensor)>,
    resume_report: ResumeReport,
}

impl Pix2PixTrainer {
    /// Opens the run in `out`: resumes from its newest checkpoint that loads (the training
    /// config must be the same but for the reporting cadences), else starts fresh from the schedule's seed (official normal(0, 0.02) init).
    pub fn open(
        cfg: Pix2PixTrainConfig,
        out: impl AsRef<Path>,
        device: &Device,
    ) -> TrainResult<Self> {
        cfg.validate()?;
        let out = out.as_ref().to_path_buf();
        create_run_folders(&out)?;
        let model = Pix2Pix::seeded(&cfg.model, cfg.schedule.seed, device)?;
        let adam = official_adam(cfg.lr, cfg.beta1);
        let mut g_opt = Adam::new(trainable_vars(&model.g_vars), adam)?;
        let mut d_opt = Adam::new(trainable_vars(&model.d_vars), adam)?;
        let mut rng = rng_from_seed(derive_seed(cfg.schedule.seed, TRAIN_STREAM, 0));
        let mut step = 0;
        let (found, resume_report) = latest_resumable(&out, &cfg)?;
        if let Some(ck) = found {
            ck.restore_varmap("g", &model.g_vars)?;
            ck.restore_varmap("d", &model.d_vars)?;
            ck.restore_optimizer("g_opt", &mut g_opt)?;
            ck.restore_optimizer("d_opt", &mut d_opt)?;
            rng = ck.rng(TRAIN_RNG)?;
            step = ck.meta.step;
        }
        let logger = open_log(&out, &LOG_COLUMNS, step)?;
        Ok(Self {
            order: EpochOrder::new(cfg.schedule.seed),
            cfg,
            out,
            device: device.clone(),
            model,
            g_opt,
            d_opt,
            rng,
            step,
            logger,
            val: None,
            resume_report,
        })
    }

    /// What opening the run folder skipped (damaged checkpoints) and removed (leftovers of
    /// killed processes).
    pub fn resume_report(&self) -> &ResumeReport {
        &self.resume_report
    }

    /// Steps completed so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn config(&self) -> &Pix2PixTrainConfig {
        &self.cfg
    }

    pub fn model(&self) -> &Pix2Pix {
        &self.model
    }

    /// The learning rate of the step after `steps` completed ones, for `n` pairs.
    pub fn lr_at(&self, steps: u64, n: usize) -> f64 {
        let per_epoch = n.div_ceil(self.cfg.batch).max(1) as u64;
        self.cfg.lr * self.cfg.lr_factor(steps / per_epoch + 1)
    }

    /// One step: D, then G (see the module doc).
    pub fn train_step(&mut self, data: &dyn PairedData) -> TrainResult<Pix2PixStepStats> {
        let start = Instant::now();
        let n = data.len();
        if n == 0 {
            return Err(TrainError::Data("the dataset is empty".into()));
        }
        let lr = self.lr_at(self.step, n);
        self.g_opt.set_lr(lr)?;
        self.d_opt.set_lr(lr)?;
        let indices = self.order.indices(self.step, self.cfg.batch, n);
        let (sketch, image) = data.load_for_step(self.step, &indices, &self.device)?;

        let fake = self
            .model
            .generate(&sketch, &mut ForwardMode::train(&mut self.rng))?;
        // D step.
        let d_fake = self
            .model
            .discriminate(&sketch, &fake.detach(), NormMode::Train)?;
        let d_real = self.model.discriminate(&sketch, &image, NormMode::Train)?;
        let loss_d = loss::d_loss(&d_real, &d_fake)?;
        let loss_d_v = scalar(&loss_d)?;
        check_finite(self.step, "pix2pix D loss", loss_d_v, &self.out)?;
        self.d_opt.step(&loss_d.backward()?)?;
        // G step with the updated D.
        let d_fake_g = self.model.discriminate(&sketch, &fake, NormMode::Train)?;
        let lg = loss::g_loss(&d_fake_g, &fake, &image, self.cfg.model.lambda_l1)?;
        let loss_g_v = scalar(&lg.total)?;
        check_finite(self.step, "pix2pix G loss", loss_g_v, &self.out)?;
        self.g_opt.step(&lg.total.backward()?)?;

        self.step += 1;
        let stats = Pix2PixStepStats {
            step: self.step,
            loss_d: loss_d_v,
            loss_g: loss_g_v,
            loss_g_gan: scalar(&lg.gan)?,
            loss_g_l1: scalar(&lg.l1)?,
            d_real: scalar(&d_real.mean_all()?)?,
            d_fake: scalar(&d_fake.mean_all()?)?,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        if self.step.is_multiple_of(self.cfg.schedule.log_every) {
            self.logger.log(
                self.step,
                &[
                    stats.loss_d,
                    stats.loss_g,
                    stats.loss_g_gan,
                    stats.loss_g_l1,
                    stats.d_real,
                    stats.d_fake,
                    stats.lr,
                    stats.seconds,
                ],
            )?;
        }
        Ok(stats)
    }

    /// Writes a checkpoint of the whole run state (G, D with their BatchNorm buffers, both
    /// optimisers, the dropout RNG), atomic and rotated.
    pub fn save_checkpoint(&self) -> TrainResult<PathBuf> {
        let s = &self.cfg.schedule;
        let mut ck = new_checkpoint(self.step, s, &self.cfg, TRAIN_RNG, &self.rng)?;
        ck.add_varmap("g", &self.model.g_vars)?;
        ck.add_varmap("d", &self.model.d_vars)?;
        ck.add_optimizer("g_opt", &self.g_opt)?;
        ck.add_optimizer("d_opt", &self.d_opt)?;
        save_rotated(ck, &self.out, s)
    }

    /// The fixed pairs of the sample strips: the first `val_samples` of `data`.
    pub fn set_validation(&mut self, data: &dyn PairedData) -> TrainResult<()> {
        let k = self.cfg.val_samples.min(data.len());
        if k > 0 {
            let idx: Vec<usize> = (0..k).collect();
            self.val = Some(data.load_for_step(0, &idx, &self.device)?);
        }
        Ok(())
    }

    /// The strip `sketch | G(sketch) | image` of the validation pairs, G in eval mode.
    pub fn write_samples(&self, path: &Path) -> TrainResult<()> {
        let Some((sketch, image)) = &self.val else {
            return Ok(());
        };
        let fake = self.model.generate(sketch, &mut ForwardMode::eval())?;
        write_strip(path, &[sketch, &fake, image])
    }

    /// Redraws `<out>/loss.png`.
    pub fn write_loss_plot(&self) -> TrainResult<()> {
        s2m_train::run::write_loss_plot(&self.out, "pix2pix", &LOG_COLUMNS[..7])
    }
}

impl_train_loop!(Pix2PixTrainer, 'd, dyn PairedData + 'd, Pix2PixStepStats);
