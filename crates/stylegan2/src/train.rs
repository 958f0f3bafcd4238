//! GAN training after rosinality `train.py`: non-saturating logistic loss, lazy R1 every
//! `d_reg_every` steps, optional lazy path-length regularisation every `g_reg_every` steps,
//! style mixing, an EMA generator, Adam(lr, betas 0 / 0.99) with the lazy-regularisation
//! correction, and horizontal flips.
//!
//! Everything that makes a run reproducible lives in the checkpoint: G, D and G_ema weights,
//! both Adam states, the training RNG position, the step and the path-length mean. The data
//! order is a pure function of (seed, epoch), so a run resumed from step k draws exactly the
//! batches, latents, flips and noise an uninterrupted run would have (tested).
//!
//! The data comes in through [`ImageDataset`]; the facade passes the phantom loader in.
//!
//! ```text
//! sketch2medi stylegan2 train --data data/phantom --out runs/g64 --steps 20000
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng as _;
use s2m_core::imageio::{image_grid, tensor_to_rgb_batch};
use s2m_core::rng::{Rng, derive_seed, randn_vec, rng_from_seed};
use s2m_train::Schedule;
use s2m_train::checkpoint::{Checkpoint, RngState};
use s2m_train::logcsv::CsvLogger;
use s2m_train::optim::{Adam, AdamConfig, varmap_named_vars};
use s2m_train::resume::{self, ResumeReport};
use s2m_train::run::{
    EpochOrder, TrainLoop, check_finite, checkpoint_meta, create_run_folders, open_log,
    run_training, scalar, write_loss_plot,
};
use serde::{Deserialize, Serialize};

use crate::config::StyleGan2Config;
use crate::discriminator::Discriminator;
use crate::error::StyleGan2Error;
use crate::generator::{Generator, GeneratorInput, NoiseMode, random_inject_index};
use crate::init::{init_discriminator, init_generator};
use crate::regularizers::{d_logistic_loss, g_nonsaturating_loss, path_length_penalty, r1_penalty};
use crate::weights::{KeyKind, generator_keys};

pub use s2m_train::TrainError;

/// Result alias of the trainer.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl From<StyleGan2Error> for TrainError {
    fn from(e: StyleGan2Error) -> Self {
        Self::model(e)
    }
}

/// Real images for GAN training.
pub trait ImageDataset: Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// True when there is no image.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The images at `indices` as `[B, 3, size, size]` f32 in [-1, 1] on `device`.
    fn load(&self, indices: &[usize], device: &Device) -> Result<Tensor>;
}

/// A dataset held in memory as one `[N, 3, H, W]` tensor (tests, small experiments).
pub struct TensorDataset {
    pub images: Tensor,
}

impl ImageDataset for TensorDataset {
    fn len(&self) -> usize {
        self.images.dim(0).unwrap_or(0)
    }
    fn load(&self, indices: &[usize], device: &Device) -> Result<Tensor> {
        let ids: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let ids = Tensor::new(ids.as_slice(), self.images.device())?;
        Ok(self.images.index_select(&ids, 0)?.to_device(device)?)
    }
}

/// Hyper-parameters of a run (rosinality defaults unless noted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub model: StyleGan2Config,
    /// Images per step.
    pub batch: usize,
    /// Adam learning rate of G and D (0.002).
    pub lr: f64,
    /// R1 weight gamma (10).
    pub r1_gamma: f64,
    /// Lazy R1 interval (16).
    pub d_reg_every: u32,
    /// Lazy path-length interval (4).
    pub g_reg_every: u32,
    /// Path-length weight (2; 0 disables it, saving a second-order pass through G).
    pub path_regularize: f64,
    /// Path-length batch = batch / this (2).
    pub path_batch_shrink: usize,
    /// Probability of style mixing (0.9).
    pub mixing: f64,
    /// EMA half-life of G_ema in images (10,000 as in rosinality's `0.5 ** (32 / 10k)`).
    pub ema_half_life_images: f64,
    /// NVlabs-style EMA ramp-up: the half-life is at most `ema_rampup` x images seen
    /// (0.05; 0 disables), so that short CPU runs are not dominated by the random init.
    pub ema_rampup: f64,
    /// Random horizontal flips of real images.
    pub flip: bool,
    /// Base seed of the run and the cadences of the sample grids (+ loss curves), checkpoints
    /// and `<out>/log.csv` rows; top-level keys of the JSON.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Number of fixed latents in the sample grid.
    pub grid_samples: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: StyleGan2Config::phantom_64(),
            batch: 8,
            lr: 0.002,
            r1_gamma: 10.0,
            d_reg_every: 16,
            g_reg_every: 4,
            path_regularize: 2.0,
            path_batch_shrink: 2,
            mixing: 0.9,
            ema_half_life_images: 10_000.0,
            ema_rampup: 0.05,
            flip: true,
            schedule: Schedule::default(),
            grid_samples: 16,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.schedule.validate()?;
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.batch == 0 {
            return bad("batch must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr must be positive");
        }
        if self.d_reg_every == 0 || self.g_reg_every == 0 {
            return bad("d_reg_every and g_reg_every must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.mixing) {
            return bad("mixing must be a probability in [0, 1]");
        }
        for (name, v) in [
            ("r1_gamma", self.r1_gamma),
            ("path_regularize", self.path_regularize),
            ("ema_half_life_images", self.ema_half_life_images),
            ("ema_rampup", self.ema_rampup),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(TrainError::Config(format!(
                    "{name} = {v} must be finite and >= 0"
                )));
            }
        }
        if self.path_batch_shrink == 0 {
            return bad("path_batch_shrink must be at least 1");
        }
        Ok(())
    }
}

/// Losses and scores of one step (NaN where a term did not run this step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub step: u64,
    pub d_loss: f64,
    pub g_loss: f64,
    pub r1: f64,
    pub path: f64,
    pub real_score: f64,
    pub fake_score: f64,
    pub seconds: f64,
}

const LOG_COLUMNS: [&str; 7] = [
    "d_loss",
    "g_loss",
    "r1",
    "path",
    "real_score",
    "fake_score",
    "sec_per_step",
];
const TRAIN_RNG: &str = "train";

/// A StyleGAN2 training run in a folder: `checkpoints/`, `log.csv`, `loss.png`, `samples/`.
pub struct Trainer {
    cfg: TrainConfig,
    out: PathBuf,
    device: Device,
    g: Generator,
    g_vars: VarMap,
    d: Discriminator,
    d_vars: VarMap,
    g_ema: Generator,
    ema_vars: VarMap,
    g_opt: Adam,
    d_opt: Adam,
    rng: Rng,
    step: u64,
    mean_path_length: f64,
    grid_z: Tensor,
    logger: CsvLogger,
    order: EpochOrder,
    resume_report: ResumeReport,
}

fn copy_varmap(src: &VarMap) -> Result<VarMap> {
    let dst = VarMap::new();
    {
        let from = src
            .data()
            .lock()
            .map_err(|_| TrainError::Config("VarMap lock poisoned".into()))?;
        let mut to = dst
            .data()
            .lock()
            .map_err(|_| TrainError::Config("VarMap lock poisoned".into()))?;
        for (k, v) in from.iter() {
            to.insert(k.clone(), Var::from_tensor(&v.as_tensor().copy()?)?);
        }
    }
    Ok(dst)
}

impl Trainer {
    /// Opens the run in `out`: resumes from its latest checkpoint if there is one (the model
    /// config must match), else starts fresh from the schedule's seed.
    pub fn open(cfg: TrainConfig, out: impl AsRef<Path>, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let out = out.as_ref().to_path_buf();
        create_run_folders(&out)?;
        let dtype = DType::F32;
        let mut init_rng = rng_from_seed(derive_seed(cfg.schedule.seed, 0x1417, 0));
        let (g, g_vars) = init_generator(&cfg.model, &mut init_rng, dtype, device)?;
        let (d, d_vars) = init_discriminator(&cfg.model, &mut init_rng, dtype, device)?;
        let ema_vars = copy_varmap(&g_vars)?;
        let g_ema = Generator::new_with_noise_buffers(
            &cfg.model,
            g.noise_buffers().to_vec(),
            VarBuilder::from_varmap(&ema_vars, dtype, device),
        )?;
        let base = AdamConfig::stylegan2(cfg.lr);
        let g_cfg = if cfg.path_regularize > 0.0 {
            base.lazy_regularized(cfg.g_reg_every)
        } else {
            base
        };
        let d_cfg = if cfg.r1_gamma > 0.0 {
            base.lazy_regularized(cfg.d_reg_every)
        } else {
            base
        };
        let mut g_opt = Adam::new(varmap_named_vars(&g_vars), g_cfg)?;
        let mut d_opt = Adam::new(varmap_named_vars(&d_vars), d_cfg)?;
        let grid_z = Tensor::from_vec(
            randn_vec(
                &mut rng_from_seed(derive_seed(cfg.schedule.seed, 0x6121D, 0)),
                cfg.grid_samples.max(1) * cfg.model.style_dim,
            ),
            (cfg.grid_samples.max(1), cfg.model.style_dim),
            device,
        )?;
        let mut rng = rng_from_seed(derive_seed(cfg.schedule.seed, 0x7EA1, 0));
        let mut step = 0;
        let mut mean_path_length = 0.0;
        let (found, resume_report) = resume::open_run(&out)?;
        if let Some((path, ck)) = found {
            resume::check_run_config(&path, &ck, &cfg, resume::MAY_CHANGE)?;
            ck.restore_varmap("g", &g_vars)?;
            ck.restore_varmap("d", &d_vars)?;
            ck.restore_varmap("g_ema", &ema_vars)?;
            ck.restore_optimizer("g_opt", &mut g_opt)?;
            ck.restore_optimizer("d_opt", &mut d_opt)?;
            rng = ck.rng(TRAIN_RNG)?;
            step = ck.meta.step;
            mean_path_length = ck
                .meta
                .extra
                .get("mean_path_length")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0);
        }
        let logger = open_log(&out, &LOG_COLUMNS, step)?;
        let cfg_seed = cfg.schedule.seed;
        Ok(Self {
            cfg,
            out,
            device: device.clone(),
            g,
            g_vars,
            d,
            d_vars,
            g_ema,
            ema_vars,
            g_opt,
            d_opt,
            rng,
            step,
            mean_path_length,
            grid_z,
            logger,
            order: EpochOrder::new(cfg_seed),
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

    /// The EMA generator (the one to export and sample from).
    pub fn g_ema(&self) -> &Generator {
        &self.g_ema
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Real images of this step, flipped at random.
    fn real_batch(&mut self, data: &dyn ImageDataset) -> Result<Tensor> {
        let n = data.len();
        if n == 0 {
            return Err(TrainError::Data("the dataset is empty".into()));
        }
        let indices = self.order.indices(self.step, self.cfg.batch, n);
        let real = data.load(&indices, &self.device)?;
        let size = self.cfg.model.size;
        let dims = real.dims().to_vec();
        if dims.len() != 4 || dims[1] != 3 || dims[2] != size as usize || dims[3] != size as usize {
            return Err(TrainError::Data(format!(
                "real images have shape {dims:?}, the generator needs [B, 3, {size}, {size}]"
            )));
        }
        if !self.cfg.flip {
            return Ok(real);
        }
        // [B,3,H,W]: flip the chosen samples along W with a reversed index.
        let rev: Vec<u32> = (0..size).rev().collect();
        let rev = Tensor::new(rev.as_slice(), &self.device)?;
        let rows = (0..indices.len())
            .map(|i| {
                let x = real.i(i..i + 1)?;
                if self.rng.random_bool(0.5) {
                    x.index_select(&rev, 3)
                } else {
                    Ok(x)
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }

    /// Latent input for `batch` fakes: one z, or two with a crossover (style mixing).
    fn latent_input(&mut self, batch: usize) -> Result<GeneratorInput<'static>> {
        let s = self.cfg.model.style_dim;
        let device = self.device.clone();
        let z = |rng: &mut Rng| Tensor::from_vec(randn_vec(rng, batch * s), (batch, s), &device);
        let input = if self.cfg.mixing > 0.0 && self.rng.random_bool(self.cfg.mixing) {
            let z1 = z(&mut self.rng)?;
            let z2 = z(&mut self.rng)?;
            let inject = random_inject_index(&mut self.rng, self.g.n_latent());
            GeneratorInput::z(vec![z1, z2]).with_inject_index(inject)
        } else {
            GeneratorInput::z(vec![z(&mut self.rng)?])
        };
        let noise_seed: u64 = self.rng.random();
        Ok(input.with_noise(NoiseMode::Random { seed: noise_seed }))
    }

    fn check_finite(&self, what: &str, value: f64) -> Result<()> {
        check_finite(self.step, what, value, &self.out)
    }

    /// One training step (D, lazy R1, G, lazy path length, EMA).
    pub fn train_step(&mut self, data: &dyn ImageDataset) -> Result<StepStats> {
        let start = Instant::now();
        let batch = self.cfg.batch;
        let real = self.real_batch(data)?;

        // Each phase runs in its own scope: a GradStore holds the whole autograd graph of its
        // loss (with CANDLE_GRAD_DO_NOT_DETACH=1 even the gradients keep theirs), so letting one
        // live into the next phase multiplies the peak memory.

        // D: logistic loss on real vs (detached) fake.
        let (d_loss_v, real_score, fake_score) = {
            let input = self.latent_input(batch)?;
            let fake = self.g.forward(&input)?.image.detach();
            let fake_logits = self.d.forward(&fake)?;
            let real_logits = self.d.forward(&real)?;
            let d_loss = d_logistic_loss(&real_logits, &fake_logits)?;
            let d_loss_v = scalar(&d_loss)?;
            self.check_finite("D loss", d_loss_v)?;
            let grads = d_loss.backward()?;
            self.d_opt.step(&grads)?;
            (
                d_loss_v,
                scalar(&real_logits.mean_all()?)?,
                scalar(&fake_logits.mean_all()?)?,
            )
        };

        // Lazy R1 on real images.
        let mut r1_v = f64::NAN;
        if self.cfg.r1_gamma > 0.0 && self.step.is_multiple_of(self.cfg.d_reg_every as u64) {
            let r1 = r1_penalty(&self.d, &real)?;
            r1_v = scalar(&r1.penalty)?;
            self.check_finite("R1", r1_v)?;
            let weight = self.cfg.r1_gamma / 2.0 * self.cfg.d_reg_every as f64;
            let grads = (r1.penalty * weight)?.backward()?;
            self.d_opt.step(&grads)?;
        }
        drop(real);

        // G: non-saturating loss (only G's optimizer steps; D's grads are discarded).
        let g_loss_v = {
            let input = self.latent_input(batch)?;
            let fake = self.g.forward(&input)?.image;
            let g_loss = g_nonsaturating_loss(&self.d.forward(&fake)?)?;
            let g_loss_v = scalar(&g_loss)?;
            self.check_finite("G loss", g_loss_v)?;
            let grads = g_loss.backward()?;
            self.g_opt.step(&grads)?;
            g_loss_v
        };

        // Lazy path-length regularisation.
        let mut path_v = f64::NAN;
        if self.cfg.path_regularize > 0.0 && self.step.is_multiple_of(self.cfg.g_reg_every as u64) {
            let pb = (batch / self.cfg.path_batch_shrink).max(1);
            let input = self.latent_input(pb)?;
            let mut path_rng = rng_from_seed(self.rng.random());
            let out =
                path_length_penalty(&self.g, &input, self.mean_path_length, 0.01, &mut path_rng)?;
            path_v = scalar(&out.penalty)?;
            self.check_finite("path-length penalty", path_v)?;
            self.mean_path_length = out.mean_path_length;
            let weight = self.cfg.path_regularize * self.cfg.g_reg_every as f64;
            let grads = (out.penalty * weight)?.backward()?;
            self.g_opt.step(&grads)?;
        }

        self.update_ema()?;
        self.step += 1;
        let stats = StepStats {
            step: self.step,
            d_loss: d_loss_v,
            g_loss: g_loss_v,
            r1: r1_v,
            path: path_v,
            real_score,
            fake_score,
            seconds: start.elapsed().as_secs_f64(),
        };
        if self.cfg.schedule.log_every > 0 && self.step.is_multiple_of(self.cfg.schedule.log_every)
        {
            self.logger.log(
                self.step,
                &[
                    stats.d_loss,
                    stats.g_loss,
                    stats.r1,
                    stats.path,
                    stats.real_score,
                    stats.fake_score,
                    stats.seconds,
                ],
            )?;
        }
        Ok(stats)
    }

    /// G_ema <- a G_ema + (1 - a) G with the half-life of the config (and its ramp-up).
    fn update_ema(&mut self) -> Result<()> {
        let seen = ((self.step + 1) * self.cfg.batch as u64) as f64;
        let mut half_life = self.cfg.ema_half_life_images;
        if self.cfg.ema_rampup > 0.0 {
            half_life = half_life.min(seen * self.cfg.ema_rampup);
        }
        let a = 0.5f64.powf(self.cfg.batch as f64 / half_life.max(1e-8));
        let g = self
            .g_vars
            .data()
            .lock()
            .map_err(|_| TrainError::Config("VarMap lock poisoned".into()))?;
        let ema = self
            .ema_vars
            .data()
            .lock()
            .map_err(|_| TrainError::Config("VarMap lock poisoned".into()))?;
        for (name, var) in g.iter() {
            if let Some(e) = ema.get(name) {
                let mixed = ((e.as_tensor() * a)? + (var.as_tensor() * (1.0 - a))?)?.detach();
                e.set(&mixed)?;
            }
        }
        Ok(())
    }

    /// Writes a checkpoint of the whole run state to `<out>/checkpoints` (atomic, rotated).
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let mut meta = checkpoint_meta(self.step, self.cfg.schedule.seed, &self.cfg, &[])?;
        meta.rng
            .insert(TRAIN_RNG.into(), RngState::capture(&self.rng));
        meta.extra
            .insert("mean_path_length".into(), self.mean_path_length.into());
        let mut ck = Checkpoint::new(meta);
        ck.add_varmap("g", &self.g_vars)?;
        ck.add_varmap("d", &self.d_vars)?;
        ck.add_varmap("g_ema", &self.ema_vars)?;
        ck.add_optimizer("g_opt", &self.g_opt)?;
        ck.add_optimizer("d_opt", &self.d_opt)?;
        Ok(ck.save_in(
            self.out.join("checkpoints"),
            self.cfg.schedule.keep_checkpoints.max(1),
        )?)
    }

    /// Renders the fixed-latent grid of G_ema (constant noise, no truncation) to a PNG.
    pub fn write_samples(&self, path: impl AsRef<Path>) -> Result<()> {
        let image = self
            .g_ema
            .forward(&GeneratorInput::z(vec![self.grid_z.clone()]).with_noise(NoiseMode::Const))?
            .image;
        let tiles = tensor_to_rgb_batch(&image.clamp(-1f32, 1f32)?)?;
        let cols = (tiles.len() as f64).sqrt().ceil() as usize;
        let grid = image_grid(&tiles, cols.max(1), 2)?;
        s2m_core::imageio::save_png(path, &grid)?;
        Ok(())
    }

    /// Redraws `<out>/loss.png` from `<out>/log.csv`.
    pub fn write_loss_plot(&self) -> Result<()> {
        write_loss_plot(
            &self.out,
            "StyleGAN2 training",
            &["d_loss", "g_loss", "r1", "path", "real_score", "fake_score"],
        )
    }

    /// Trains until `until_step`, with checkpoints, samples and loss curves on schedule, and a
    /// final checkpoint. `on_step` sees every step's stats (progress bars).
    pub fn train(
        &mut self,
        data: &dyn ImageDataset,
        until_step: u64,
        on_step: impl FnMut(&StepStats),
    ) -> Result<()> {
        self.train_for(data, until_step, None, on_step)
    }

    /// Like [`Trainer::train`], but also stops at the first step boundary after `budget` of
    /// wall-clock time (then with the same final checkpoint, samples and curves), so that a run
    /// can be time-boxed. Re-running continues from that checkpoint.
    pub fn train_for(
        &mut self,
        data: &dyn ImageDataset,
        until_step: u64,
        budget: Option<std::time::Duration>,
        on_step: impl FnMut(&StepStats),
    ) -> Result<()> {
        run_training(self, data, until_step, budget, on_step)?;
        Ok(())
    }

    /// Writes G_ema as a generator checkpoint (rosinality names, noise and kernel buffers)
    /// with its config in `<path>.json`, loadable with [`crate::weights::Checkpoint::open`].
    pub fn export_generator(&self, path: impl AsRef<Path>) -> Result<()> {
        export_generator(&self.g_ema, &self.ema_vars, path)
    }
}

impl<'d> TrainLoop<'d> for Trainer {
    type Stats = StepStats;
    type Error = TrainError;
    type Data = dyn ImageDataset + 'd;
    fn step(&self) -> u64 {
        self.step
    }
    fn out_dir(&self) -> &Path {
        &self.out
    }
    fn schedule(&self) -> (u64, u64) {
        (
            self.cfg.schedule.checkpoint_every,
            self.cfg.schedule.sample_every,
        )
    }
    fn prepare(&mut self, _data: &(dyn ImageDataset + 'd)) -> Result<()> {
        Ok(())
    }
    fn train_step(&mut self, data: &(dyn ImageDataset + 'd)) -> Result<StepStats> {
        Trainer::train_step(self, data)
    }
    fn save_checkpoint(&self) -> Result<PathBuf> {
        Trainer::save_checkpoint(self)
    }
    fn write_samples(&self, path: &Path) -> Result<()> {
        Trainer::write_samples(self, path)
    }
    fn write_loss_plot(&self) -> Result<()> {
        Trainer::write_loss_plot(self)
    }
}

/// Writes a generator whose parameters live in `vars` (see [`Trainer::export_generator`]).
pub fn export_generator(g: &Generator, vars: &VarMap, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let cfg = g.config();
    let data = vars
        .data()
        .lock()
        .map_err(|_| TrainError::Config("VarMap lock poisoned".into()))?;
    let mut tensors = std::collections::HashMap::new();
    let mut noise = g.noise_buffers().iter();
    for key in generator_keys(cfg)? {
        let t = match key.kind {
            KeyKind::Noise => noise
                .next()
                .cloned()
                .ok_or_else(|| TrainError::Config(format!("no noise buffer for {}", key.name)))?,
            KeyKind::Kernel { factor } => Tensor::from_vec(
                crate::ops::make_kernel(&cfg.blur_kernel, factor),
                key.shape.as_slice(),
                g.device(),
            )?,
            _ => data
                .get(&key.name)
                .ok_or_else(|| TrainError::Config(format!("no parameter {}", key.name)))?
                .as_tensor()
                .clone(),
        };
        tensors.insert(key.name.clone(), t);
    }
    let json = serde_json::to_string_pretty(cfg)
        .map_err(|e| TrainError::Config(format!("cannot serialise the config: {e}")))?;
    // candle's writer, to a temp sibling renamed into place (atomic).
    let tmp = path.with_extension("safetensors.partial");
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| s2m_core::CoreError::io(path, e))?;
    s2m_core::fsio::atomic_write(path.with_extension("json"), json.as_bytes())?;
    Ok(())
}
