//! Phase 2 of Sketch2MedI's training: the hypernetwork H, with the encoder E and the generator
//! G frozen (HyperStyle `training/coach_hyperstyle.py`, `models/hyperstyle.py`).
//!
//! Per step, on a batch of (sketch x, image y) pairs:
//!
//! ```text
//! w    = E(x) + w_avg                     (E in eval mode, no graph; HyperStyle's W-encoder)
//! ŷ_0  = G(w)                             (constant noise, no offsets)
//! for t = 1..T (T = 3):
//!     Δ_t  = H([ŷ_{t-1}.detach(), x])     (BatchNorm in train mode)
//!     S_t  = S_{t-1}.detach() + Δ_t
//!     ŷ_t  = G(w; θ ⊙ (1 + S_t))
//!     L_t  = L_sim(ŷ_t, y) [+ Σ_k λ_k extra_k(ŷ_t)],  backward(L_t)
//!                                         (gradients accumulate over t)
//! one Adam step on H's parameters
//! ```
//!
//! As in HyperStyle, the previous image and the previous offset sum are detached at every
//! iteration (no gradient flows across iterations) and the loss of every iteration is
//! back-propagated; the gradients of the T losses are summed (computed one iteration at a time,
//! so only one iteration's graph is alive) and H takes one optimiser step. L_sim = 1.0 · MSE +
//! 0.8 · perceptual (+ 0.5 · MoCo when its weights exist); HyperStyle's non-face defaults.
//!
//! Extra loss terms (NOTE: not in HyperStyle or the paper; none by default) plug in through
//! [`ExtraLoss`] and [`RefinerTrainer::open_with_extras`]: each is prepared once per batch,
//! weighted, added to L_sim at every iteration and logged as `{name}_last`. The training aids
//! of the `refiner-aids` crate (the structure feature distance the shipped H was fine-tuned
//! with, the structure, region, sketch-weighted-MSE and realism terms) are such terms.
//!
//! NOTE (deviations from HyperStyle): Adam(lr 1e-4, betas 0.9/0.999) instead of Ranger(1e-4);
//! H's input is `[ŷ, sketch]` (4 channels) instead of `[x, ŷ]` (6); sketches in [-1, 1].
//! Phase 2 draws no random numbers after initialisation (the data order is a function of
//! `(seed, epoch)`), so its checkpoints hold H, Adam's state and the step but no RNG.
//!
//! Exports ([`RefinerTrainer::export`]) go to `<out>/export` in the format of
//! [`crate::bundle`], loaded by [`RefinerBundle::load`](crate::bundle::RefinerBundle::load).
//!
//! ```text
//! sketch2medi refiner train --data data/phantom64 --generator weights/stylegan2_phantom64 \
//!     --encoder runs/enc/export --out runs/ref
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use e4e_encoder::bundle::{DataInfo, GeneratorRef, LossInfo};
use e4e_encoder::run::{
    EpochOrder, FrozenGenerator, PairDataset, Pairs, TrainError, check_finite, check_pairs,
    checkpoint_meta, create_run_folders, load_validation, open_log, scalar, trainable_vars,
    unix_time, varmap_tensors, verify_sha256, write_strip, write_weights_bundle,
};
use e4e_encoder::{Encoder, EncoderBundle};
use losses::SimilarityLoss;
use s2m_core::checkpoint::{Checkpoint, latest_checkpoint};
use s2m_core::logcsv::CsvLogger;
use s2m_core::optim::{Adam, AdamConfig};
use s2m_core::rng::derive_seed;
use serde::{Deserialize, Serialize};

use crate::bundle::{
    EncoderRef, InitRef, REFINER_FORMAT, REFINER_JSON, REFINER_WEIGHTS, RefinerMeta, read_export,
};
use crate::config::HyperConfig;
use crate::hypernet::HyperNetwork;
use crate::refinement::{DEFAULT_STEPS, Refinement, refine};

pub use e4e_encoder::run::{StopReason, run_training};

use crate::error::{RefinerError, Result};

const INIT_STREAM: u64 = 0x4E7;
/// Checkpoint `extra` key of the warm start ([`InitRef`]).
const INIT_KEY: &str = "init_from";

/// Loads H's weights from the refiner export `dir` into `h_vars`: the folder must hold a
/// refiner with the same `hyper` config, trained for the generator with sha256 `gen_sha`.
fn load_init(dir: &Path, hyper: &HyperConfig, gen_sha: &str, h_vars: &VarMap) -> Result<InitRef> {
    let (meta, weights) = read_export(dir)?;
    let bad = |message: String| TrainError::Bundle {
        path: dir.join(REFINER_JSON),
        message,
    };
    if &meta.hyper != hyper {
        return Err(bad(format!(
            "init_from: the refiner's config {:?} differs from the requested {hyper:?}",
            meta.hyper
        ))
        .into());
    }
    if meta.generator.sha256 != gen_sha {
        return Err(bad(format!(
            "init_from: the refiner was trained with generator sha256 {}, the given one is \
             {gen_sha}",
            meta.generator.sha256
        ))
        .into());
    }
    verify_sha256(&weights, &meta.refiner_sha256)?;
    let tensors =
        candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| TrainError::Bundle {
            path: weights.clone(),
            message: format!("unreadable safetensors: {e}"),
        })?;
    s2m_core::optim::load_varmap(&tensors, h_vars, "init_from refiner", "")
        .map_err(|e| e.in_file(&weights))?;
    Ok(InitRef {
        dir: dir.display().to_string(),
        sha256: meta.refiner_sha256,
        steps: meta.steps,
    })
}

/// An extra loss term added to L_sim at every refinement iteration (NOTE: not in HyperStyle or
/// the paper; the `refiner-aids` crate holds the terms Sketch2MedI uses). Prepared once per
/// batch ([`ExtraLoss::for_batch`]), then evaluated on ŷ_t at each iteration t:
/// `L_t = L_sim(ŷ_t, y) + Σ_k weight_k · term_k(ŷ_t)`, the terms added in their order.
pub trait ExtraLoss {
    /// Short name: the term's log column is `{name}_last` and [`RefinerStepStats::extra`]
    /// finds its value under this name.
    fn name(&self) -> &str;
    /// The term's weight in the objective.
    fn weight(&self) -> f64;
    /// The term for one batch (its sketches, target images and label maps in `batch`; the
    /// generator's images are `image_size` px): whatever depends only on the batch (masks,
    /// targets' features) is computed here, once.
    fn for_batch<'a>(
        &'a self,
        batch: &'a Pairs,
        image_size: usize,
    ) -> Result<Box<dyn BatchLoss + 'a>>;
}

/// An [`ExtraLoss`] prepared for one batch.
pub trait BatchLoss {
    /// The unweighted term for the refined images ŷ_t `[B, 3, H, W]` of one iteration, with
    /// its autograd graph (its gradient reaches H through ŷ_t).
    fn loss(&self, image: &Tensor) -> Result<Tensor>;
}

/// The extra terms of a run and what the export records about them.
#[derive(Default)]
pub struct ExtraTerms {
    /// The terms, in the order they are added to the objective and logged.
    pub terms: Vec<Box<dyn ExtraLoss>>,
    /// Top-level fields of the export's `refiner.json` describing the terms (weights, frozen
    /// networks and their hashes), [`RefinerMeta::extra_terms`].
    pub record: serde_json::Map<String, serde_json::Value>,
    /// Recorded as `losses.adv` in `refiner.json`: the weight of an adversarial (realism)
    /// term, 0 without one.
    pub adv_lambda: f64,
}

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
    /// Base seed (init, data order).
    pub seed: u64,
    pub sample_every: u64,
    pub checkpoint_every: u64,
    pub keep_checkpoints: usize,
    pub log_every: u64,
    /// Rows of the sample strip.
    pub val_samples: usize,
    /// The settings of the run's extra loss terms ([`ExtraLoss`]), recorded in checkpoints as
    /// top-level fields of the config (e.g. `refiner_aids::AidsConfig`); empty for the paper's
    /// loss. The terms themselves are handed to [`RefinerTrainer::open_with_extras`].
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
            seed: 0,
            sample_every: 500,
            checkpoint_every: 500,
            keep_checkpoints: 2,
            log_every: 10,
            val_samples: 8,
            extra_terms: serde_json::Map::new(),
        }
    }
}

impl RefinerTrainConfig {
    pub fn validate(&self) -> Result<()> {
        self.hyper.validate()?;
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

/// The losses of [`RefinerTrainer::accumulated_gradients`].
#[derive(Debug, Clone, PartialEq)]
pub struct IterationLosses {
    /// L_sim(ŷ_0, y): E alone.
    pub sim_e: f64,
    /// L_sim(ŷ_t, y), t = 1..T.
    pub sim_t: Vec<f64>,
    pub l2_last: f64,
    pub perceptual_last: f64,
    /// The unweighted extra terms of the last iteration, by name, in the order of the terms.
    pub extras: Vec<(String, f64)>,
}

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
    /// The unweighted extra terms ([`ExtraLoss`]) of the last iteration, by name, in the order
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
    cfg: RefinerTrainConfig,
    out: PathBuf,
    device: Device,
    g: FrozenGenerator,
    encoder: EncoderBundle,
    encoder_dir: String,
    encoder_sha256: String,
    loss: SimilarityLoss,
    h: HyperNetwork,
    h_vars: VarMap,
    opt: Adam,
    step: u64,
    columns: Vec<String>,
    logger: CsvLogger,
    order: EpochOrder,
    val: Option<Pairs>,
    data_description: String,
    sketch_source: String,
    init: Option<InitRef>,
    extras: ExtraTerms,
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

impl RefinerTrainer {
    /// Opens the run in `out`: resumes from its latest checkpoint if there is one (H's config,
    /// T, and the generator's and encoder's hashes must match), else starts fresh from
    /// `cfg.seed`. `encoder_dir` is the encoder's export folder (loaded with
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
        let gen_cfg = generator.config().clone();
        if encoder.meta.encoder.input_size != cfg.hyper.input_size {
            return Err(TrainError::Config(format!(
                "the encoder reads {0}x{0} sketches, H {1}x{1}: both take the same sketch",
                encoder.meta.encoder.input_size, cfg.hyper.input_size
            ))
            .into());
        }
        cfg.val_samples = cfg.val_samples.max(1);
        let loss = loss.with_weights(cfg.l2_lambda, cfg.lpips_lambda, cfg.moco_lambda)?;
        let out = out.as_ref().to_path_buf();
        create_run_folders(&out)?;
        let hcfg = cfg.hyper.clone();
        let (h, h_vars) = e4e_encoder::init::seeded_var_map(
            derive_seed(cfg.seed, INIT_STREAM, 0),
            DType::F32,
            device,
            |vb| HyperNetwork::new(hcfg, &gen_cfg, vb),
        )?;
        let mut opt = Adam::new(
            trainable_vars(&h_vars),
            AdamConfig {
                lr: cfg.lr,
                ..AdamConfig::default()
            },
        )?;
        let encoder_sha256 = encoder.meta.encoder_sha256.clone();
        let mut step = 0;
        let mut init = None;
        if let Some(path) = latest_checkpoint(out.join("checkpoints"))? {
            let ck = Checkpoint::load(&path)?;
            let resume_err = |message: String| TrainError::Resume {
                path: path.clone(),
                message,
            };
            let saved: RefinerTrainConfig = serde_json::from_value(ck.meta.config.clone())
                .map_err(|e| resume_err(format!("unreadable training config: {e}")))?;
            if saved.hyper != cfg.hyper || saved.iterations != cfg.iterations {
                return Err(resume_err(
                    "the checkpoint's H config or iteration count differs from the requested \
                     one; use another output folder or the same config"
                        .into(),
                )
                .into());
            }
            for (key, want) in [
                ("generator_sha256", generator.sha256()),
                ("encoder_sha256", encoder_sha256.as_str()),
            ] {
                let got = ck.meta.extra.get(key).and_then(|v| v.as_str());
                if got != Some(want) {
                    return Err(resume_err(format!(
                        "the run was trained with {key} {got:?}, the given one is {want}"
                    ))
                    .into());
                }
            }
            ck.restore_varmap("h", &h_vars)?;
            ck.restore_optimizer("opt", &mut opt)?;
            step = ck.meta.step;
            if let Some(v) = ck.meta.extra.get(INIT_KEY) {
                init = Some(
                    serde_json::from_value(v.clone())
                        .map_err(|e| resume_err(format!("unreadable `{INIT_KEY}`: {e}")))?,
                );
            }
        } else if let Some(dir) = &cfg.init_from {
            init = Some(load_init(dir, &cfg.hyper, generator.sha256(), &h_vars)?);
        }
        let columns = log_columns(cfg.iterations, &extras);
        let col_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
        let logger = open_log(&out, &col_refs, step)?;
        Ok(Self {
            order: EpochOrder::new(cfg.seed),
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
        })
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
    fn codes(&self, sketch: &Tensor) -> Result<Tensor> {
        let w = self.encoder.embed(sketch)?;
        Ok(Encoder::to_w_plus(&w, self.g.config().n_latent())?)
    }

    /// The gradient of one batch: T refinement iterations, each back-propagating its own
    /// L_sim (previous image and offset sum detached), H's gradients summed over t. The
    /// returned store is the last iteration's with H's summed gradients in place of its own
    /// (so it holds the gradient of every `Var` the graph reached; G's and E's weights are
    /// not `Var`s). H's BatchNorm statistics are updated T times (train mode).
    pub fn accumulated_gradients(&self, pairs: &Pairs) -> Result<(GradStore, IterationLosses)> {
        check_pairs(
            pairs,
            self.g.config().size as usize,
            self.cfg.hyper.input_size,
        )?;
        let w_plus = self.codes(&pairs.sketches)?;
        let y0 = self.g.image(&w_plus)?.detach();
        let sim_e = scalar(&self.loss.forward(&y0, &pairs.images)?.total)?;

        let params = trainable_vars(&self.h_vars);
        let mut summed: HashMap<String, Tensor> = HashMap::new();
        let mut sum = Refinement::new();
        let mut previous = y0;
        let mut losses = IterationLosses {
            sim_e,
            sim_t: Vec::with_capacity(self.cfg.iterations),
            l2_last: f64::NAN,
            perceptual_last: f64::NAN,
            extras: Vec::with_capacity(self.extras.terms.len()),
        };
        // The extra terms' per-batch state (targets computed once per batch).
        let image_size = self.g.config().size as usize;
        let extras = self
            .extras
            .terms
            .iter()
            .map(|e| e.for_batch(pairs, image_size))
            .collect::<Result<Vec<_>>>()?;
        let mut last = None;
        for t in 1..=self.cfg.iterations {
            // Free the previous iteration's graph before building this one.
            drop(last.take());
            let x = self.h.input(&pairs.sketches, &previous)?;
            let delta = self.h.forward_t(&x, true)?;
            let mut current = sum.detached();
            current.accumulate(&delta)?;
            let image = self.g.image_with_offsets(&w_plus, &current.offsets())?;
            let terms = self.loss.forward(&image, &pairs.images)?;
            let v = scalar(&terms.total)?;
            check_finite(self.step, &format!("L_sim at iteration {t}"), v, &self.out)?;
            (_, losses.l2_last, losses.perceptual_last, _) = terms.values()?;
            losses.sim_t.push(v);
            let mut objective = terms.total.clone();
            losses.extras.clear();
            for (term, batch_term) in self.extras.terms.iter().zip(&extras) {
                let extra = batch_term.loss(&image)?;
                losses
                    .extras
                    .push((term.name().to_string(), scalar(&extra)?));
                objective = (objective + (extra * term.weight())?)?;
            }
            let grads = objective.backward()?;
            for (name, var) in &params {
                if let Some(g) = grads.get(var.as_tensor()) {
                    let g = g.detach();
                    let next = match summed.remove(name) {
                        Some(acc) => (acc + g)?,
                        None => g,
                    };
                    summed.insert(name.clone(), next);
                }
            }
            // Cut everything the next iteration reads from this one's graph.
            previous = image.detach();
            sum = current.detached();
            last = Some(grads);
        }
        let mut grads = last.ok_or_else(|| TrainError::Config("iterations must be >= 1".into()))?;
        for (name, var) in &params {
            if let Some(g) = summed.remove(name) {
                grads.insert(var.as_tensor(), g);
            }
        }
        Ok((grads, losses))
    }

    /// One step: [`RefinerTrainer::accumulated_gradients`] on the step's batch, one Adam step.
    pub fn train_step(&mut self, data: &dyn PairDataset) -> Result<RefinerStepStats> {
        let start = Instant::now();
        let n = data.len();
        if n == 0 {
            return Err(TrainError::Data("the dataset is empty".into()).into());
        }
        let indices = self.order.indices(self.step, self.cfg.batch, n);
        let pairs = data.load(&indices, &self.device)?;
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
        if self.cfg.log_every > 0 && self.step.is_multiple_of(self.cfg.log_every) {
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
            self.cfg.seed,
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
            self.cfg.keep_checkpoints.max(1),
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
        Ok(e4e_encoder::run::write_loss_plot(
            &self.out,
            "Phase 2: refiner H",
            &cols,
        )?)
    }

    /// Writes the refiner bundle ([`crate::bundle`]) to `dir`.
    pub fn export(&self, dir: &Path) -> Result<RefinerMeta> {
        let weights = varmap_tensors(&self.h_vars);
        let meta = RefinerMeta {
            format: REFINER_FORMAT.into(),
            hyper: self.cfg.hyper.clone(),
            iterations: self.cfg.iterations,
            generator: GeneratorRef {
                file: self.g.source().to_string(),
                sha256: self.g.sha256().to_string(),
                config: self.g.config().clone(),
            },
            encoder: EncoderRef {
                dir: self.encoder_dir.clone(),
                sha256: self.encoder_sha256.clone(),
            },
            data: DataInfo {
                description: self.data_description.clone(),
                sketch_source: self.sketch_source.clone(),
            },
            losses: LossInfo::new(&self.loss, self.extras.adv_lambda),
            extra_terms: self.extras.record.clone(),
            init: self.init.clone(),
            optimizer: format!(
                "Adam(lr {}, betas 0.9/0.999), loss at each of T = {} iterations, one step per \
                 batch (HyperStyle used Ranger with lr 1e-4)",
                self.cfg.lr, self.cfg.iterations
            ),
            steps: self.step,
            batch: self.cfg.batch,
            seed: self.cfg.seed,
            created_unix_s: unix_time(),
            refiner_sha256: String::new(),
        };
        Ok(write_weights_bundle(
            dir,
            REFINER_WEIGHTS,
            &weights,
            REFINER_JSON,
            |sha256| RefinerMeta {
                refiner_sha256: sha256,
                ..meta
            },
        )?)
    }
}

e4e_encoder::impl_train_loop!(RefinerTrainer, RefinerStepStats, RefinerError);
