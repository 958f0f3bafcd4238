//! The phase-2 run: opening (fresh, resumed or warm-started), the training step, checkpoints,
//! samples and loss curves.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use e4e_encoder::data::{PairDataset, Pairs, load_validation, write_strip};
use e4e_encoder::generator::FrozenGenerator;
use e4e_encoder::{Encoder, EncoderBundle};
use losses::SimilarityLoss;
use s2m_core::rng::derive_seed;
use s2m_train::TrainError;
use s2m_train::checkpoint::Checkpoint;
use s2m_train::logcsv::CsvLogger;
use s2m_train::optim::{Adam, AdamConfig};
use s2m_train::resume::ResumeReport;
use s2m_train::run::{EpochOrder, checkpoint_meta, create_run_folders, open_log, trainable_vars};
use stylegan2::StyleGan2Config;

use super::config::RefinerTrainConfig;
use super::extra::ExtraTerms;
use super::resume::{INIT_KEY, load_init, restore_checkpoint};
use crate::bundle::InitRef;
use crate::error::{RefinerError, Result};
use crate::hypernet::HyperNetwork;
use crate::refinement::refine;

const INIT_STREAM: u64 = 0x4E7;

/// Losses of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct RefinerStepStats {
    pub step: u64,
    /// Σ_t L_sim(ŷ_t, y) (what the gradient is of).
    pub total: f64,
    /// L_sim(ŷ_0, y): E alone, for reference.
    pub sim_e: f64,
    /// L_sim(ŷ_t, y) for t = 1..T.
    pub sim_t: Vec<f64>,
    /// MSE and perceptual distance of the last iteration.
    pub l2_last: f64,
    pub perceptual_last: f64,
    /// The unweighted extra terms ([`crate::ExtraLoss`]) of the last iteration, by name, in the order
    /// of the terms (empty for the paper's loss).
    pub extras: Vec<(String, f64)>,
    pub seconds: f64,
}

impl RefinerStepStats {
    /// The last iteration's value of the extra term `name` (None when the run has no such term).
    pub fn extra(&self, name: &str) -> Option<f64> {
        self.extras.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// A phase-2 run in a folder: `checkpoints/`, `log.csv`, `loss.png`, `samples/`, `export/`.
pub struct RefinerTrainer {
    pub(super) cfg: RefinerTrainConfig,
    pub(super) out: PathBuf,
    pub(super) device: Device,
    pub(super) g: FrozenGenerator,
    pub(super) encoder: EncoderBundle,
    pub(super) encoder_dir: String,
    pub(super) encoder_sha256: String,
    pub(super) loss: SimilarityLoss,
    pub(super) h: HyperNetwork,
    pub(super) h_vars: VarMap,
    pub(super) opt: Adam,
    pub(super) step: u64,
    pub(super) columns: Vec<String>,
    pub(super) logger: CsvLogger,
    pub(super) order: EpochOrder,
    pub(super) val: Option<Pairs>,
    pub(super) data_description: String,
    pub(super) sketch_source: String,
    pub(super) init: Option<InitRef>,
    pub(super) extras: ExtraTerms,
    resume_report: ResumeReport,
}

/// The columns of `log.csv`: the paper's losses, then `{name}_last` for each extra term.
fn log_columns(iterations: usize, extras: &ExtraTerms) -> Vec<String> {
    let mut c = vec!["total".to_string(), "sim_e".to_string()];
    c.extend((1..=iterations).map(|t| format!("sim_t{t}")));
    c.extend(["l2_last", "perceptual_last"].map(String::from));
    c.extend(extras.terms.iter().map(|e| format!("{}_last", e.name())));
    c.push("sec_per_step".into());
    c
}

/// The encoder's export in `encoder_dir`, checked against the generator (same sha256) and
/// against H (same sketch size).
fn load_encoder(
    encoder_dir: &Path,
    generator: &FrozenGenerator,
    cfg: &RefinerTrainConfig,
    device: &Device,
) -> Result<EncoderBundle> {
    let encoder = EncoderBundle::load(encoder_dir, device)?;
    if encoder.meta.generator.sha256 != generator.sha256() {
        return Err(TrainError::Config(format!(
            "the encoder in {} was trained with generator sha256 {}, but {} has {}",
            encoder_dir.display(),
            encoder.meta.generator.sha256,
            generator.source(),
            generator.sha256()
        ))
        .into());
    }
    if encoder.meta.encoder.input_size != cfg.hyper.input_size {
        return Err(TrainError::Config(format!(
            "the encoder reads {0}x{0} sketches, H {1}x{1}: both take the same sketch",
            encoder.meta.encoder.input_size, cfg.hyper.input_size
        ))
        .into());
    }
    Ok(encoder)
}

/// H with seeded fresh weights for `gen_cfg`, its `VarMap` and its Adam.
fn fresh_hypernet(
    cfg: &RefinerTrainConfig,
    gen_cfg: &StyleGan2Config,
    device: &Device,
) -> Result<(HyperNetwork, VarMap, Adam)> {
    let hcfg = cfg.hyper.clone();
    let (h, h_vars) = e4e_encoder::init::seeded_var_map(
        derive_seed(cfg.schedule.seed, INIT_STREAM, 0),
        DType::F32,
        device,
        |vb| HyperNetwork::new(hcfg, gen_cfg, vb),
    )?;
    let opt = Adam::new(
        trainable_vars(&h_vars),
        AdamConfig {
            lr: cfg.lr,
            ..AdamConfig::default()
        },
    )?;
    Ok((h, h_vars, opt))
}

impl RefinerTrainer {
    /// Opens the run in `out`: resumes from its latest checkpoint if there is one (H's config,
    /// T, and the generator's and encoder's hashes must match), else starts fresh from
    /// the schedule's seed. `encoder_dir` is the encoder's export folder (loaded with
    /// [`EncoderBundle::load`]); it must have been trained with `generator`. The loss is the
    /// paper's L_sim alone; see [`RefinerTrainer::open_with_extras`] for extra terms.
    pub fn open(
        cfg: RefinerTrainConfig,
        generator: FrozenGenerator,
        encoder_dir: &Path,
        loss: SimilarityLoss,
        out: impl AsRef<Path>,
        device: &Device,
    ) -> Result<Self> {
        Self::open_with_extras(
            cfg,
            ExtraTerms::default(),
            generator,
            encoder_dir,
            loss,
            out,
            device,
        )
    }

    /// [`RefinerTrainer::open`] with extra loss terms added to L_sim at every iteration
    /// (`extras.terms`, in their order; their settings belong in `cfg.extra_terms` so that
    /// checkpoints record them).
    pub fn open_with_extras(
        mut cfg: RefinerTrainConfig,
        extras: ExtraTerms,
        generator: FrozenGenerator,
        encoder_dir: &Path,
        loss: SimilarityLoss,
        out: impl AsRef<Path>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let encoder = load_encoder(encoder_dir, &generator, &cfg, device)?;
        cfg.val_samples = cfg.val_samples.max(1);
        let loss = loss.with_weights(cfg.l2_lambda, cfg.lpips_lambda, cfg.moco_lambda)?;
        let out = out.as_ref().to_path_buf();
        create_run_folders(&out)?;
        let (h, h_vars, mut opt) = fresh_hypernet(&cfg, generator.config(), device)?;
        let encoder_sha256 = encoder.meta.encoder_sha256.clone();
        let (found, resume_report) = s2m_train::resume::open_run(&out)?;
        let (step, init) = match found {
            Some((path, ck)) => restore_checkpoint(
                &path,
                &ck,
                &cfg,
                [
                    ("generator_sha256", generator.sha256()),
                    ("encoder_sha256", encoder_sha256.as_str()),
                ],
                &h_vars,
                &mut opt,
            )?,
            None => match &cfg.init_from {
                Some(dir) => (
                    0,
                    Some(load_init(dir, &cfg.hyper, generator.sha256(), &h_vars)?),
                ),
                None => (0, None),
            },
        };
        let columns = log_columns(cfg.iterations, &extras);
        let col_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
        let logger = open_log(&out, &col_refs, step)?;
        Ok(Self {
            order: EpochOrder::new(cfg.schedule.seed),
            cfg,
            out,
            device: device.clone(),
            g: generator,
            encoder,
            encoder_dir: encoder_dir.display().to_string(),
            encoder_sha256,
            loss,
            h,
            h_vars,
            opt,
            step,
            columns,
            logger,
            val: None,
            data_description: String::new(),
            sketch_source: String::new(),
            init,
            extras,
            resume_report,
        })
    }

    /// What opening the run folder skipped (damaged checkpoints) and removed (leftovers of
    /// killed processes).
    pub fn resume_report(&self) -> &ResumeReport {
        &self.resume_report
    }

    /// The refiner this run was initialised from (`init_from`), if any.
    pub fn init(&self) -> Option<&InitRef> {
        self.init.as_ref()
    }

    pub fn step(&self) -> u64 {
        self.step
    }
    pub fn config(&self) -> &RefinerTrainConfig {
        &self.cfg
    }
    pub fn hypernet(&self) -> &HyperNetwork {
        &self.h
    }
    /// H's `VarMap` (parameters and BatchNorm statistics).
    pub fn hypernet_vars(&self) -> &VarMap {
        &self.h_vars
    }
    pub fn generator(&self) -> &FrozenGenerator {
        &self.g
    }
    pub fn encoder(&self) -> &EncoderBundle {
        &self.encoder
    }
    pub fn similarity(&self) -> &SimilarityLoss {
        &self.loss
    }

    /// Uses the first `val_samples` pairs of `data` for the sample strips.
    pub fn set_validation(&mut self, data: &dyn PairDataset) -> Result<()> {
        self.val = Some(load_validation(
            data,
            self.cfg.val_samples,
            &self.device,
            self.g.config().size as usize,
            self.cfg.hyper.input_size,
        )?);
        Ok(())
    }

    /// W+ codes of E for `sketch` (eval mode, detached).
    pub(super) fn codes(&self, sketch: &Tensor) -> Result<Tensor> {
        let w = self.encoder.embed(sketch)?;
        Ok(Encoder::to_w_plus(&w, self.g.config().n_latent())?)
    }

    /// One step: [`RefinerTrainer::accumulated_gradients`] on the step's batch, one Adam step.
    pub fn train_step(&mut self, data: &dyn PairDataset) -> Result<RefinerStepStats> {
        let start = Instant::now();
        let n = data.len();
        if n == 0 {
            return Err(TrainError::Data("the dataset is empty".into()).into());
        }
        let indices = self.order.indices(self.step, self.cfg.batch, n);
        let pairs = data.load_for_step(self.step, &indices, &self.device)?;
        let (grads, losses) = self.accumulated_gradients(&pairs)?;
        self.opt.step(&grads)?;
        drop(grads);

        self.step += 1;
        let stats = RefinerStepStats {
            step: self.step,
            total: losses.sim_t.iter().sum(),
            sim_e: losses.sim_e,
            sim_t: losses.sim_t,
            l2_last: losses.l2_last,
            perceptual_last: losses.perceptual_last,
            extras: losses.extras,
            seconds: start.elapsed().as_secs_f64(),
        };
        if self.cfg.schedule.log_every > 0 && self.step.is_multiple_of(self.cfg.schedule.log_every)
        {
            let mut row = vec![stats.total, stats.sim_e];
            row.extend(&stats.sim_t);
            row.extend([stats.l2_last, stats.perceptual_last]);
            row.extend(stats.extras.iter().map(|(_, v)| *v));
            row.push(stats.seconds);
            self.logger.log(self.step, &row)?;
        }
        Ok(stats)
    }

    /// Writes a checkpoint (H with its BatchNorm statistics, Adam state, step; atomic,
    /// rotated).
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let meta = checkpoint_meta(
            self.step,
            self.cfg.schedule.seed,
            &self.cfg,
            &[
                ("generator_sha256", self.g.sha256()),
                ("encoder_sha256", &self.encoder_sha256),
            ],
        )?;
        let mut meta = meta;
        if let Some(init) = &self.init {
            let v = serde_json::to_value(init)
                .map_err(|e| TrainError::Config(format!("cannot serialise `{INIT_KEY}`: {e}")))?;
            meta.extra.insert(INIT_KEY.to_string(), v);
        }
        let mut ck = Checkpoint::new(meta);
        ck.add_varmap("h", &self.h_vars)?;
        ck.add_optimizer("opt", &self.opt)?;
        Ok(ck.save_in(
            self.out.join("checkpoints"),
            self.cfg.schedule.keep_checkpoints.max(1),
        )?)
    }

    /// ŷ_0 (E only) and ŷ_1..ŷ_T for `sketch`, eval mode (the inference loop).
    pub fn refine_images(&self, sketch: &Tensor) -> Result<Vec<Tensor>> {
        let w_plus = self.codes(sketch)?;
        let out = refine(
            &self.h,
            self.g.generator(),
            sketch,
            &w_plus,
            self.cfg.iterations,
            stylegan2::NoiseMode::Const,
        )?;
        Ok(out.images.into_iter().map(|t| t.detach()).collect())
    }

    /// The strip `sketch | E | E+H t=1..T | target` of the validation pairs.
    pub fn write_samples(&self, path: &Path) -> Result<()> {
        let Some(val) = &self.val else {
            return Ok(());
        };
        let mut columns = vec![val.sketches.clone()];
        columns.extend(self.refine_images(&val.sketches)?);
        columns.push(val.images.clone());
        Ok(write_strip(path, &columns)?)
    }

    /// Redraws `<out>/loss.png`.
    pub fn write_loss_plot(&self) -> Result<()> {
        let cols: Vec<&str> = self
            .columns
            .iter()
            .map(String::as_str)
            .filter(|c| *c != "sec_per_step")
            .collect();
        Ok(s2m_train::run::write_loss_plot(
            &self.out,
            "Phase 2: refiner H",
            &cols,
        )?)
    }
}

e4e_encoder::impl_train_loop!(RefinerTrainer, RefinerStepStats, RefinerError);
