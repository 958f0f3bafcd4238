//! Phase 1 of Sketch2MedI's training: the encoder E and the latent discriminator D_w, with the
//! generator G frozen (paper Eq. 3-5; e4e `training/coach.py` with `start_from_latent_avg`,
//! `--w_discriminator_lambda`, lazy R1).
//!
//! Per step, on a batch of (sketch x, image y) pairs:
//!
//! ```text
//! w      = E(x) + w_avg                   (BatchNorm in train mode: batch statistics, running
//!                                          statistics updated and checkpointed)
//! D_w:   L_D = mean softplus(-D(mapping(z))) + mean softplus(D(w.detach()))   Adam(2e-5)
//!        every d_reg_every = 16 steps: + gamma/2 * R1 * 16, gamma = 10, R1 at real w
//! E:     L_E = L_sim(G(w), y) + lambda_adv * mean softplus(-D(w))            Adam(1e-4)
//!        L_sim = 1.0 * MSE + 0.8 * perceptual (+ 0.5 * (1 - cos MoCo) when its weights exist)
//! ```
//!
//! w_avg is the mean of `mapping(z)` over 10,000 seeded z, computed once when the run starts
//! and stored in every checkpoint and in the export. G runs with its constant noise buffers.
//! G's weights are plain tensors ([`FrozenGenerator`]): gradients flow through G to w but never
//! into G. D_w is trained only when lambda_adv > 0 (as in e4e).
//!
//! NOTE (deviations from e4e):
//! - optimiser: Adam(lr 1e-4, betas 0.9/0.999) instead of e4e's Ranger (RAdam + Lookahead +
//!   gradient centralisation, same lr 1e-4): `s2m_train::optim::Adam` is the workspace's
//!   optimiser with exactly resumable state; Ranger is not implemented.
//! - E runs once per step: D_w's fake codes are the detached codes of E's own forward pass
//!   (e4e runs E a second time under `no_grad`, which also updates the BatchNorm statistics a
//!   second time). E's adversarial term uses D_w after its update, as in e4e.
//! - no w-pool, no progressive W+ schedule and no delta-norm regulariser (the default E is
//!   single-w; for a W+ head all deltas train from step 0 and D_w sees slot 0).
//! - sketches are in [-1, 1] like the images (pSp feeds sketches in [0, 1]).
//!
//! Exports ([`EncoderTrainer::export`]) go to `<out>/export` in the format of
//! [`crate::bundle`], loaded by [`EncoderBundle::load`](crate::bundle::EncoderBundle::load).
//!
//! ```text
//! sketch2medi encoder train --data data/phantom64 --generator weights/stylegan2_phantom64 --out runs/enc
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarMap;
use losses::SimilarityLoss;
use s2m_core::rng::{Rng, derive_seed, randn_vec, rng_from_seed};
use s2m_train::Schedule;
use s2m_train::checkpoint::{Checkpoint, RngState};
use s2m_train::logcsv::CsvLogger;
use s2m_train::optim::{Adam, AdamConfig};
use s2m_train::resume::{self, ResumeReport};
use serde::{Deserialize, Serialize};

use crate::bundle::{
    DataInfo, ENCODER_FORMAT, ENCODER_JSON, ENCODER_WEIGHTS, EncoderInit, EncoderMeta,
    GeneratorRef, LATENT_AVG_FILE, LATENT_AVG_KEY, LATENT_AVG_SAMPLES, LatentAvgInfo, LossInfo,
    read_encoder_export,
};
use crate::config::EncoderConfig;
pub use crate::data::{PairDataset, Pairs, TensorPairs};
use crate::data::{check_pairs, load_validation, write_strip};
use crate::discriminator::{D_REG_EVERY, LatentDiscriminator, LatentDiscriminatorConfig, R1_GAMMA};
use crate::encoder::Encoder;
pub use crate::generator::FrozenGenerator;
use s2m_train::bundle::write_bundle;
use s2m_train::optim::varmap_tensors;
use s2m_train::run::{
    EpochOrder, check_finite, checkpoint_meta, create_run_folders, open_log, scalar, trainable_vars,
};
pub use s2m_train::run::{StopReason, run_training};
pub use s2m_train::{TrainError, TrainResult};

const LATENT_AVG_STREAM: u64 = 0x1A7E;
const INIT_STREAM: u64 = 0x1417;
const TRAIN_STREAM: u64 = 0x7EA1;
const TRAIN_RNG: &str = "train";
/// Checkpoint `extra` key of the warm start (`init_from`: the export and its w_avg).
const INIT_KEY: &str = "init_from";

/// Hyper-parameters of phase 1 (e4e defaults unless noted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EncoderTrainConfig {
    /// E's architecture; `style_dim` must be the generator's.
    pub encoder: EncoderConfig,
    /// Pairs per step (e4e README: 8).
    pub batch: usize,
    /// Adam learning rate of E (e4e: 1e-4, with Ranger).
    pub lr: f64,
    /// L_sim weights: MSE (e4e `l2_lambda` 1.0), perceptual (`lpips_lambda` 0.8), MoCo
    /// (`moco_lambda` 0.5 for non-face data; only used when the MoCo weights exist).
    pub l2_lambda: f64,
    pub lpips_lambda: f64,
    pub moco_lambda: f64,
    /// Weight of E's adversarial term (e4e `--w_discriminator_lambda`, README 0.1); 0 disables
    /// D_w entirely.
    pub adv_lambda: f64,
    /// Adam learning rate of D_w (e4e `--w_discriminator_lr` 2e-5).
    pub d_lr: f64,
    /// R1 weight gamma (e4e `--r1` 10) and lazy interval (`--d_reg_every` 16).
    pub r1_gamma: f64,
    pub d_reg_every: u64,
    /// z's averaged for w_avg.
    pub latent_avg_samples: usize,
    /// Base seed (init, data order, z's, w_avg) and the cadences of the sample strips (+ loss
    /// curves), checkpoints and log rows; top-level keys of the JSON.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Rows of the sample strip (the first pairs of the validation data).
    pub val_samples: usize,
    /// Fine-tune: start E (and take w_avg) from this encoder export folder (same E config,
    /// same generator) instead of the seeded initialisation; D_w starts fresh.
    pub init_from: Option<PathBuf>,
}

impl Default for EncoderTrainConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderConfig::narrow_cpu(),
            batch: 8,
            lr: 1e-4,
            l2_lambda: SimilarityLoss::DEFAULT_L2,
            lpips_lambda: SimilarityLoss::DEFAULT_LPIPS,
            moco_lambda: SimilarityLoss::DEFAULT_MOCO,
            adv_lambda: 0.1,
            d_lr: 2e-5,
            r1_gamma: R1_GAMMA,
            d_reg_every: D_REG_EVERY as u64,
            latent_avg_samples: LATENT_AVG_SAMPLES,
            schedule: Schedule::default(),
            val_samples: 8,
            init_from: None,
        }
    }
}

impl EncoderTrainConfig {
    pub fn validate(&self) -> TrainResult<()> {
        self.encoder.validate()?;
        self.schedule.validate()?;
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.batch == 0 {
            return bad("batch must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.d_lr > 0.0 && self.d_lr.is_finite()) {
            return bad("lr and d_lr must be positive");
        }
        for (name, v) in [
            ("l2_lambda", self.l2_lambda),
            ("lpips_lambda", self.lpips_lambda),
            ("moco_lambda", self.moco_lambda),
            ("adv_lambda", self.adv_lambda),
            ("r1_gamma", self.r1_gamma),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(TrainError::Config(format!(
                    "{name} = {v} must be finite and >= 0"
                )));
            }
        }
        if self.d_reg_every == 0 {
            return bad("d_reg_every must be at least 1");
        }
        if self.latent_avg_samples == 0 {
            return bad("latent_avg_samples must be at least 1");
        }
        Ok(())
    }
}

/// Losses of one step (NaN where a term did not run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderStepStats {
    pub step: u64,
    /// E's total loss (L_sim + lambda_adv * adv).
    pub total: f64,
    /// L_sim and its unweighted terms.
    pub sim: f64,
    pub l2: f64,
    pub perceptual: f64,
    pub moco: f64,
    /// E's adversarial term (unweighted).
    pub adv: f64,
    pub d_loss: f64,
    /// R1 = mean ||dD/dw||^2 (unweighted), every d_reg_every steps.
    pub r1: f64,
    pub real_score: f64,
    pub fake_score: f64,
    pub seconds: f64,
}

const LOG_COLUMNS: [&str; 11] = [
    "total",
    "sim",
    "l2",
    "perceptual",
    "moco",
    "adv",
    "d_loss",
    "r1",
    "real_score",
    "fake_score",
    "sec_per_step",
];

/// E's loss on one batch, with its graph (see [`EncoderTrainer::encoder_objective`]).
#[derive(Debug, Clone)]
pub struct EncoderObjective {
    /// L_sim + lambda_adv * adv, to call `backward()` on.
    pub total: Tensor,
    pub sim: losses::SimilarityTerms,
    /// The unweighted adversarial term, when D_w is active.
    pub adv: Option<Tensor>,
    /// w = E(x) + w_avg.
    pub w: Tensor,
    /// G(w).
    pub image: Tensor,
}

/// A phase-1 run in a folder: `checkpoints/`, `log.csv`, `loss.png`, `samples/`, `export/`.
pub struct EncoderTrainer {
    cfg: EncoderTrainConfig,
    out: PathBuf,
    device: Device,
    g: FrozenGenerator,
    loss: SimilarityLoss,
    encoder: Encoder,
    e_vars: VarMap,
    d: LatentDiscriminator,
    d_vars: VarMap,
    e_opt: Adam,
    d_opt: Adam,
    rng: Rng,
    step: u64,
    latent_avg: Tensor,
    logger: CsvLogger,
    order: EpochOrder,
    val: Option<Pairs>,
    data_description: String,
    sketch_source: String,
    /// The export E started from and the provenance of its w_avg (`init_from`).
    init: Option<(EncoderInit, LatentAvgInfo)>,
    resume_report: ResumeReport,
}

impl EncoderTrainer {
    /// Opens the run in `out`: resumes from its latest checkpoint if there is one (E's config
    /// and the generator's sha256 must match), else starts fresh from the schedule's seed (and computes
    /// w_avg). `loss` gets the config's weights.
    pub fn open(
        mut cfg: EncoderTrainConfig,
        generator: FrozenGenerator,
        loss: SimilarityLoss,
        out: impl AsRef<Path>,
        device: &Device,
    ) -> TrainResult<Self> {
        cfg.validate()?;
        let gen_cfg = generator.config().clone();
        if cfg.encoder.style_dim != gen_cfg.style_dim {
            return Err(TrainError::Config(format!(
                "the encoder's style_dim {} differs from the generator's {} (use \
                 EncoderConfig::for_generator)",
                cfg.encoder.style_dim, gen_cfg.style_dim
            )));
        }
        if cfg.encoder.n_styles() != 1 && cfg.encoder.n_styles() != gen_cfg.n_latent() {
            return Err(TrainError::Config(format!(
                "the encoder's W+ head has {} styles, the generator {} latents",
                cfg.encoder.n_styles(),
                gen_cfg.n_latent()
            )));
        }
        if cfg.adv_lambda > 0.0 && cfg.r1_gamma > 0.0 {
            s2m_train::autograd::ensure_second_order_gradients()?;
        }
        cfg.val_samples = cfg.val_samples.max(1);
        let loss = loss.with_weights(cfg.l2_lambda, cfg.lpips_lambda, cfg.moco_lambda)?;
        let out = out.as_ref().to_path_buf();
        create_run_folders(&out)?;
        let dtype = DType::F32;
        let ecfg = cfg.encoder.clone();
        let (encoder, e_vars) = crate::init::seeded_var_map(
            derive_seed(cfg.schedule.seed, INIT_STREAM, 0),
            dtype,
            device,
            |vb| Encoder::new(ecfg, vb),
        )?;
        let (d, d_vars) = LatentDiscriminator::init(
            LatentDiscriminatorConfig::for_style_dim(gen_cfg.style_dim),
            derive_seed(cfg.schedule.seed, INIT_STREAM, 1),
            dtype,
            device,
        )?;
        let mut e_opt = Adam::new(
            trainable_vars(&e_vars),
            AdamConfig {
                lr: cfg.lr,
                ..AdamConfig::default()
            },
        )?;
        let mut d_opt = Adam::new(
            trainable_vars(&d_vars),
            AdamConfig {
                lr: cfg.d_lr,
                ..AdamConfig::default()
            },
        )?;
        let mut rng = rng_from_seed(derive_seed(cfg.schedule.seed, TRAIN_STREAM, 0));
        let mut step = 0;
        let (found, resume_report) = resume::open_run(&out)?;
        // The warm start: recorded in the checkpoint of a resumed run (the export need not
        // exist any more, and `init_from` may be left out); read from the export otherwise.
        let recorded: Option<(EncoderInit, LatentAvgInfo)> = match &found {
            Some((path, ck)) => match ck.meta.extra.get(INIT_KEY) {
                Some(v) => {
                    Some(
                        serde_json::from_value(v.clone()).map_err(|e| TrainError::Resume {
                            path: path.clone(),
                            message: format!("unreadable `{INIT_KEY}` record: {e}"),
                        })?,
                    )
                }
                None => None,
            },
            None => None,
        };
        let init_dir = match (&found, &recorded) {
            (Some(_), Some(_)) => None,
            _ => cfg.init_from.as_ref(),
        };
        let init = match init_dir {
            Some(dir) => {
                let (meta, tensors, avg) = read_encoder_export(dir, device)?;
                let bad = |message: String| TrainError::Bundle {
                    path: dir.join(ENCODER_JSON),
                    message,
                };
                if meta.encoder != cfg.encoder {
                    return Err(bad(format!(
                        "init_from: the encoder's config {:?} differs from the requested {:?}",
                        meta.encoder, cfg.encoder
                    )));
                }
                if meta.generator.sha256 != generator.sha256() {
                    return Err(bad(format!(
                        "init_from: the encoder was trained with generator sha256 {}, the given \
                         one is {}",
                        meta.generator.sha256,
                        generator.sha256()
                    )));
                }
                let info = EncoderInit {
                    dir: dir.display().to_string(),
                    sha256: meta.encoder_sha256.clone(),
                    steps: meta.steps,
                };
                Some((info, meta.latent_avg, tensors, avg))
            }
            None => None,
        };
        let latent_avg = match found {
            Some((path, ck)) => {
                let resume_err = |message: String| TrainError::Resume {
                    path: path.clone(),
                    message,
                };
                // The warm start only applies when a run starts.
                let mut may_change = resume::MAY_CHANGE.to_vec();
                may_change.push("init_from");
                resume::check_run_config(&path, &ck, &cfg, &may_change)?;
                let saved_sha = ck
                    .meta
                    .extra
                    .get("generator_sha256")
                    .and_then(|v| v.as_str());
                if saved_sha != Some(generator.sha256()) {
                    return Err(resume_err(format!(
                        "the run was trained with generator sha256 {saved_sha:?}, but {} has {}",
                        generator.source(),
                        generator.sha256()
                    )));
                }
                ck.restore_varmap("e", &e_vars)?;
                ck.restore_varmap("d", &d_vars)?;
                ck.restore_optimizer("e_opt", &mut e_opt)?;
                ck.restore_optimizer("d_opt", &mut d_opt)?;
                rng = ck.rng(TRAIN_RNG)?;
                step = ck.meta.step;
                ck.tensor(&format!("state.{LATENT_AVG_KEY}"))?
                    .to_device(device)?
                    .to_dtype(dtype)?
            }
            None => match &init {
                Some((_, _, tensors, avg)) => {
                    s2m_train::optim::load_varmap(tensors, &e_vars, "init_from encoder", "")?;
                    avg.to_dtype(dtype)?
                }
                None => generator.generator().mean_latent(
                    cfg.latent_avg_samples,
                    &mut rng_from_seed(derive_seed(cfg.schedule.seed, LATENT_AVG_STREAM, 0)),
                )?,
            },
        };
        let init = recorded.or(init.map(|(info, avg_info, _, _)| (info, avg_info)));
        let logger = open_log(&out, &LOG_COLUMNS, step)?;
        Ok(Self {
            order: EpochOrder::new(cfg.schedule.seed),
            cfg,
            out,
            device: device.clone(),
            g: generator,
            loss,
            encoder,
            e_vars,
            d,
            d_vars,
            e_opt,
            d_opt,
            rng,
            step,
            latent_avg,
            logger,
            val: None,
            data_description: String::new(),
            sketch_source: String::new(),
            init,
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
    pub fn config(&self) -> &EncoderTrainConfig {
        &self.cfg
    }
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }
    /// w_avg `[1, S]`.
    pub fn latent_avg(&self) -> &Tensor {
        &self.latent_avg
    }
    pub fn generator(&self) -> &FrozenGenerator {
        &self.g
    }
    /// The similarity loss with its notes (e.g. "MoCo left out").
    pub fn similarity(&self) -> &SimilarityLoss {
        &self.loss
    }
    /// E's parameters (the vars its optimiser updates, BatchNorm statistics excluded).
    pub fn trainable_names(&self) -> Vec<String> {
        self.e_opt.names().iter().map(|s| s.to_string()).collect()
    }
    /// E's `VarMap` (parameters and BatchNorm statistics).
    pub fn encoder_vars(&self) -> &VarMap {
        &self.e_vars
    }

    /// Uses the first `val_samples` pairs of `data` for the sample strips (otherwise the
    /// first pairs of the training data are used).
    pub fn set_validation(&mut self, data: &dyn PairDataset) -> TrainResult<()> {
        self.val = Some(load_validation(
            data,
            self.cfg.val_samples,
            &self.device,
            self.g.config().size as usize,
            self.cfg.encoder.input_size,
        )?);
        Ok(())
    }

    /// E's loss on one batch (train-mode BatchNorm when `train`), with its autograd graph. The
    /// only `Var`s in the graph are E's (and D_w's, whose gradients phase 1 discards).
    pub fn encoder_objective(
        &self,
        pairs: &Pairs,
        train: bool,
        d: Option<&LatentDiscriminator>,
    ) -> TrainResult<EncoderObjective> {
        check_pairs(
            pairs,
            self.g.config().size as usize,
            self.cfg.encoder.input_size,
        )?;
        let codes = self.encoder.forward_t(&pairs.sketches, train)?;
        let w = Encoder::add_latent_avg(&codes, &self.latent_avg)?;
        self.objective_for_codes(w, &pairs.images, d)
    }

    fn objective_for_codes(
        &self,
        w: Tensor,
        target: &Tensor,
        d: Option<&LatentDiscriminator>,
    ) -> TrainResult<EncoderObjective> {
        let image = self.g.image(&w)?;
        let sim = self.loss.forward(&image, target)?;
        let (total, adv) = match d {
            Some(d) if self.cfg.adv_lambda > 0.0 => {
                let adv = crate::discriminator::g_adv_loss(d, &w)?;
                ((&sim.total + (&adv * self.cfg.adv_lambda)?)?, Some(adv))
            }
            _ => (sim.total.clone(), None),
        };
        Ok(EncoderObjective {
            total,
            sim,
            adv,
            w,
            image,
        })
    }

    /// D_w's step (and the lazy R1 step) on real w = mapping(z) vs the detached codes;
    /// returns `(d_loss, r1, real_score, fake_score)`.
    fn discriminator_step(&mut self, w: &Tensor) -> TrainResult<(f64, f64, f64, f64)> {
        let b = w.dim(0)?;
        let s = self.g.config().style_dim;
        let z = Tensor::from_vec(randn_vec(&mut self.rng, b * s), (b, s), &self.device)?;
        let real_w = self.g.generator().mapping(&z)?.detach();
        // D_w sees one code per sample: slot 0 of W+ codes (e4e without the w-pool).
        let fake_w = match w.rank() {
            3 => w.i((.., 0))?.detach(),
            _ => w.detach(),
        };
        let real = self.d.forward(&real_w)?;
        let fake = self.d.forward(&fake_w)?;
        let d_loss = s2m_train::gan::d_logistic_loss(&real, &fake)?;
        let d_loss_v = scalar(&d_loss)?;
        check_finite(self.step, "D_w loss", d_loss_v, &self.out)?;
        let grads = d_loss.backward()?;
        self.d_opt.step(&grads)?;
        drop(grads);
        let mut r1_v = f64::NAN;
        if self.cfg.r1_gamma > 0.0 && self.step.is_multiple_of(self.cfg.d_reg_every) {
            let k = self.cfg.d_reg_every as usize;
            let r1 = crate::discriminator::r1_loss(&self.d, &real_w, self.cfg.r1_gamma, k)?;
            let weighted = scalar(&r1)?;
            check_finite(self.step, "R1", weighted, &self.out)?;
            r1_v = weighted / (self.cfg.r1_gamma / 2.0 * k as f64);
            let grads = r1.backward()?;
            self.d_opt.step(&grads)?;
        }
        Ok((
            d_loss_v,
            r1_v,
            scalar(&real.mean_all()?)?,
            scalar(&fake.mean_all()?)?,
        ))
    }

    /// One step: D_w (+ lazy R1), then E.
    pub fn train_step(&mut self, data: &dyn PairDataset) -> TrainResult<EncoderStepStats> {
        let start = Instant::now();
        let n = data.len();
        if n == 0 {
            return Err(TrainError::Data("the dataset is empty".into()));
        }
        let indices = self.order.indices(self.step, self.cfg.batch, n);
        let pairs = data.load_for_step(self.step, &indices, &self.device)?;
        check_pairs(
            &pairs,
            self.g.config().size as usize,
            self.cfg.encoder.input_size,
        )?;
        let codes = self.encoder.forward_t(&pairs.sketches, true)?;
        let w = Encoder::add_latent_avg(&codes, &self.latent_avg)?;

        let (d_loss, r1, real_score, fake_score) = if self.cfg.adv_lambda > 0.0 {
            self.discriminator_step(&w)?
        } else {
            (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
        };

        let obj = self.objective_for_codes(w, &pairs.images, Some(&self.d))?;
        let total = scalar(&obj.total)?;
        check_finite(self.step, "encoder loss", total, &self.out)?;
        let (sim, l2, perceptual, moco) = obj.sim.values()?;
        let adv = obj
            .adv
            .as_ref()
            .map(scalar)
            .transpose()?
            .unwrap_or(f64::NAN);
        let grads = obj.total.backward()?;
        self.e_opt.step(&grads)?;
        drop(grads);

        self.step += 1;
        let stats = EncoderStepStats {
            step: self.step,
            total,
            sim,
            l2,
            perceptual,
            moco: moco.unwrap_or(f64::NAN),
            adv,
            d_loss,
            r1,
            real_score,
            fake_score,
            seconds: start.elapsed().as_secs_f64(),
        };
        if self.cfg.schedule.log_every > 0 && self.step.is_multiple_of(self.cfg.schedule.log_every)
        {
            self.logger.log(
                self.step,
                &[
                    stats.total,
                    stats.sim,
                    stats.l2,
                    stats.perceptual,
                    stats.moco,
                    stats.adv,
                    stats.d_loss,
                    stats.r1,
                    stats.real_score,
                    stats.fake_score,
                    stats.seconds,
                ],
            )?;
        }
        Ok(stats)
    }

    /// Writes a checkpoint of the whole run state (atomic, rotated).
    pub fn save_checkpoint(&self) -> TrainResult<PathBuf> {
        let mut meta = checkpoint_meta(
            self.step,
            self.cfg.schedule.seed,
            &self.cfg,
            &[("generator_sha256", self.g.sha256())],
        )?;
        meta.rng
            .insert(TRAIN_RNG.into(), RngState::capture(&self.rng));
        if let Some(init) = &self.init {
            let value = serde_json::to_value(init)
                .map_err(|e| TrainError::Config(format!("cannot record init_from: {e}")))?;
            meta.extra.insert(INIT_KEY.into(), value);
        }
        let mut ck = Checkpoint::new(meta);
        ck.add_varmap("e", &self.e_vars)?;
        ck.add_varmap("d", &self.d_vars)?;
        ck.add_optimizer("e_opt", &self.e_opt)?;
        ck.add_optimizer("d_opt", &self.d_opt)?;
        ck.add_tensors("state", [(LATENT_AVG_KEY, &self.latent_avg)])?;
        Ok(ck.save_in(
            self.out.join("checkpoints"),
            self.cfg.schedule.keep_checkpoints.max(1),
        )?)
    }

    /// E's eval-mode codes + w_avg for `sketch` (no update of any statistic).
    pub fn embed(&self, sketch: &Tensor) -> TrainResult<Tensor> {
        let codes = self.encoder.forward(sketch)?;
        Ok(Encoder::add_latent_avg(&codes, &self.latent_avg)?.detach())
    }

    /// The strip `sketch | G(E(sketch)) | target` of the validation pairs (eval mode).
    pub fn write_samples(&self, path: &Path) -> TrainResult<()> {
        let Some(val) = &self.val else {
            return Ok(());
        };
        let image = self.g.image(&self.embed(&val.sketches)?)?;
        write_strip(path, &[val.sketches.clone(), image, val.images.clone()])
    }

    /// Redraws `<out>/loss.png`.
    pub fn write_loss_plot(&self) -> TrainResult<()> {
        s2m_train::run::write_loss_plot(&self.out, "Phase 1: encoder E + D_w", &LOG_COLUMNS[..10])
    }

    /// Writes the encoder bundle ([`crate::bundle`]) to `dir`.
    pub fn export(&self, dir: &Path) -> TrainResult<EncoderMeta> {
        let weights = varmap_tensors(&self.e_vars);
        let avg = HashMap::from([(LATENT_AVG_KEY.to_string(), self.latent_avg.detach())]);
        let meta = EncoderMeta {
            format: ENCODER_FORMAT.into(),
            encoder: self.cfg.encoder.clone(),
            generator: GeneratorRef {
                file: self.g.source().to_string(),
                sha256: self.g.sha256().to_string(),
                config: self.g.config().clone(),
            },
            latent_avg: match &self.init {
                Some((init, info)) => LatentAvgInfo {
                    how: format!("{} (from the init_from encoder {})", info.how, init.dir),
                    ..info.clone()
                },
                None => LatentAvgInfo {
                    file: LATENT_AVG_FILE.into(),
                    samples: self.cfg.latent_avg_samples,
                    seed: derive_seed(self.cfg.schedule.seed, LATENT_AVG_STREAM, 0),
                    how: "mean of mapping(z) over seeded N(0, I) z (ChaCha8 stream of the seed)"
                        .into(),
                },
            },
            data: DataInfo {
                description: self.data_description.clone(),
                sketch_source: self.sketch_source.clone(),
            },
            losses: LossInfo::new(&self.loss, self.cfg.adv_lambda),
            optimizer: format!(
                "Adam(lr {}, betas 0.9/0.999) for E; Adam(lr {}) for D_w; R1 gamma {} every {} \
                 steps (e4e used Ranger with lr 1e-4)",
                self.cfg.lr, self.cfg.d_lr, self.cfg.r1_gamma, self.cfg.d_reg_every
            ),
            steps: self.step,
            batch: self.cfg.batch,
            seed: self.cfg.schedule.seed,
            created_unix_s: s2m_train::run::unix_time(),
            encoder_sha256: String::new(),
            latent_avg_sha256: None,
            init_from: self.init.as_ref().map(|(i, _)| i.clone()),
        };
        write_bundle(
            dir,
            &[(ENCODER_WEIGHTS, &weights), (LATENT_AVG_FILE, &avg)],
            ENCODER_JSON,
            |stage| {
                Ok(EncoderMeta {
                    encoder_sha256: s2m_train::bundle::sha256_file(&stage.join(ENCODER_WEIGHTS))?,
                    latent_avg_sha256: Some(s2m_train::bundle::sha256_file(
                        &stage.join(LATENT_AVG_FILE),
                    )?),
                    ..meta
                })
            },
        )
    }
}

crate::impl_train_loop!(EncoderTrainer, EncoderStepStats, TrainError);
