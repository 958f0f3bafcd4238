//! Training CycleGAN as the official `train.py --model cycle_gan` does, on the workspace's loop
//! (`s2m_train::run`): unpaired (the sketch set is domain A, the image set domain B), seeded,
//! checkpoints with exact resume, CSV log, loss curves, sample strips.
//!
//! One step (junyanz `CycleGANModel.optimize_parameters`):
//! 1. `fake_B = G_A(A)`, `rec_A = G_B(fake_B)`, `fake_A = G_B(B)`, `rec_B = G_A(fake_A)` (and the
//!    identity images when lambda_identity > 0);
//! 2. G step: the LSGAN + cycle + identity loss ([`super::loss::g_loss`]), Adam step on G_A and
//!    G_B (D's gradients from this loss are discarded, as `set_requires_grad(D, False)`);
//! 3. D step: `loss_D_A` on (B, pool_B(fake_B)) and `loss_D_B` on (A, pool_A(fake_A)) with the
//!    fakes of step 1, Adam step on D_A and D_B.
//!
//! Adam lr 2e-4, betas (0.5, 0.999), no weight decay (one optimiser per network: Adam is per
//! parameter, so this equals the official chained G and D optimisers). The learning rate follows
//! the official `linear` policy per epoch (constant for `n_epochs`, then
//! `1 - (e - n_epochs) / (n_epochs_decay + 1)` in 1-based epoch e). An epoch is
//! `ceil(max(|A|, |B|) / batch)` steps, as the official unaligned dataset's length.
//!
//! NOTE: the official unaligned loader takes A in order (`index % |A|`) and a uniformly random B;
//! here A follows the workspace's seeded epoch order and B indices are drawn from a stream
//! derived from (seed, step), so a resumed run draws the same B as an uninterrupted one. The
//! pools draw from the run's RNG, saved in checkpoints with their content. The official resize
//! 286 / crop 256 / flip augmentation is not reproduced (images come at the model's size).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::Rng as _;
use s2m_core::rng::{Rng, derive_seed, rng_from_seed};
use s2m_train::checkpoint::Checkpoint;
use s2m_train::logcsv::CsvLogger;
use s2m_train::optim::Adam;
use s2m_train::run::{EpochOrder, check_finite, create_run_folders, open_log, scalar};
pub use s2m_train::run::{StopReason, run_training};
use s2m_train::{Schedule, TrainError, TrainResult};
use serde::{Deserialize, Serialize};

use crate::cyclegan::{CycleGan, CycleGanConfig, ImagePool};
use crate::layers::{ForwardMode, NormMode};
use crate::train_common::{
    impl_train_loop, latest_resumable, linear_lr_factor, new_checkpoint, official_adam,
    save_rotated, validate_optim, write_strip,
};
use crate::weights::trainable_vars;
use s2m_train::resume::ResumeReport;

const POOL_STREAM: u64 = 0xC1C1;
const B_STREAM: u64 = 0xC1C2;
const POOL_RNG: &str = "pool";

/// Columns of `log.csv` (the official loss names, weighted as the official code logs them).
pub const LOG_COLUMNS: [&str; 11] = [
    "loss_d_a",
    "loss_g_a",
    "loss_cycle_a",
    "loss_idt_a",
    "loss_d_b",
    "loss_g_b",
    "loss_cycle_b",
    "loss_idt_b",
    "loss_g",
    "lr",
    "seconds",
];

/// One image set (a domain) for unpaired training.
pub trait ImageSet: Sync {
    /// Number of images.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[B, C, S, S]` in [-1, 1]: the images at `indices`, for training step `step` (0-based;
    /// augmenting sets draw from it).
    fn load_for_step(&self, step: u64, indices: &[usize], device: &Device) -> TrainResult<Tensor>;
    /// What the set is (folder, split, count), for the logs.
    fn description(&self) -> String {
        format!("{} images", self.len())
    }
}

/// Images held in memory (tests, small experiments): `[N, C, S, S]`.
#[derive(Debug, Clone)]
pub struct TensorImages(pub Tensor);

impl ImageSet for TensorImages {
    fn len(&self) -> usize {
        self.0.dim(0).unwrap_or(0)
    }

    fn load_for_step(&self, _step: u64, indices: &[usize], device: &Device) -> TrainResult<Tensor> {
        let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let idx = Tensor::new(idx, self.0.device())?;
        Ok(self.0.index_select(&idx, 0)?.to_device(device)?)
    }
}

/// The two domains of an unpaired run: A (sketches) and B (images).
pub struct Unpaired<'a> {
    pub a: &'a dyn ImageSet,
    pub b: &'a dyn ImageSet,
}

/// Hyper-parameters of a CycleGAN run (official defaults unless noted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CycleGanTrainConfig {
    pub model: CycleGanConfig,
    /// Images per domain per step (`--batch_size` 1).
    pub batch: usize,
    /// Adam learning rate (`--lr` 2e-4) and beta1 (`--beta1` 0.5; beta2 0.999).
    pub lr: f64,
    pub beta1: f64,
    /// Epochs at the initial rate (`--n_epochs` 100), then of linear decay (`--n_epochs_decay` 100).
    pub n_epochs: u64,
    pub n_epochs_decay: u64,
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Rows of the sample strip (the first images of each domain).
    pub val_samples: usize,
}

impl Default for CycleGanTrainConfig {
    fn default() -> Self {
        Self {
            model: CycleGanConfig::narrow_64().with_channels(1, 3),
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

impl CycleGanTrainConfig {
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

/// What one step reports (the official loss names; cycle and identity terms weighted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CycleGanStepStats {
    pub step: u64,
    pub loss_d_a: f64,
    pub loss_g_a: f64,
    pub loss_cycle_a: f64,
    pub loss_idt_a: f64,
    pub loss_d_b: f64,
    pub loss_g_b: f64,
    pub loss_cycle_b: f64,
    pub loss_idt_b: f64,
    pub loss_g: f64,
    pub lr: f64,
    pub seconds: f64,
}

/// A CycleGAN run in a folder: `checkpoints/`, `log.csv`, `loss.png`, `samples/`.
pub struct CycleGanTrainer {
    cfg: CycleGanTrainConfig,
    out: PathBuf,
    device: Device,
    model: CycleGan,
    /// G_A, G_B, D_A, D_B.
    opts: [Adam; 4],
    pool_a: ImagePool,
    pool_b: ImagePool,
    rng: Rng,
    step: u64,
    logger: CsvLogger,
    order: EpochOrder,
    val: Option<(Tensor, Tensor)>,
    resume_report: ResumeReport,
}

fn pool_tensors(pool: &ImagePool) -> Vec<(String, Tensor)> {
    pool.images()
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("{i:03}"), t.clone()))
        .collect()
}

fn restore_pool(ck: &Checkpoint, group: &str, size: usize) -> TrainResult<ImagePool> {
    let mut stored: Vec<(String, Tensor)> = ck.group(group)?.into_iter().collect();
    stored.sort_by(|a, b| a.0.cmp(&b.0));
    let images = stored.into_iter().map(|(_, t)| t).collect();
    Ok(ImagePool::from_images(size, images)?)
}

impl CycleGanTrainer {
    /// Opens the run in `out`: resumes from its newest checkpoint that loads (the training
    /// config must be the same but for the reporting cadences), else starts fresh from the schedule's seed (official normal(0, 0.02) init).
    pub fn open(
        cfg: CycleGanTrainConfig,
        out: impl AsRef<Path>,
        device: &Device,
    ) -> TrainResult<Self> {
        cfg.validate()?;
        let out = out.as_ref().to_path_buf();
        create_run_folders(&out)?;
        let model = CycleGan::seeded(&cfg.model, cfg.schedule.seed, device)?;
        let adam = official_adam(cfg.lr, cfg.beta1);
        let maps = model.named_var_maps();
        let mut opts = [
            Adam::new(trainable_vars(maps[0].1), adam)?,
            Adam::new(trainable_vars(maps[1].1), adam)?,
            Adam::new(trainable_vars(maps[2].1), adam)?,
            Adam::new(trainable_vars(maps[3].1), adam)?,
        ];
        let mut rng = rng_from_seed(derive_seed(cfg.schedule.seed, POOL_STREAM, 0));
        let mut pool_a = ImagePool::new(cfg.model.pool_size);
        let mut pool_b = ImagePool::new(cfg.model.pool_size);
        let mut step = 0;
        let (found, resume_report) = latest_resumable(&out, &cfg)?;
        if let Some(ck) = found {
            for (i, (name, vars)) in maps.iter().enumerate() {
                ck.restore_varmap(name, vars)?;
                ck.restore_optimizer(&format!("opt_{name}"), &mut opts[i])?;
            }
            pool_a = restore_pool(&ck, "pool_A", cfg.model.pool_size)?;
            pool_b = restore_pool(&ck, "pool_B", cfg.model.pool_size)?;
            rng = ck.rng(POOL_RNG)?;
            step = ck.meta.step;
        }
        let logger = open_log(&out, &LOG_COLUMNS, step)?;
        Ok(Self {
            order: EpochOrder::new(cfg.schedule.seed),
            cfg,
            out,
            device: device.clone(),
            model,
            opts,
            pool_a,
            pool_b,
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

    pub fn config(&self) -> &CycleGanTrainConfig {
        &self.cfg
    }

    pub fn model(&self) -> &CycleGan {
        &self.model
    }

    /// The learning rate of the step after `steps` completed ones, for sets of `n_a` and `n_b`.
    pub fn lr_at(&self, steps: u64, n_a: usize, n_b: usize) -> f64 {
        let per_epoch = n_a.max(n_b).div_ceil(self.cfg.batch).max(1) as u64;
        self.cfg.lr * self.cfg.lr_factor(steps / per_epoch + 1)
    }

    /// One step: G, then D (see the module doc).
    pub fn train_step(&mut self, data: &Unpaired<'_>) -> TrainResult<CycleGanStepStats> {
        let start = Instant::now();
        let (n_a, n_b) = (data.a.len(), data.b.len());
        if n_a == 0 || n_b == 0 {
            return Err(TrainError::Data(format!(
                "both domains need images (A: {n_a}, B: {n_b})"
            )));
        }
        let lr = self.lr_at(self.step, n_a, n_b);
        for o in &mut self.opts {
            o.set_lr(lr)?;
        }
        let idx_a = self.order.indices(self.step, self.cfg.batch, n_a);
        let mut b_rng = rng_from_seed(derive_seed(self.cfg.schedule.seed, B_STREAM, self.step));
        let idx_b: Vec<usize> = (0..self.cfg.batch)
            .map(|_| b_rng.random_range(0..n_b))
            .collect();
        let real_a = data.a.load_for_step(self.step, &idx_a, &self.device)?;
        let real_b = data.b.load_for_step(self.step, &idx_b, &self.device)?;

        // G step (train mode; CycleGAN has no dropout, InstanceNorm keeps no statistics).
        let mut mode = ForwardMode {
            norm: NormMode::Train,
            dropout: crate::layers::DropoutMode::Off,
        };
        let g = self.model.generator_step(&real_a, &real_b, &mut mode)?;
        let loss_g = scalar(&g.loss.total)?;
        check_finite(self.step, "CycleGAN G loss", loss_g, &self.out)?;
        let grads = g.loss.total.backward()?;
        self.opts[0].step(&grads)?;
        self.opts[1].step(&grads)?;
        drop(grads);

        // D step on pooled fakes of this step's forward.
        let fake_b = self.pool_b.query(&g.images.fake_b, &mut self.rng)?;
        let fake_a = self.pool_a.query(&g.images.fake_a, &mut self.rng)?;
        let (ld_a, ld_b) =
            self.model
                .discriminator_losses(&real_a, &real_b, &fake_a, &fake_b, NormMode::Train)?;
        let loss_d = (&ld_a + &ld_b)?;
        let (loss_d_a, loss_d_b) = (scalar(&ld_a)?, scalar(&ld_b)?);
        check_finite(self.step, "CycleGAN D loss", loss_d_a + loss_d_b, &self.out)?;
        let grads = loss_d.backward()?;
        self.opts[2].step(&grads)?;
        self.opts[3].step(&grads)?;

        self.step += 1;
        let opt = |t: &Option<Tensor>| t.as_ref().map_or(Ok(0.0), scalar);
        let l = &g.loss;
        let stats = CycleGanStepStats {
            step: self.step,
            loss_d_a,
            loss_g_a: scalar(&l.gan_a)?,
            loss_cycle_a: scalar(&l.cycle_a)?,
            loss_idt_a: opt(&l.idt_a)?,
            loss_d_b,
            loss_g_b: scalar(&l.gan_b)?,
            loss_cycle_b: scalar(&l.cycle_b)?,
            loss_idt_b: opt(&l.idt_b)?,
            loss_g,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        if self.step.is_multiple_of(self.cfg.schedule.log_every) {
            let s = &stats;
            self.logger.log(
                self.step,
                &[
                    s.loss_d_a,
                    s.loss_g_a,
                    s.loss_cycle_a,
                    s.loss_idt_a,
                    s.loss_d_b,
                    s.loss_g_b,
                    s.loss_cycle_b,
                    s.loss_idt_b,
                    s.loss_g,
                    s.lr,
                    s.seconds,
                ],
            )?;
        }
        Ok(stats)
    }

    /// Writes a checkpoint of the whole run state (the four networks, their optimisers, both
    /// pools and the pool RNG), atomic and rotated.
    pub fn save_checkpoint(&self) -> TrainResult<PathBuf> {
        let s = &self.cfg.schedule;
        let mut ck = new_checkpoint(self.step, s, &self.cfg, POOL_RNG, &self.rng)?;
        for (i, (name, vars)) in self.model.named_var_maps().iter().enumerate() {
            ck.add_varmap(name, vars)?;
            ck.add_optimizer(&format!("opt_{name}"), &self.opts[i])?;
        }
        for (group, pool) in [("pool_A", &self.pool_a), ("pool_B", &self.pool_b)] {
            let t = pool_tensors(pool);
            ck.add_tensors(group, t.iter().map(|(k, v)| (k.as_str(), v)))?;
        }
        save_rotated(ck, &self.out, s)
    }

    /// The fixed images of the sample strips: the first `val_samples` of each domain.
    pub fn set_validation(&mut self, data: &Unpaired<'_>) -> TrainResult<()> {
        let k = self.cfg.val_samples.min(data.a.len()).min(data.b.len());
        if k > 0 {
            let idx: Vec<usize> = (0..k).collect();
            self.val = Some((
                data.a.load_for_step(0, &idx, &self.device)?,
                data.b.load_for_step(0, &idx, &self.device)?,
            ));
        }
        Ok(())
    }

    /// The strip `A | G_A(A) | G_B(G_A(A)) | B | G_B(B)` of the validation images.
    pub fn write_samples(&self, path: &Path) -> TrainResult<()> {
        let Some((a, b)) = &self.val else {
            return Ok(());
        };
        let mut mode = ForwardMode::eval();
        let fake_b = self.model.g_a.forward(a, &mut mode)?;
        let rec_a = self.model.g_b.forward(&fake_b, &mut mode)?;
        let fake_a = self.model.g_b.forward(b, &mut mode)?;
        write_strip(path, &[a, &fake_b, &rec_a, b, &fake_a])
    }

    /// Redraws `<out>/loss.png`.
    pub fn write_loss_plot(&self) -> TrainResult<()> {
        s2m_train::run::write_loss_plot(&self.out, "CycleGAN", &LOG_COLUMNS[..10])
    }
}

impl_train_loop!(CycleGanTrainer, 'd, Unpaired<'d>, CycleGanStepStats);
