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
//!     L_t  = L_sim(ŷ_t, y) [+ optional terms],  backward(L_t)
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
//! Optional, off by default (NOTE: not in HyperStyle or the paper): a sketch-weighted MSE
//! (`sketch_l2_lambda`), a region loss on the targets' label maps (`region_lambda`,
//! [`region_colour_loss`]), a structure loss (`structure_lambda`: cross-entropy + soft Dice of
//! a frozen [`crate::structure::StructureNet`] on ŷ_t against the target's label map) and a
//! realism term (`adv_lambda`), the non-saturating GAN loss of the generator's own
//! discriminator D, frozen ([`load_discriminator`]).
//!
//! NOTE (deviations from HyperStyle): Adam(lr 1e-4, betas 0.9/0.999) instead of Ranger(1e-4);
//! H's input is `[ŷ, sketch]` (4 channels) instead of `[x, ŷ]` (6); sketches in [-1, 1].
//! Phase 2 draws no random numbers after initialisation (the data order is a function of
//! `(seed, epoch)`), so its checkpoints hold H, Adam's state and the step but no RNG.
//!
//! Exports ([`RefinerTrainer::export`], loaded by [`RefinerBundle::load`]):
//!
//! ```text
//! export/refiner.safetensors  H's tensors under HyperStyle's names (BatchNorm statistics included)
//! export/refiner.json         RefinerMeta: format tag, HyperConfig, T, generator sha256 + config,
//!                             encoder sha256 + folder, data + sketch source, losses, optimiser,
//!                             steps, seed, time, sha256 of refiner.safetensors
//! ```
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
use e4e_encoder::FrozenGenerator;
use e4e_encoder::data::{PairDataset, Pairs, check_pairs, load_validation, write_strip};
use e4e_encoder::train::{DataInfo, GeneratorRef, LossInfo};
use e4e_encoder::{Encoder, EncoderBundle};
use losses::SimilarityLoss;
use s2m_core::rng::derive_seed;
use s2m_train::TrainError;
use s2m_train::bundle::{
    bundle_file, read_bundle_json, sha256_file, verify_sha256, write_weights_bundle,
};
use s2m_train::checkpoint::{Checkpoint, latest_checkpoint};
use s2m_train::logcsv::CsvLogger;
use s2m_train::optim::varmap_tensors;
use s2m_train::optim::{Adam, AdamConfig};
use s2m_train::run::{
    EpochOrder, check_finite, checkpoint_meta, create_run_folders, open_log, scalar,
    trainable_vars, unix_time,
};
use serde::{Deserialize, Serialize};
use stylegan2::{Discriminator, StyleGan2Config};

use crate::config::HyperConfig;
use crate::hypernet::{DEFAULT_SKETCH_CHANNEL_INIT, HyperNetwork};
use crate::refinement::{DEFAULT_STEPS, Refinement, refine};
use crate::structure::{
    FeatureTarget, StructureBundle, StructureNet, label_classes, one_hot, structure_loss,
};

pub use s2m_train::run::{StopReason, run_training};

use crate::error::{RefinerError, Result};

/// Format tag of `refiner.json`.
pub const REFINER_FORMAT: &str = "sketch2medi-refiner/1";
pub const REFINER_WEIGHTS: &str = "refiner.safetensors";
pub const REFINER_JSON: &str = "refiner.json";

const INIT_STREAM: u64 = 0x4E7;
/// The minibatch-stddev group of rosinality's discriminator.
const DISCRIMINATOR_GROUP: usize = 4;
/// Checkpoint `extra` key of the warm start ([`InitRef`]).
const INIT_KEY: &str = "init_from";

/// The refiner a run was initialised from (`RefinerTrainConfig::init_from`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitRef {
    /// The export folder given.
    pub dir: String,
    /// sha256 of its `refiner.safetensors`.
    pub sha256: String,
    /// Its training steps (from its `refiner.json`).
    pub steps: u64,
}

/// The metadata and the weights file of the refiner export `dir` (errors name the missing or
/// bad file). The caller checks the metadata, then the file's sha256 ([`verify_sha256`]).
fn read_export(dir: &Path) -> Result<(RefinerMeta, PathBuf)> {
    let meta: RefinerMeta = read_bundle_json(dir, REFINER_JSON, "refiner", REFINER_FORMAT)?;
    let weights = bundle_file(dir, REFINER_WEIGHTS, "refiner")?;
    Ok((meta, weights))
}

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
    s2m_train::optim::load_varmap(&tensors, h_vars, "init_from refiner", "")
        .map_err(|e| e.in_file(&weights))?;
    Ok(InitRef {
        dir: dir.display().to_string(),
        sha256: meta.refiner_sha256,
        steps: meta.steps,
    })
}

/// A frozen StyleGAN2 discriminator used as a realism prior (`RefinerTrainConfig::adv_lambda`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscriminatorRef {
    /// The file given (a `sketch2medi stylegan2 train` checkpoint, or a file of the
    /// discriminator's tensors alone).
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
}

/// Loads the discriminator of the generator config `gen_cfg` from `path`: a StyleGAN2
/// training checkpoint (its `d.*` tensors) or a safetensors file of the discriminator's
/// tensors under rosinality's names. Its weights are plain tensors (never trained here).
/// Errors name the file and, for a missing or mis-shaped tensor, the key.
pub fn load_discriminator(
    path: &Path,
    gen_cfg: &StyleGan2Config,
    device: &Device,
) -> Result<(Discriminator, DiscriminatorRef)> {
    let bad = |message: String| TrainError::Bundle {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(bad("the discriminator file does not exist".into()).into());
    }
    let sha256 = sha256_file(path)?;
    // Read on the CPU: a training checkpoint also holds G and the optimisers' states, and only
    // D's tensors go to `device`.
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| bad(format!("unreadable safetensors: {e}")))?;
    let prefix = if tensors.keys().any(|k| k.starts_with("d.")) {
        "d."
    } else {
        ""
    };
    let mut d_tensors = HashMap::new();
    for (k, v) in tensors {
        if let Some(name) = k.strip_prefix(prefix) {
            d_tensors.insert(name.to_string(), v.to_device(device)?);
        }
    }
    let vb = candle_nn::VarBuilder::from_tensors(d_tensors, DType::F32, device);
    let d = Discriminator::new(gen_cfg, vb).map_err(|e| {
        bad(format!(
            "not a discriminator for generator config {gen_cfg:?}: {e}"
        ))
    })?;
    Ok((
        d,
        DiscriminatorRef {
            file: path.display().to_string(),
            sha256,
        },
    ))
}

/// The non-saturating GAN loss `mean softplus(-D(image))` of a frozen discriminator: low when
/// `D` finds the images real. Its gradient reaches `image` only.
pub fn realism_loss(d: &Discriminator, image: &Tensor) -> Result<Tensor> {
    let logits = d.forward(image)?;
    Ok(s2m_train::gan::g_nonsaturating_loss(&logits)?)
}

/// Where the sketch has ink, dilated by one pixel (3 x 3 maximum) and resized (nearest) to
/// `size`: `[B, 1, size, size]` in [0, 1] from sketches `[B, 1, n, n]` in [-1, 1] (ink -1).
pub fn sketch_stroke_mask(sketch: &Tensor, size: usize) -> Result<Tensor> {
    let ink = ((1.0 - sketch.detach())? * 0.5)?.clamp(0f32, 1f32)?;
    let padded = ink.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let dilated = padded.max_pool2d_with_stride(3, 1)?;
    let (_, _, h, w) = dilated.dims4()?;
    Ok(if h == size && w == size {
        dilated
    } else {
        dilated.upsample_nearest2d(size, size)?
    })
}

/// Sketch-weighted MSE: Σ m ⊙ (ŷ − y)² / (C · Σ m), the squared error on the pixels the
/// sketch draws (`mask` from [`sketch_stroke_mask`], broadcast over the C channels). 0 for a
/// blank sketch. It weighs the drawn contours (small structures such as the uvula and the
/// tonsils included), where MSE over the whole image is dominated by the colour of the large
/// areas. Tried on the phantom (docs/ENCODER_REFINER.md, "Fine-tuning experiments"), it made H
/// blur those structures more, not less: an MSE on uncertain edges rewards blur.
pub fn sketch_weighted_mse(image: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let c = image.dim(1)? as f64;
    let sq = (image - target)?.sqr()?;
    let num = sq.broadcast_mul(mask)?.sum_all()?;
    let den = ((mask.sum_all()? * c)? + 1e-6)?;
    Ok(num.div(&den)?)
}

/// The region loss: for every structure (class) `c` of each target's label map, the squared
/// distance between the mean colours of `image` and `target` over the region of class `c`
/// (`label / 16 == c`, background excluded), averaged over the colour channels and over the
/// (sample, class) pairs present. `image`, `target` `[B, 3, H, W]`, `labels` `[B, H, W]` u8
/// (`class_id * 16 + instance`). Insensitive to blurred edges or detail inside a region, it
/// grows when a structure fades into its surroundings. Zero when no structure is labelled.
/// (Training builds [`RegionWeights`] once per batch and calls [`RegionWeights::loss`] at every
/// iteration.)
pub fn region_colour_loss(image: &Tensor, target: &Tensor, labels: &Tensor) -> Result<Tensor> {
    RegionWeights::new(labels)?.loss(image, target)
}

/// The label maps of a batch turned into per-structure averaging weights, for
/// [`region_colour_loss`]: `[B, K, H, W]` = (region of the k-th class present in the batch) /
/// (its area), 0 where the sample lacks that class.
#[derive(Debug, Clone)]
pub struct RegionWeights {
    weights: Tensor,
    /// (sample, class) pairs present.
    count: usize,
}

impl RegionWeights {
    /// From label maps `[B, H, W]` u8 (`class_id * 16 + instance`, 0 = background).
    pub fn new(labels: &Tensor) -> Result<Self> {
        let (b, h, w) = labels.dims3().map_err(|_| {
            TrainError::Data(format!(
                "label maps have shape {:?}, expected [B, H, W]",
                labels.dims()
            ))
        })?;
        let classes = (labels.to_dtype(DType::F32)? / 16.0)?.floor()?;
        let mut present = classes.flatten_all()?.to_vec1::<f32>()?;
        present.sort_by(f32::total_cmp);
        present.dedup();
        let regions = present
            .into_iter()
            .filter(|&c| c > 0.0)
            .map(|c| classes.eq(c)?.to_dtype(DType::F32))
            .collect::<candle_core::Result<Vec<_>>>()?;
        if regions.is_empty() {
            let weights = Tensor::zeros((b, 0, h, w), DType::F32, labels.device())?;
            return Ok(Self { weights, count: 0 });
        }
        let regions = Tensor::stack(&regions, 1)?; // [B, K, H, W]
        let area = regions.sum_keepdim((2, 3))?; // [B, K, 1, 1]
        let count = area
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .filter(|&&a| a > 0.0)
            .count();
        let weights = regions.broadcast_div(&area.clamp(1f32, f32::MAX)?)?;
        Ok(Self { weights, count })
    }

    /// [`region_colour_loss`] of `image` against `target` (both `[B, 3, H, W]`).
    pub fn loss(&self, image: &Tensor, target: &Tensor) -> Result<Tensor> {
        let (b, k, h, w) = self.weights.dims4()?;
        let (ib, _, ih, iw) = image.dims4()?;
        if (ib, ih, iw) != (b, h, w) {
            return Err(TrainError::Data(format!(
                "label maps have shape {:?}, the images need [{ib}, {ih}, {iw}]",
                [b, h, w]
            ))
            .into());
        }
        if self.count == 0 || k == 0 {
            return Ok(Tensor::zeros((), DType::F32, image.device())?);
        }
        // Mean colour difference per (sample, class, channel): [B, K, 3]; 0 where absent.
        let mean = (image - target)?
            .unsqueeze(1)?
            .broadcast_mul(&self.weights.unsqueeze(2)?)?
            .sum((3, 4))?;
        Ok((mean.sqr()?.sum_all()? / (3 * self.count) as f64)?)
    }
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
    /// Weight of the sketch-weighted MSE (see [`sketch_weighted_mse`]); 0 (the default) is
    /// the paper's L_sim alone. NOTE (deviation when > 0): not in HyperStyle or the paper.
    pub sketch_l2_lambda: f64,
    /// Weight of the realism term [`realism_loss`] of the frozen `discriminator` added at
    /// every iteration; 0 (the default) is the paper's loss. NOTE (deviation when > 0): not
    /// in HyperStyle or the paper; it counters H's drift towards blurred, average images at
    /// t >= 2 (docs/ENCODER_REFINER.md).
    pub adv_lambda: f64,
    /// Weight of the region loss [`region_colour_loss`] added at every iteration (needs the
    /// targets' label maps, [`Pairs::masks`]); 0 (the default) is the paper's loss. NOTE
    /// (deviation when > 0): not in HyperStyle or the paper.
    pub region_lambda: f64,
    /// Weight of the structure loss [`crate::structure::structure_loss`] of the frozen
    /// `structure_net` on ŷ_t against the target's label map, added at every iteration (needs
    /// [`Pairs::masks`]); 0 (the default) is the paper's loss. NOTE (deviation when > 0): not
    /// in HyperStyle or the paper.
    pub structure_lambda: f64,
    /// Weight of the feature distance [`crate::structure::structure_feature_distance`]
    /// between ŷ_t and y through the frozen `structure_net`'s feature maps, added at every
    /// iteration (a domain-trained stand-in for the unavailable MoCo trunk); 0 (the default)
    /// is the paper's loss. NOTE (deviation when > 0): not in HyperStyle or the paper.
    pub structure_features_lambda: f64,
    /// A structure-net export folder ([`crate::structure::StructureBundle`]); needed when
    /// `structure_lambda` or `structure_features_lambda` > 0.
    pub structure_net: Option<PathBuf>,
    /// The discriminator trained with the generator (see [`load_discriminator`]); needed when
    /// `adv_lambda` > 0.
    pub discriminator: Option<PathBuf>,
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
            sketch_l2_lambda: 0.0,
            adv_lambda: 0.0,
            region_lambda: 0.0,
            structure_lambda: 0.0,
            structure_features_lambda: 0.0,
            structure_net: None,
            discriminator: None,
            init_from: None,
            seed: 0,
            sample_every: 500,
            checkpoint_every: 500,
            keep_checkpoints: 2,
            log_every: 10,
            val_samples: 8,
        }
    }
}

impl RefinerTrainConfig {
    /// Whether a structure loss term is on (and the structure net is needed).
    pub fn uses_structure_net(&self) -> bool {
        self.structure_lambda > 0.0 || self.structure_features_lambda > 0.0
    }

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
            ("sketch_l2_lambda", self.sketch_l2_lambda),
            ("adv_lambda", self.adv_lambda),
            ("region_lambda", self.region_lambda),
            ("structure_lambda", self.structure_lambda),
            ("structure_features_lambda", self.structure_features_lambda),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("{name} = {v} must be finite and >= 0"));
            }
        }
        if self.uses_structure_net() && self.structure_net.is_none() {
            return bad(format!(
                "structure_lambda = {} / structure_features_lambda = {} need a structure-net \
                 export folder",
                self.structure_lambda, self.structure_features_lambda
            ));
        }
        if self.adv_lambda > 0.0 {
            if self.discriminator.is_none() {
                return bad(format!(
                    "adv_lambda = {} needs a discriminator file",
                    self.adv_lambda
                ));
            }
            // The discriminator's minibatch-stddev groups of min(batch, 4) must tile the batch.
            let group = self.batch.min(DISCRIMINATOR_GROUP);
            if !self.batch.is_multiple_of(group) {
                return bad(format!(
                    "batch {} with adv_lambda > 0: the discriminator needs a batch below {} or \
                     a multiple of it",
                    self.batch, DISCRIMINATOR_GROUP
                ));
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
    /// The sketch-weighted MSE of the last iteration (None when `sketch_l2_lambda` is 0).
    pub sketch_l2_last: Option<f64>,
    /// The realism loss of the last iteration (None when `adv_lambda` is 0).
    pub adv_last: Option<f64>,
    /// The region loss of the last iteration (None when `region_lambda` is 0).
    pub region_last: Option<f64>,
    /// The structure loss of the last iteration (None when `structure_lambda` is 0).
    pub structure_last: Option<f64>,
    /// The structure feature distance of the last iteration (None when
    /// `structure_features_lambda` is 0).
    pub structure_features_last: Option<f64>,
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
    /// The sketch-weighted MSE of the last iteration (None when not used).
    pub sketch_l2_last: Option<f64>,
    /// The realism loss of the last iteration (None when not used).
    pub adv_last: Option<f64>,
    /// The region loss of the last iteration (None when not used).
    pub region_last: Option<f64>,
    /// The structure loss of the last iteration (None when not used).
    pub structure_last: Option<f64>,
    /// The structure feature distance of the last iteration (None when not used).
    pub structure_features_last: Option<f64>,
    pub seconds: f64,
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
    realism: Option<(Discriminator, DiscriminatorRef)>,
    structure: Option<(StructureNet, StructureRef)>,
}

fn log_columns(
    iterations: usize,
    sketch_l2: bool,
    adv: bool,
    region: bool,
    structure: bool,
    structure_features: bool,
) -> Vec<String> {
    let mut c = vec!["total".to_string(), "sim_e".to_string()];
    c.extend((1..=iterations).map(|t| format!("sim_t{t}")));
    c.extend(["l2_last", "perceptual_last"].map(String::from));
    if sketch_l2 {
        c.push("sketch_l2_last".into());
    }
    if adv {
        c.push("adv_last".into());
    }
    if region {
        c.push("region_last".into());
    }
    if structure {
        c.push("structure_last".into());
    }
    if structure_features {
        c.push("structure_features_last".into());
    }
    c.push("sec_per_step".into());
    c
}

impl RefinerTrainer {
    /// Opens the run in `out`: resumes from its latest checkpoint if there is one (H's config,
    /// T, and the generator's and encoder's hashes must match), else starts fresh from
    /// `cfg.seed`. `encoder_dir` is the encoder's export folder (loaded with
    /// [`EncoderBundle::load`]); it must have been trained with `generator`.
    pub fn open(
        mut cfg: RefinerTrainConfig,
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
        let realism = match (&cfg.discriminator, cfg.adv_lambda > 0.0) {
            (Some(path), true) => Some(load_discriminator(path, &gen_cfg, device)?),
            _ => None,
        };
        let structure = match (&cfg.structure_net, cfg.uses_structure_net()) {
            (Some(dir), true) => {
                let bundle = StructureBundle::load(dir, device)?;
                let r = StructureRef {
                    dir: dir.display().to_string(),
                    sha256: bundle.meta.weights_sha256.clone(),
                    lambda: cfg.structure_lambda,
                    features_lambda: cfg.structure_features_lambda,
                };
                Some((bundle.net, r))
            }
            _ => None,
        };
        let columns = log_columns(
            cfg.iterations,
            cfg.sketch_l2_lambda > 0.0,
            realism.is_some(),
            cfg.region_lambda > 0.0,
            cfg.structure_lambda > 0.0,
            cfg.structure_features_lambda > 0.0,
        );
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
            realism,
            structure,
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
        let stroke_mask = if self.cfg.sketch_l2_lambda > 0.0 {
            Some(sketch_stroke_mask(
                &pairs.sketches,
                self.g.config().size as usize,
            )?)
        } else {
            None
        };
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
            sketch_l2_last: None,
            adv_last: None,
            region_last: None,
            structure_last: None,
            structure_features_last: None,
        };
        let labels = || {
            pairs.masks.as_ref().ok_or_else(|| {
                TrainError::Data(
                    "the region and structure losses need the targets' label maps (masks), and \
                     the data has none"
                        .into(),
                )
            })
        };
        let regions = match self.cfg.region_lambda > 0.0 {
            true => Some(RegionWeights::new(labels()?)?),
            false => None,
        };
        // The structure terms' targets, once per batch: (net, one-hot labels, target features).
        let structure = match &self.structure {
            Some((net, _)) => Some((
                net,
                match self.cfg.structure_lambda > 0.0 {
                    true => Some(one_hot(&label_classes(labels()?)?)?),
                    false => None,
                },
                match self.cfg.structure_features_lambda > 0.0 {
                    true => Some(FeatureTarget::new(net, &pairs.images)?),
                    false => None,
                },
            )),
            None => None,
        };
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
            if let Some(mask) = &stroke_mask {
                let extra = sketch_weighted_mse(&image, &pairs.images, mask)?;
                losses.sketch_l2_last = Some(scalar(&extra)?);
                objective = (objective + (extra * self.cfg.sketch_l2_lambda)?)?;
            }
            if let Some(regions) = &regions {
                let region = regions.loss(&image, &pairs.images)?;
                losses.region_last = Some(scalar(&region)?);
                objective = (objective + (region * self.cfg.region_lambda)?)?;
            }
            if let Some((net, labels, features)) = &structure {
                if let Some(target) = labels {
                    let terms = structure_loss(&net.forward(&image)?, target)?;
                    losses.structure_last = Some(scalar(&terms.total)?);
                    objective = (objective + (terms.total * self.cfg.structure_lambda)?)?;
                }
                if let Some(target) = features {
                    let d = target.distance(net, &image)?;
                    losses.structure_features_last = Some(scalar(&d)?);
                    objective = (objective + (d * self.cfg.structure_features_lambda)?)?;
                }
            }
            if let Some((d, _)) = &self.realism {
                let adv = realism_loss(d, &image)?;
                losses.adv_last = Some(scalar(&adv)?);
                objective = (objective + (adv * self.cfg.adv_lambda)?)?;
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
            sketch_l2_last: losses.sketch_l2_last,
            adv_last: losses.adv_last,
            region_last: losses.region_last,
            structure_last: losses.structure_last,
            structure_features_last: losses.structure_features_last,
            seconds: start.elapsed().as_secs_f64(),
        };
        if self.cfg.log_every > 0 && self.step.is_multiple_of(self.cfg.log_every) {
            let mut row = vec![stats.total, stats.sim_e];
            row.extend(&stats.sim_t);
            row.extend([stats.l2_last, stats.perceptual_last]);
            row.extend(stats.sketch_l2_last);
            row.extend(stats.adv_last);
            row.extend(stats.region_last);
            row.extend(stats.structure_last);
            row.extend(stats.structure_features_last);
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
        Ok(s2m_train::run::write_loss_plot(
            &self.out,
            "Phase 2: refiner H",
            &cols,
        )?)
    }

    /// Writes the refiner bundle (see the module docs) to `dir`.
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
            losses: LossInfo::new(&self.loss, self.cfg.adv_lambda),
            sketch_l2: self.cfg.sketch_l2_lambda,
            discriminator: self.realism.as_ref().map(|(_, r)| r.clone()),
            region: self.cfg.region_lambda,
            structure: self.structure.as_ref().map(|(_, r)| r.clone()),
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

/// The structure net of a run's structure loss (`RefinerTrainConfig::structure_lambda`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureRef {
    /// Its export folder at training time.
    pub dir: String,
    /// sha256 of its `structure.safetensors`.
    pub sha256: String,
    /// The weight of the structure loss (0: not used).
    pub lambda: f64,
    /// The weight of the structure feature distance (0: not used).
    #[serde(default)]
    pub features_lambda: f64,
}

/// The encoder a refiner was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderRef {
    /// The encoder's export folder at training time.
    pub dir: String,
    /// sha256 of its `encoder.safetensors`.
    pub sha256: String,
}

/// `refiner.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefinerMeta {
    /// [`REFINER_FORMAT`].
    pub format: String,
    pub hyper: HyperConfig,
    /// T used in training (and the default at inference).
    pub iterations: usize,
    pub generator: GeneratorRef,
    pub encoder: EncoderRef,
    pub data: DataInfo,
    pub losses: LossInfo,
    /// Weight of the sketch-weighted MSE added to L_sim in training (0: the paper's loss).
    #[serde(default)]
    pub sketch_l2: f64,
    /// The frozen discriminator of the realism term (`losses.adv` is its weight; None: the
    /// paper's loss).
    #[serde(default)]
    pub discriminator: Option<DiscriminatorRef>,
    /// Weight of the region loss in training (0: the paper's loss).
    #[serde(default)]
    pub region: f64,
    /// The frozen structure net of the structure loss and its weight (None: not used).
    #[serde(default)]
    pub structure: Option<StructureRef>,
    /// The refiner the run was initialised from (a fine-tuning run); `steps` counts this
    /// run's steps only.
    #[serde(default)]
    pub init: Option<InitRef>,
    pub optimizer: String,
    pub steps: u64,
    pub batch: usize,
    pub seed: u64,
    pub created_unix_s: u64,
    /// sha256 of `refiner.safetensors` (checked on load).
    pub refiner_sha256: String,
}

/// A trained refiner: H and the metadata of its export folder.
#[derive(Debug, Clone)]
pub struct RefinerBundle {
    pub hypernet: HyperNetwork,
    pub meta: RefinerMeta,
}

impl RefinerBundle {
    /// Loads an export folder for a generator with config `gen_cfg` (which must be the one H
    /// was trained for). Errors name the missing or bad file.
    pub fn load(dir: &Path, gen_cfg: &StyleGan2Config, device: &Device) -> Result<Self> {
        let (meta, weights) = read_export(dir)?;
        if &meta.generator.config != gen_cfg {
            return Err(TrainError::Bundle {
                path: dir.join(REFINER_JSON),
                message: format!(
                    "the refiner was trained for generator config {:?}, not {gen_cfg:?}",
                    meta.generator.config
                ),
            }
            .into());
        }
        verify_sha256(&weights, &meta.refiner_sha256)?;
        let hypernet = HyperNetwork::load(
            &weights,
            meta.hyper.clone(),
            gen_cfg,
            DEFAULT_SKETCH_CHANNEL_INIT,
            DType::F32,
            device,
        )?;
        Ok(Self { hypernet, meta })
    }
}
