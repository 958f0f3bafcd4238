//! Training S (mmdetection `SOLOV2Head.loss_by_feat` + the reference's recipe, A7/A10) on
//! annotated images read through [`SegDataset`] (the CLI passes the phantom's `seg_train`).
//!
//! One step: `batch` samples in a seeded epoch order, each augmented ([`super::data`]) with
//! draws from the training RNG; targets ([`build_targets`]); focal + 3 x Dice ([`solo_loss`]);
//! backward; gradient clipping (L2 35, as the reference); AdamW step.
//!
//! Optimiser (NOTE: a deliberate deviation): the reference trains with SGD (lr 0.01 for a
//! batch of 16, momentum 0.9, weight decay 1e-4), a 500-iteration linear warm-up and the
//! 3x schedule (36 epochs, lr x 0.1 at epochs 27 and 33), from ImageNet weights. Here the
//! backbone starts from scratch and the CPU budget is a few thousand steps, for which AdamW
//! converges much faster; the schedule keeps the reference's shape: linear warm-up from
//! `warmup_ratio`, then lr x `decay_factor` at 3/4 and 11/12 of `steps`.
//!
//! Frozen parts: BatchNorm running statistics are never optimised (they are `Var`s of the
//! `VarMap` but are left out of the optimiser); `frozen_stages` (reference: 1 = stem + layer1)
//! also keeps those backbone parameters out. [`BackboneNorm::Frozen`] is the reference's
//! `norm_eval=True` (for pretrained backbones); [`BackboneNorm::BatchStats`] (default here)
//! normalises with batch statistics because a backbone trained from scratch has no
//! statistics to freeze.
//!
//! Everything that makes a run reproducible lives in the checkpoint (weights with BN running
//! statistics, AdamW moments, the training RNG position, the step, the training time): a run
//! resumed from step k continues bit for bit as the uninterrupted run (tested).
//!
//! ```text
//! sketch2medi solov2 train --data data/seg128 --out runs/solov2 --steps 3000 --max-minutes 40
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use candle_nn::VarMap;
use s2m_core::rng::{Rng, derive_seed, rng_from_seed};
use s2m_train::Schedule;
use s2m_train::checkpoint::{Checkpoint, RngState};
use s2m_train::logcsv::CsvLogger;
use s2m_train::optim::{Adam, AdamConfig, varmap_named_vars};
use s2m_train::resume::ResumeReport;
use s2m_train::run::{EpochOrder, checkpoint_meta, scalar, write_loss_plot};
use serde::{Deserialize, Serialize};

use super::config::SoloV2Config;
use super::data::{AugmentConfig, SegDataset, augment, gt_instances, normalize_images};
use super::error::SoloError;
use super::export::{ExportInfo, export_model};
use super::loss::solo_loss;
use super::model::SoloV2;
use super::targets::build_targets;

pub use s2m_train::TrainError;
pub use s2m_train::run::StopReason;

/// Result alias of the trainer.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl From<SoloError> for TrainError {
    fn from(e: SoloError) -> Self {
        Self::model(e)
    }
}

/// How the backbone's BatchNorm layers normalise during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneNorm {
    /// Frozen running statistics (mmdet `norm_eval=True`; for a pretrained backbone).
    Frozen,
    /// Batch statistics, running statistics updated (PyTorch train mode; from scratch).
    BatchStats,
}

/// Hyper-parameters of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The network.
    pub model: SoloV2Config,
    /// Images per step.
    pub batch: usize,
    /// Length of the schedule (the decays happen at 3/4 and 11/12 of it).
    pub steps: u64,
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Linear warm-up length in steps.
    pub warmup_steps: u64,
    /// Warm-up start as a fraction of `lr` (mmdet 3.x: 1/3; old SOLO code: 0.01).
    pub warmup_ratio: f64,
    /// Fractions of `steps` where the lr is multiplied by `decay_factor` (3x schedule: 27/36,
    /// 33/36).
    pub decay_at: Vec<f64>,
    /// Step decay factor (0.1).
    pub decay_factor: f64,
    /// Gradient clipping: max global L2 norm (35; 0 disables).
    pub grad_clip: f64,
    /// Backbone stages kept out of the optimiser (0 = none; reference 1 = stem + layer1).
    pub frozen_stages: usize,
    /// Backbone BatchNorm mode.
    pub backbone_norm: BackboneNorm,
    /// Augmentation.
    pub augment: AugmentConfig,
    /// Base seed (initial weights, data order, augmentation) and the cadences of checkpoints,
    /// `<out>/log.csv` rows and `<out>/loss.png` redraws (`sample_every`: a SOLOv2 run draws no
    /// samples). Top-level keys of the JSON, where the redraw cadence is named `plot_every`.
    #[serde(flatten, with = "plot_schedule")]
    pub schedule: Schedule,
}

/// The default [`TrainConfig::schedule`]: a checkpoint every 200 steps, loss curves every 100.
fn default_schedule() -> Schedule {
    Schedule {
        sample_every: 100,
        checkpoint_every: 200,
        ..Schedule::default()
    }
}

/// The JSON form of SOLOv2's schedule: the keys `seed`, `checkpoint_every`, `keep_checkpoints`,
/// `log_every`, `plot_every` (= [`Schedule::sample_every`]), missing keys from
/// [`default_schedule`].
mod plot_schedule {
    use s2m_train::Schedule;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(default)]
    struct PlotSchedule {
        seed: u64,
        checkpoint_every: u64,
        keep_checkpoints: usize,
        log_every: u64,
        plot_every: u64,
    }

    impl Default for PlotSchedule {
        fn default() -> Self {
            (&super::default_schedule()).into()
        }
    }

    impl From<&Schedule> for PlotSchedule {
        fn from(s: &Schedule) -> Self {
            Self {
                seed: s.seed,
                checkpoint_every: s.checkpoint_every,
                keep_checkpoints: s.keep_checkpoints,
                log_every: s.log_every,
                plot_every: s.sample_every,
            }
        }
    }

    pub fn serialize<S: Serializer>(s: &Schedule, ser: S) -> Result<S::Ok, S::Error> {
        PlotSchedule::from(s).serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Schedule, D::Error> {
        let p = PlotSchedule::deserialize(de)?;
        Ok(Schedule {
            seed: p.seed,
            sample_every: p.plot_every,
            checkpoint_every: p.checkpoint_every,
            keep_checkpoints: p.keep_checkpoints,
            log_every: p.log_every,
        })
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: SoloV2Config::phantom_r18(),
            batch: 8,
            steps: 3000,
            lr: 1e-3,
            weight_decay: 1e-4,
            warmup_steps: 200,
            warmup_ratio: 0.01,
            decay_at: vec![27.0 / 36.0, 33.0 / 36.0],
            decay_factor: 0.1,
            grad_clip: 35.0,
            frozen_stages: 0,
            backbone_norm: BackboneNorm::BatchStats,
            augment: AugmentConfig::default(),
            schedule: default_schedule(),
        }
    }
}

impl TrainConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let bad = |m: String| Err(TrainError::Config(m));
        if self.schedule.sample_every == 0 {
            return bad("plot_every must be >= 1".into());
        }
        self.schedule.validate()?;
        if self.batch == 0 {
            return bad("batch must be at least 1".into());
        }
        if self.batch == 1 && self.backbone_norm == BackboneNorm::BatchStats {
            return bad("batch statistics need a batch of at least 2".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr = {} must be positive", self.lr));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad(format!(
                "warmup_ratio = {} must be in [0, 1]",
                self.warmup_ratio
            ));
        }
        if self.decay_at.iter().any(|f| !(0.0..=1.0).contains(f)) {
            return bad("decay_at fractions must lie in [0, 1]".into());
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return bad(format!("grad_clip = {} must be >= 0", self.grad_clip));
        }
        if self.frozen_stages > 4 {
            return bad(format!("frozen_stages = {} (0..=4)", self.frozen_stages));
        }
        if !(0.0..=1.0).contains(&self.augment.flip) {
            return bad("augment.flip must be a probability".into());
        }
        Ok(())
    }

    /// The learning rate of step `step` (0-based): linear warm-up, then step decays.
    pub fn lr_at(&self, step: u64) -> f64 {
        let warm = if step < self.warmup_steps {
            let k = (1.0 - step as f64 / self.warmup_steps as f64) * (1.0 - self.warmup_ratio);
            1.0 - k
        } else {
            1.0
        };
        let passed = self
            .decay_at
            .iter()
            .filter(|f| step >= (**f * self.steps as f64).round() as u64)
            .count();
        self.lr * warm * self.decay_factor.powi(passed as i32)
    }
}

/// Whether a `VarMap` entry is optimised: never BN running statistics, never the frozen stages.
pub fn is_trainable(name: &str, frozen_stages: usize) -> bool {
    if name.ends_with(".running_mean") || name.ends_with(".running_var") {
        return false;
    }
    if frozen_stages >= 1
        && (name.starts_with("backbone.conv1.") || name.starts_with("backbone.bn1."))
    {
        return false;
    }
    !(1..=frozen_stages).any(|s| name.starts_with(&format!("backbone.layer{s}.")))
}

/// Losses of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Steps done after this one.
    pub step: u64,
    /// Total loss.
    pub loss: f64,
    /// Focal (category) part.
    pub cls: f64,
    /// Weighted Dice (mask) part.
    pub mask: f64,
    /// Positive cells in the batch.
    pub num_pos: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Wall time of the step.
    pub seconds: f64,
}

const LOG_COLUMNS: [&str; 7] = [
    "loss",
    "cls",
    "mask",
    "num_pos",
    "lr",
    "grad_norm",
    "sec_per_step",
];
const DATA_STREAM: u64 = 0x5E6D;
const INIT_STREAM: u64 = 0x1417;
const TRAIN_STREAM: u64 = 0x7EA1;
const TRAIN_RNG: &str = "train";
const TRAIN_SECONDS: &str = "train_seconds";

/// A SOLOv2 training run in a folder: `checkpoints/`, `log.csv`, `loss.png`.
pub struct Trainer {
    cfg: TrainConfig,
    out: PathBuf,
    device: Device,
    model: SoloV2,
    vars: VarMap,
    opt: Adam,
    rng: Rng,
    step: u64,
    train_seconds: f64,
    logger: CsvLogger,
    order: EpochOrder,
    resume_report: ResumeReport,
}

impl Trainer {
    /// Opens the run in `out`: resumes from its latest checkpoint (whose training config must
    /// equal `cfg`, apart from the schedule length and logging intervals), else starts from
    /// seeded initial weights, with the backbone optionally taken from `backbone_weights`
    /// (torchvision ResNet names; `fc.*` ignored).
    pub fn open(
        cfg: TrainConfig,
        out: impl AsRef<Path>,
        backbone_weights: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let out = out.as_ref().to_path_buf();
        let ck_dir = out.join("checkpoints");
        std::fs::create_dir_all(&ck_dir).map_err(|e| s2m_core::CoreError::io(&ck_dir, e))?;
        let (model, vars) = s2m_core::init::seeded_var_map(
            derive_seed(cfg.schedule.seed, INIT_STREAM, 0),
            DType::F32,
            device,
            |vb| SoloV2::new(cfg.model.clone(), vb),
        )?;
        if let Some(path) = backbone_weights {
            load_backbone(&vars, path, device)?;
        }
        let trainable: Vec<_> = varmap_named_vars(&vars)
            .into_iter()
            .filter(|(n, _)| is_trainable(n, cfg.frozen_stages))
            .collect();
        let adam = AdamConfig {
            lr: cfg.lr_at(0),
            weight_decay: cfg.weight_decay,
            ..AdamConfig::default()
        };
        let mut opt = Adam::new(trainable, adam)?;
        let mut rng = rng_from_seed(derive_seed(cfg.schedule.seed, TRAIN_STREAM, 0));
        let (mut step, mut train_seconds) = (0, 0.0);
        let (found, resume_report) = s2m_train::resume::open_run(&out)?;
        if let Some((path, ck)) = found {
            // The total step count may change (the schedule's length), like the reporting
            // cadences (here `plot_every`); everything else that shapes the weights must be the
            // checkpoint's.
            let mut may_change = s2m_train::resume::MAY_CHANGE.to_vec();
            may_change.extend(["steps", "plot_every"]);
            s2m_train::resume::check_run_config(&path, &ck, &cfg, &may_change)?;
            ck.restore_varmap("model", &vars)?;
            ck.restore_optimizer("opt", &mut opt)?;
            rng = ck.rng(TRAIN_RNG)?;
            step = ck.meta.step;
            train_seconds = ck
                .meta
                .extra
                .get(TRAIN_SECONDS)
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0);
        }
        let log_path = out.join("log.csv");
        let logger = if step > 0 {
            CsvLogger::resume(&log_path, &LOG_COLUMNS, step)?
        } else {
            CsvLogger::create(&log_path, &LOG_COLUMNS)?
        };
        let cfg_seed = cfg.schedule.seed;
        Ok(Self {
            cfg,
            out,
            device: device.clone(),
            model,
            vars,
            opt,
            rng,
            step,
            train_seconds,
            logger,
            order: EpochOrder::with_stream(cfg_seed, DATA_STREAM),
            resume_report,
        })
    }

    /// What opening the run folder skipped (damaged checkpoints) and removed (leftovers of
    /// killed processes).
    pub fn resume_report(&self) -> &ResumeReport {
        &self.resume_report
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The model being trained.
    pub fn model(&self) -> &SoloV2 {
        &self.model
    }

    /// Its parameters and buffers (mmdet names).
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Training seconds so far, over all resumed pieces of the run.
    pub fn train_seconds(&self) -> f64 {
        self.train_seconds
    }

    /// Names of the optimised parameters.
    pub fn trainable_names(&self) -> Vec<&str> {
        self.opt.names()
    }

    fn diverged(&self, what: &str, value: f64) -> TrainError {
        TrainError::Diverged {
            step: self.step,
            what: what.to_string(),
            value,
            dir: self.out.join("checkpoints"),
        }
    }

    /// One optimisation step.
    pub fn train_step(&mut self, data: &dyn SegDataset) -> Result<StepStats> {
        let start = Instant::now();
        let n = data.len();
        if n == 0 {
            return Err(SoloError::Input("the training set is empty".into()).into());
        }
        let size = self.cfg.model.input_size as u32;
        let indices = self.order.indices(self.step, self.cfg.batch, n);
        let mut samples = Vec::with_capacity(indices.len());
        let mut targets = Vec::with_capacity(indices.len());
        for &i in &indices {
            let s = data.sample(i)?;
            s.validate(&format!("training sample {i}"))?;
            let s = augment(&s, size, &self.cfg.augment, &mut self.rng);
            let hw = (size as usize, size as usize);
            targets.push(build_targets(
                &gt_instances(&s.labels),
                hw,
                &self.cfg.model,
            )?);
            samples.push(s);
        }
        let m = &self.cfg.model;
        let images: Vec<_> = samples.iter().map(|s| &s.image).collect();
        let x = normalize_images(&images, m.pixel_mean, m.pixel_std, &self.device)?;
        let batch_stats = self.cfg.backbone_norm == BackboneNorm::BatchStats;
        let out = self.model.forward_t(&x, batch_stats)?;
        let losses = solo_loss(&out, &targets, m)?;
        let loss = scalar(&losses.total)?;
        if !loss.is_finite() {
            return Err(self.diverged("the loss", loss));
        }
        let mut grads = losses.total.backward()?;
        let grad_norm = if self.cfg.grad_clip > 0.0 {
            self.opt.clip_grad_norm(&mut grads, self.cfg.grad_clip)?
        } else {
            let vars: Vec<_> = self.opt.vars().map(|(_, v)| v.clone()).collect();
            s2m_train::optim::grad_norm(&grads, &vars.iter().collect::<Vec<_>>())?
        };
        if !grad_norm.is_finite() {
            return Err(self.diverged("the gradient norm", grad_norm));
        }
        let lr = self.cfg.lr_at(self.step);
        self.opt.set_lr(lr)?;
        self.opt.step(&grads)?;
        self.step += 1;
        let stats = StepStats {
            step: self.step,
            loss,
            cls: scalar(&losses.cls)?,
            mask: scalar(&losses.mask)?,
            num_pos: losses.num_pos,
            lr,
            grad_norm,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.train_seconds += stats.seconds;
        if self.cfg.schedule.log_every > 0 && self.step.is_multiple_of(self.cfg.schedule.log_every)
        {
            self.logger.log(
                self.step,
                &[
                    stats.loss,
                    stats.cls,
                    stats.mask,
                    stats.num_pos as f64,
                    stats.lr,
                    stats.grad_norm,
                    stats.seconds,
                ],
            )?;
        }
        Ok(stats)
    }

    /// Writes a checkpoint of the whole run state to `<out>/checkpoints` (atomic, rotated).
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let mut meta = checkpoint_meta(self.step, self.cfg.schedule.seed, &self.cfg, &[])?;
        meta.rng
            .insert(TRAIN_RNG.into(), RngState::capture(&self.rng));
        meta.extra
            .insert(TRAIN_SECONDS.into(), self.train_seconds.into());
        let mut ck = Checkpoint::new(meta);
        ck.add_varmap("model", &self.vars)?;
        ck.add_optimizer("opt", &self.opt)?;
        Ok(ck.save_in(
            self.out.join("checkpoints"),
            self.cfg.schedule.keep_checkpoints.max(1),
        )?)
    }

    /// Redraws `<out>/loss.png` from `<out>/log.csv` (loss, its parts and the lr).
    pub fn write_loss_plot(&self) -> Result<()> {
        write_loss_plot(&self.out, "SOLOv2 training", &["loss", "cls", "mask", "lr"])
    }

    /// Trains until `until_step` or until another step would exceed `budget` (wall clock from
    /// this call), with checkpoints and curves on schedule and a final checkpoint and plot.
    /// `on_step` sees every step's stats (progress bars).
    pub fn train(
        &mut self,
        data: &dyn SegDataset,
        until_step: u64,
        budget: Option<Duration>,
        mut on_step: impl FnMut(&StepStats),
    ) -> Result<StopReason> {
        let start = Instant::now();
        let mut last = 0.0;
        let mut reason = StopReason::Finished;
        while self.step < until_step {
            if let Some(b) = budget
                && start.elapsed().as_secs_f64() + last > b.as_secs_f64()
            {
                reason = StopReason::Budget;
                break;
            }
            let stats = self.train_step(data)?;
            last = stats.seconds;
            on_step(&stats);
            let s = self.step;
            if self.cfg.schedule.checkpoint_every > 0
                && s.is_multiple_of(self.cfg.schedule.checkpoint_every)
            {
                self.save_checkpoint()?;
            }
            if self.cfg.schedule.sample_every > 0
                && s.is_multiple_of(self.cfg.schedule.sample_every)
            {
                self.write_loss_plot()?;
            }
        }
        self.save_checkpoint()?;
        self.write_loss_plot()?;
        Ok(reason)
    }

    /// Writes `solov2.safetensors` + `solov2.json` to `dir` ([`super::export`]).
    pub fn export(&self, dir: impl AsRef<Path>, data: &str) -> Result<ExportInfo> {
        let info = ExportInfo::new(
            self.cfg.model.clone(),
            data,
            self.step,
            self.train_seconds,
            serde_json::to_value(&self.cfg).unwrap_or_default(),
        );
        export_model(&self.vars, &info, dir)?;
        Ok(info)
    }
}

/// Copies torchvision-named ResNet weights into the `backbone.*` vars (shapes checked; keys
/// the backbone does not have, e.g. `fc.*`, are ignored; a backbone var missing from the file
/// is an error naming it).
pub fn load_backbone(vars: &VarMap, path: &Path, device: &Device) -> Result<()> {
    let tensors = backbones::weights::read_safetensors(path, device).map_err(SoloError::from)?;
    let named = varmap_named_vars(vars);
    let mut updates = Vec::new();
    for (name, var) in named.iter() {
        let Some(key) = name.strip_prefix("backbone.") else {
            continue;
        };
        let t = tensors
            .get(key)
            .ok_or_else(|| TrainError::Config(format!("{}: no tensor `{key}`", path.display())))?;
        if t.dims() != var.dims() {
            return Err(TrainError::Config(format!(
                "{}: `{key}` has shape {:?}, the backbone needs {:?}",
                path.display(),
                t.dims(),
                var.dims()
            )));
        }
        updates.push((var, t.to_dtype(var.dtype())?));
    }
    for (var, t) in updates {
        var.set(&t)?;
    }
    Ok(())
}
