//! A structure network for the refiner's optional structure loss (NOTE: not in HyperStyle or
//! the paper).
//!
//! [`StructureNet`] is a small U-Net that segments an image into background and the four
//! anatomical classes (`s2m_core::anatomy::Class`), trained on the phantom's images and label
//! maps ([`StructureTrainer`], `sketch2medi refiner structure-net`). Frozen, it gives phase 2
//! two optional terms that see the small structures, which the paper's L_sim (as available
//! offline) does not: MSE and the perceptual distance reward a blurred average when H cannot
//! place an edge, and the faded tonsils and uvula are what S then misses:
//!
//! - [`structure_feature_distance`]: an LPIPS-style distance between ŷ and y through the net's
//!   feature maps, a domain-trained stand-in for the MoCo term (the shipped H uses it);
//! - [`structure_loss`]: cross-entropy + soft Dice of the net's segmentation against the
//!   target's label map (H learned to exploit it: docs/ENCODER_REFINER.md, "Structure terms").
//!
//! It is deliberately *not* the synthesizer S that DICE is measured with: a different
//! architecture (U-Net, semantic classes) trained separately, so that training against it
//! cannot tune H to S's particular weaknesses.
//!
//! ```text
//! down_i  (i < levels): conv3x3 -> ReLU -> conv3x3 -> ReLU  (width * 2^i), then 2x2 max-pool
//! mid:                  the same at width * 2^levels
//! up_i    (i = levels-1 .. 0): nearest 2x upsample, concat down_i's output, double conv
//! head:   1x1 conv -> NUM_CLASSES logits at the input size
//! ```
//!
//! Export folder ([`StructureTrainer::export`], [`StructureBundle::load`]):
//!
//! ```text
//! structure.safetensors   the net's tensors
//! structure.json          StructureMeta: format tag, config, data, steps, seed, held-out DICE,
//!                         sha256 of structure.safetensors
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Module, VarBuilder, VarMap};
use e4e_encoder::bundle::DataInfo;
use e4e_encoder::data::{PairDataset, Pairs, write_strip};
use rand::Rng as _;
use s2m_core::anatomy::Class;
use s2m_core::rng::{derive_seed, randn_vec, rng_from_seed};
use s2m_train::bundle::{read_bundle_json, verify_sha256, write_weights_bundle};
use s2m_train::checkpoint::Checkpoint;
use s2m_train::logcsv::CsvLogger;
use s2m_train::optim::{Adam, AdamConfig, load_varmap, varmap_tensors};
use s2m_train::run::{
    EpochOrder, check_finite, checkpoint_meta, create_run_folders, open_log, scalar,
    trainable_vars, unix_time,
};
use s2m_train::{Schedule, TrainError};
use serde::{Deserialize, Serialize};

use hyperstyle_refiner::{RefinerError, Result};

/// Background + the four anatomical classes (label-map class ids 1..=4).
pub const NUM_CLASSES: usize = 5;
/// Format tag of `structure.json`.
pub const STRUCTURE_FORMAT: &str = "sketch2medi-structure-net/1";
pub const STRUCTURE_WEIGHTS: &str = "structure.safetensors";
pub const STRUCTURE_JSON: &str = "structure.json";

const INIT_STREAM: u64 = 0x57C;
const AUG_STREAM: u64 = 0xA06;

/// The U-Net's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructureNetConfig {
    /// Channels of the first level (doubled at every level).
    pub width: usize,
    /// Down-sampling levels (the input side must be a multiple of 2^levels).
    pub levels: usize,
}

impl Default for StructureNetConfig {
    /// 16 channels, 3 levels: 0.49 M parameters.
    fn default() -> Self {
        Self {
            width: 16,
            levels: 3,
        }
    }
}

impl StructureNetConfig {
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || !(1..=6).contains(&self.levels) {
            return Err(RefinerError::Config(format!(
                "structure net width {} must be >= 1 and levels {} in 1..=6",
                self.width, self.levels
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct DoubleConv {
    a: Conv2d,
    b: Conv2d,
}

impl DoubleConv {
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            a: candle_nn::conv2d(cin, cout, 3, cfg, vb.pp("a"))?,
            b: candle_nn::conv2d(cout, cout, 3, cfg, vb.pp("b"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.b.forward(&self.a.forward(x)?.relu()?)?.relu()?)
    }
}

/// Nearest-neighbour 2x upsampling built from differentiable pieces (candle's
/// `upsample_nearest2d` backward overwrites instead of summing).
fn upsample2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    Ok(x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .reshape((b, c, 2 * h, 2 * w))?)
}

/// The structure network (see the module docs).
#[derive(Debug, Clone)]
pub struct StructureNet {
    cfg: StructureNetConfig,
    down: Vec<DoubleConv>,
    mid: DoubleConv,
    up: Vec<DoubleConv>,
    head: Conv2d,
}

impl StructureNet {
    /// Builds the net on `vb` (names `down.{i}.{a,b}`, `mid.{a,b}`, `up.{i}.{a,b}`, `head`).
    pub fn new(cfg: StructureNetConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let width = |i: usize| cfg.width << i;
        let mut down = Vec::with_capacity(cfg.levels);
        for i in 0..cfg.levels {
            let cin = if i == 0 { 3 } else { width(i - 1) };
            down.push(DoubleConv::new(cin, width(i), vb.pp(format!("down.{i}")))?);
        }
        let mid = DoubleConv::new(width(cfg.levels - 1), width(cfg.levels), vb.pp("mid"))?;
        let mut up = Vec::with_capacity(cfg.levels);
        for i in 0..cfg.levels {
            up.push(DoubleConv::new(
                width(i + 1) + width(i),
                width(i),
                vb.pp(format!("up.{i}")),
            )?);
        }
        let head = candle_nn::conv2d(
            width(0),
            NUM_CLASSES,
            1,
            Conv2dConfig::default(),
            vb.pp("head"),
        )?;
        Ok(Self {
            cfg,
            down,
            mid,
            up,
            head,
        })
    }

    /// A fresh net with seeded weights (and its `VarMap`, for training).
    pub fn seeded(cfg: StructureNetConfig, seed: u64, device: &Device) -> Result<(Self, VarMap)> {
        s2m_core::init::seeded_var_map(seed, DType::F32, device, |vb| Self::new(cfg, vb))
    }

    /// A frozen net from named tensors: every key and shape is checked first (errors name
    /// the key); the weights are plain tensors, so no gradient is computed for them.
    pub fn from_tensors(
        cfg: StructureNetConfig,
        tensors: &HashMap<String, Tensor>,
        what: &str,
        device: &Device,
    ) -> Result<Self> {
        let (_, expected) = Self::seeded(cfg.clone(), 0, &Device::Cpu)?;
        load_varmap(tensors, &expected, what, "")?;
        let tensors = tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?.to_device(device)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Self::new(cfg, VarBuilder::from_tensors(tensors, DType::F32, device))
    }

    pub fn config(&self) -> &StructureNetConfig {
        &self.cfg
    }

    /// Logits `[B, NUM_CLASSES, H, W]` of images `[B, 3, H, W]` in [-1, 1]; H and W must be
    /// multiples of 2^levels.
    pub fn forward(&self, image: &Tensor) -> Result<Tensor> {
        let taps = self.features(image)?;
        let (mid, skips) = taps
            .split_last()
            .ok_or_else(|| RefinerError::Config("the net has no feature taps".into()))?;
        let mut x = mid.clone();
        for (u, skip) in self.up.iter().zip(skips).rev() {
            x = u.forward(&Tensor::cat(&[&upsample2(&x)?, skip], 1)?)?;
        }
        Ok(self.head.forward(&x)?)
    }

    /// The encoder's feature maps, used by [`structure_feature_distance`]: every down level's
    /// output and the middle block's (`levels + 1` taps, fine to coarse). Runs the encoder
    /// only.
    pub fn features(&self, image: &Tensor) -> Result<Vec<Tensor>> {
        let dims = image.dims();
        let m = 1usize << self.cfg.levels;
        let ok = matches!(dims, [_, 3, h, w] if h % m == 0 && w % m == 0 && *h > 0 && *w > 0);
        if !ok {
            return Err(RefinerError::Shape {
                what: "structure net input".into(),
                expected: format!("[B, 3, H, W] with H, W multiples of {m}"),
                got: dims.to_vec(),
            });
        }
        let mut taps = Vec::with_capacity(self.cfg.levels + 1);
        let mut x = image.clone();
        for d in &self.down {
            let y = d.forward(&x)?;
            // backbones' pool: candle's max_pool2d backward is wrong even for kernel ==
            // stride (tests/structure.rs checks the net's gradient end to end).
            x = backbones::ops::max_pool2d(&y, 2, 2, 0)?;
            taps.push(y);
        }
        taps.push(self.mid.forward(&x)?);
        Ok(taps)
    }
}

/// Class indices `[B, H, W]` `u32` (0 = background, 1..=4) of label maps `[B, H, W]` `u8`
/// (`class_id * 16 + instance`). A class id above 4 is an error.
pub fn label_classes(labels: &Tensor) -> Result<Tensor> {
    if labels.rank() != 3 {
        return Err(RefinerError::Shape {
            what: "label maps".into(),
            expected: "[B, H, W] u8".into(),
            got: labels.dims().to_vec(),
        });
    }
    let classes = (labels.to_dtype(DType::F32)? / 16.0)?.floor()?;
    let top = classes.max_all()?.to_scalar::<f32>()?;
    if top >= NUM_CLASSES as f32 {
        return Err(RefinerError::Config(format!(
            "a label map has class id {top}; the anatomy has ids 1..={}",
            NUM_CLASSES - 1
        )));
    }
    Ok(classes.to_dtype(DType::U32)?)
}

/// One-hot `[B, NUM_CLASSES, H, W]` f32 of class indices `[B, H, W]`.
pub fn one_hot(classes: &Tensor) -> Result<Tensor> {
    let c = classes.to_dtype(DType::F32)?.unsqueeze(1)?;
    let ids = Tensor::arange(0f32, NUM_CLASSES as f32, classes.device())?.reshape((
        1,
        NUM_CLASSES,
        1,
        1,
    ))?;
    Ok(c.broadcast_eq(&ids)?.to_dtype(DType::F32)?)
}

/// Softmax over the class axis from differentiable pieces (the max is a constant shift).
fn softmax_classes(logits: &Tensor) -> Result<(Tensor, Tensor)> {
    let shifted = logits.broadcast_sub(&logits.max_keepdim(1)?.detach())?;
    let log_z = shifted.exp()?.sum_keepdim(1)?.log()?;
    let log_p = shifted.broadcast_sub(&log_z)?;
    Ok((log_p.exp()?, log_p))
}

/// The terms of [`structure_loss`].
#[derive(Debug, Clone)]
pub struct StructureTerms {
    /// Pixel-mean cross-entropy.
    pub cross_entropy: Tensor,
    /// Mean over the (sample, structure) pairs present in the target of 1 - soft Dice
    /// (background excluded; 0 when no structure is present).
    pub dice: Tensor,
    /// cross_entropy + dice.
    pub total: Tensor,
}

/// Cross-entropy + soft Dice of `logits` `[B, NUM_CLASSES, H, W]` against one-hot targets
/// (from [`one_hot`]). The soft Dice of a structure is `2 Σ p g / (Σ p + Σ g)` over the image,
/// with p its softmax probability; it is averaged over the structures the target has, like
/// the DICE the pipeline is evaluated with.
pub fn structure_loss(logits: &Tensor, target: &Tensor) -> Result<StructureTerms> {
    if logits.dims() != target.dims() || logits.dim(1)? != NUM_CLASSES {
        return Err(RefinerError::Shape {
            what: "structure logits".into(),
            expected: format!("the one-hot target's shape {:?}", target.dims()),
            got: logits.dims().to_vec(),
        });
    }
    let dtype = logits.dtype();
    let target = target.to_dtype(dtype)?;
    let (p, log_p) = softmax_classes(logits)?;
    let (b, _, h, w) = logits.dims4()?;
    let cross_entropy = ((log_p * &target)?.sum_all()? / -((b * h * w) as f64))?;
    let p = p.narrow(1, 1, NUM_CLASSES - 1)?;
    let g = target.narrow(1, 1, NUM_CLASSES - 1)?;
    let inter = (&p * &g)?.sum((2, 3))?;
    let g_area = g.sum((2, 3))?;
    let den = (p.sum((2, 3))? + &g_area)?;
    let present = g_area.gt(0.0)?.to_dtype(dtype)?;
    let count = scalar(&present.sum_all()?)?;
    let dice = if count == 0.0 {
        Tensor::zeros((), dtype, logits.device())?
    } else {
        let d = ((inter * 2.0)? / den.clamp(1e-6, f64::MAX)?)?;
        (((d.affine(-1.0, 1.0)?) * present)?.sum_all()? / count as f64)?
    };
    let total = (&cross_entropy + &dice)?;
    Ok(StructureTerms {
        cross_entropy,
        dice,
        total,
    })
}

/// A perceptual distance through the structure net's feature maps (LPIPS-style, without
/// learned channel weights): at every tap of [`StructureNet::features`], the features of
/// `image` and `target` are unit-normalised over channels (`f / (sqrt(|f|² + 1e-20) + 1e-10)`,
/// finite gradient where all channels are 0), and the squared
/// difference is summed over channels and averaged over positions; the taps are averaged.
/// The target's features carry no gradient. 0 for identical images. (Training builds
/// [`FeatureTarget`] once per batch and calls [`FeatureTarget::distance`] at every iteration.)
pub fn structure_feature_distance(
    net: &StructureNet,
    image: &Tensor,
    target: &Tensor,
) -> Result<Tensor> {
    FeatureTarget::new(net, target)?.distance(net, image)
}

/// Unit-normalises features over channels (see [`structure_feature_distance`]).
fn unit_channels(f: &Tensor) -> Result<Tensor> {
    // eps inside the root too: a position where every channel is 0 (ReLU) would otherwise get
    // 0 * inf = NaN from sqrt's gradient.
    let norm = ((f.sqr()?.sum_keepdim(1)? + 1e-20)?.sqrt()? + 1e-10)?;
    Ok(f.broadcast_div(&norm)?)
}

/// The target side of [`structure_feature_distance`]: the target images' unit-normalised
/// feature maps, computed once (no gradient).
#[derive(Debug, Clone)]
pub struct FeatureTarget {
    dims: Vec<usize>,
    taps: Vec<Tensor>,
}

impl FeatureTarget {
    /// From target images `[B, 3, H, W]` through `net`.
    pub fn new(net: &StructureNet, target: &Tensor) -> Result<Self> {
        let taps = net
            .features(&target.detach())?
            .iter()
            .map(|f| unit_channels(&f.detach()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dims: target.dims().to_vec(),
            taps,
        })
    }

    /// [`structure_feature_distance`] of `image` (the shape of the target) through `net`
    /// (the net the target went through).
    pub fn distance(&self, net: &StructureNet, image: &Tensor) -> Result<Tensor> {
        if image.dims() != self.dims.as_slice() {
            return Err(RefinerError::Shape {
                what: "structure feature distance target".into(),
                expected: format!("the image's shape {:?}", image.dims()),
                got: self.dims.clone(),
            });
        }
        let fx = net.features(image)?;
        let mut total: Option<Tensor> = None;
        for (a, b) in fx.iter().zip(&self.taps) {
            let d = (unit_channels(a)? - b)?.sqr()?.sum_keepdim(1)?.mean_all()?;
            total = Some(match total {
                Some(t) => (t + d)?,
                None => d,
            });
        }
        let total =
            total.ok_or_else(|| RefinerError::Config("the net has no feature taps".into()))?;
        Ok((total / fx.len() as f64)?)
    }
}

/// Hard DICE per structure class (uvula, wall, tonsil, tongue) of `logits`' argmax against
/// class indices, summed over the batch's pixels: `(intersection, |pred| + |target|)` per
/// class, for held-out evaluation.
pub fn hard_dice_counts(logits: &Tensor, classes: &Tensor) -> Result<Vec<(f64, f64)>> {
    let pred = logits.argmax(1)?;
    let mut out = Vec::with_capacity(NUM_CLASSES - 1);
    for c in 1..NUM_CLASSES as u32 {
        let p = pred.eq(c)?.to_dtype(DType::F32)?;
        let g = classes.eq(c)?.to_dtype(DType::F32)?;
        let inter = scalar(&(&p * &g)?.sum_all()?)?;
        let den = scalar(&(p.sum_all()? + g.sum_all()?)?)?;
        out.push((inter, den));
    }
    Ok(out)
}

/// Hyper-parameters of [`StructureTrainer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StructureTrainConfig {
    pub net: StructureNetConfig,
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Augmentation: every image is flipped left-right with probability 1/2 (labels too) and
    /// gets Gaussian noise of this standard deviation (in [-1, 1] units), so that the net
    /// does not lean on pixel-exact texture.
    pub noise_std: f64,
    /// Base seed (init, data order, augmentation) and the cadences of the sample strips (+ loss
    /// curves), checkpoints and log rows; top-level keys of the JSON.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Rows of the sample strip.
    pub val_samples: usize,
}

impl Default for StructureTrainConfig {
    fn default() -> Self {
        Self {
            net: StructureNetConfig::default(),
            batch: 16,
            lr: 1e-3,
            noise_std: 0.05,
            schedule: Schedule::default(),
            val_samples: 8,
        }
    }
}

impl StructureTrainConfig {
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        self.schedule.validate()?;
        if self.batch == 0 || !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(TrainError::Config(format!(
                "batch {} must be >= 1 and lr {} positive",
                self.batch, self.lr
            ))
            .into());
        }
        if !(self.noise_std >= 0.0 && self.noise_std.is_finite()) {
            return Err(TrainError::Config(format!(
                "noise_std = {} must be finite and >= 0",
                self.noise_std
            ))
            .into());
        }
        Ok(())
    }
}

/// Losses of one [`StructureTrainer`] step.
#[derive(Debug, Clone, PartialEq)]
pub struct StructureStepStats {
    pub step: u64,
    pub total: f64,
    pub cross_entropy: f64,
    pub dice: f64,
    pub seconds: f64,
}

/// Trains a [`StructureNet`] on images and their label maps ([`Pairs::masks`]) in a run folder
/// (`checkpoints/`, `log.csv`, `loss.png`, `samples/`, `export/`), with exact resume.
pub struct StructureTrainer {
    cfg: StructureTrainConfig,
    out: PathBuf,
    device: Device,
    net: StructureNet,
    vars: VarMap,
    opt: Adam,
    step: u64,
    logger: CsvLogger,
    order: EpochOrder,
    val: Option<Pairs>,
    data_description: String,
    sketch_source: String,
    resume_report: s2m_train::resume::ResumeReport,
}

const COLUMNS: [&str; 4] = ["total", "cross_entropy", "dice", "sec_per_step"];

/// Takes the label maps of a batch or says that the data has none.
fn masks_of(pairs: &Pairs) -> Result<&Tensor> {
    pairs.masks.as_ref().ok_or_else(|| {
        TrainError::Data(
            "the structure net needs the targets' label maps (masks), and the data has none".into(),
        )
        .into()
    })
}

impl StructureTrainer {
    /// Opens the run in `out`: resumes from its latest checkpoint (same net config), else
    /// starts fresh from the schedule's seed.
    pub fn open(cfg: StructureTrainConfig, out: impl AsRef<Path>, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let out = out.as_ref().to_path_buf();
        create_run_folders(&out)?;
        let (net, vars) = StructureNet::seeded(
            cfg.net.clone(),
            derive_seed(cfg.schedule.seed, INIT_STREAM, 0),
            device,
        )?;
        let mut opt = Adam::new(
            trainable_vars(&vars),
            AdamConfig {
                lr: cfg.lr,
                ..AdamConfig::default()
            },
        )?;
        let mut step = 0;
        let (found, resume_report) = s2m_train::resume::open_run(&out)?;
        if let Some((path, ck)) = found {
            s2m_train::resume::check_run_config(&path, &ck, &cfg, s2m_train::resume::MAY_CHANGE)?;
            ck.restore_varmap("net", &vars)?;
            ck.restore_optimizer("opt", &mut opt)?;
            step = ck.meta.step;
        }
        let logger = open_log(&out, &COLUMNS, step)?;
        Ok(Self {
            order: EpochOrder::new(cfg.schedule.seed),
            cfg,
            out,
            device: device.clone(),
            net,
            vars,
            opt,
            step,
            logger,
            val: None,
            data_description: String::new(),
            sketch_source: String::new(),
            resume_report,
        })
    }

    /// What opening the run folder skipped (damaged checkpoints) and removed (leftovers of
    /// killed processes).
    pub fn resume_report(&self) -> &s2m_train::resume::ResumeReport {
        &self.resume_report
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn net(&self) -> &StructureNet {
        &self.net
    }

    /// Fixes the evaluation pairs (not necessarily held out: see [`HeldOutDice`]) of the sample strips and of [`StructureTrainer::held_out_dice`]
    /// (the first `val_samples` pairs of `data`, which must have label maps).
    pub fn set_validation(&mut self, data: &dyn PairDataset) -> Result<()> {
        let ids: Vec<usize> = (0..self.cfg.val_samples.max(1).min(data.len())).collect();
        if ids.is_empty() {
            return Err(TrainError::Data("the validation data is empty".into()).into());
        }
        let pairs = data.load(&ids, &self.device)?;
        masks_of(&pairs)?;
        self.val = Some(pairs);
        Ok(())
    }

    /// The batch of `step` with its augmentation (a function of `(seed, step)`):
    /// `(images, class indices)`.
    fn augmented(&self, pairs: &Pairs) -> Result<(Tensor, Tensor)> {
        let classes = label_classes(masks_of(pairs)?)?;
        let (b, c, h, w) = pairs.images.dims4()?;
        if classes.dims() != [b, h, w] {
            return Err(TrainError::Data(format!(
                "label maps have shape {:?}, the images {:?}",
                classes.dims(),
                pairs.images.dims()
            ))
            .into());
        }
        let mut rng = rng_from_seed(derive_seed(self.cfg.schedule.seed, AUG_STREAM, self.step));
        let mut images = Vec::with_capacity(b);
        let mut labels = Vec::with_capacity(b);
        for i in 0..b {
            let (mut x, mut y) = (pairs.images.get(i)?, classes.get(i)?);
            if rng.random_bool(0.5) {
                (x, y) = (x.flip(&[2])?, y.flip(&[1])?);
            }
            images.push(x);
            labels.push(y);
        }
        let mut images = Tensor::stack(&images, 0)?;
        if self.cfg.noise_std > 0.0 {
            let noise = randn_vec(&mut rng, b * c * h * w);
            let noise = Tensor::from_vec(noise, (b, c, h, w), &self.device)?;
            images = (images + (noise * self.cfg.noise_std)?)?;
        }
        Ok((images, Tensor::stack(&labels, 0)?))
    }

    /// One Adam step on the batch of the current step.
    pub fn train_step(&mut self, data: &dyn PairDataset) -> Result<StructureStepStats> {
        let start = Instant::now();
        if data.is_empty() {
            return Err(TrainError::Data("the dataset is empty".into()).into());
        }
        let indices = self.order.indices(self.step, self.cfg.batch, data.len());
        let pairs = data.load(&indices, &self.device)?;
        let (images, classes) = self.augmented(&pairs)?;
        let terms = structure_loss(&self.net.forward(&images)?, &one_hot(&classes)?)?;
        let total = scalar(&terms.total)?;
        check_finite(self.step, "structure loss", total, &self.out)?;
        let grads = terms.total.backward()?;
        self.opt.step(&grads)?;
        self.step += 1;
        let stats = StructureStepStats {
            step: self.step,
            total,
            cross_entropy: scalar(&terms.cross_entropy)?,
            dice: scalar(&terms.dice)?,
            seconds: start.elapsed().as_secs_f64(),
        };
        if self.cfg.schedule.log_every > 0 && self.step.is_multiple_of(self.cfg.schedule.log_every)
        {
            self.logger.log(
                self.step,
                &[stats.total, stats.cross_entropy, stats.dice, stats.seconds],
            )?;
        }
        Ok(stats)
    }

    /// Hard DICE per structure (uvula, wall, tonsil, tongue) and their mean on `data`
    /// (images unaugmented, in batches of `batch`), pooled over all pixels.
    pub fn held_out_dice(&self, data: &dyn PairDataset, batch: usize) -> Result<HeldOutDice> {
        dataset_dice(&self.net, data, batch, &self.device)
    }

    /// Writes a checkpoint (the net, Adam's state, the step; atomic, rotated).
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let meta = checkpoint_meta(self.step, self.cfg.schedule.seed, &self.cfg, &[])?;
        let mut ck = Checkpoint::new(meta);
        ck.add_varmap("net", &self.vars)?;
        ck.add_optimizer("opt", &self.opt)?;
        Ok(ck.save_in(
            self.out.join("checkpoints"),
            self.cfg.schedule.keep_checkpoints.max(1),
        )?)
    }

    /// The strip `image | predicted classes | target classes` of the held-out pairs.
    pub fn write_samples(&self, path: &Path) -> Result<()> {
        let Some(val) = &self.val else {
            return Ok(());
        };
        let logits = self.net.forward(&val.images)?;
        let pred = colourise(&one_hot(&logits.argmax(1)?)?)?;
        let target = colourise(&one_hot(&label_classes(masks_of(val)?)?)?)?;
        Ok(write_strip(path, &[val.images.clone(), pred, target])?)
    }

    /// Redraws `<out>/loss.png`.
    pub fn write_loss_plot(&self) -> Result<()> {
        Ok(s2m_train::run::write_loss_plot(
            &self.out,
            "Structure net",
            &COLUMNS[..3],
        )?)
    }

    /// Writes the export folder (see the module docs); `dice` is the held-out DICE to record
    /// (from [`StructureTrainer::held_out_dice`]).
    pub fn export(&self, dir: &Path, held_out: Option<HeldOutDice>) -> Result<StructureMeta> {
        let weights = varmap_tensors(&self.vars);
        let meta = StructureMeta {
            format: STRUCTURE_FORMAT.into(),
            net: self.cfg.net.clone(),
            data: DataInfo {
                description: self.data_description.clone(),
                sketch_source: format!(
                    "not used: the structure net trains on images and label maps (the data's \
                     sketches: {})",
                    self.sketch_source
                ),
            },
            training: self.cfg.clone(),
            steps: self.step,
            held_out,
            created_unix_s: unix_time(),
            weights_sha256: String::new(),
        };
        Ok(write_weights_bundle(
            dir,
            STRUCTURE_WEIGHTS,
            &weights,
            STRUCTURE_JSON,
            |sha256| StructureMeta {
                weights_sha256: sha256,
                ..meta
            },
        )?)
    }
}

e4e_encoder::impl_train_loop!(StructureTrainer, StructureStepStats, RefinerError);

/// Hard DICE of `net` per structure and their mean over `data` (see
/// [`StructureTrainer::held_out_dice`] and [`HeldOutDice::from_counts`]).
pub fn dataset_dice(
    net: &StructureNet,
    data: &dyn PairDataset,
    batch: usize,
    device: &Device,
) -> Result<HeldOutDice> {
    let batch = batch.max(1);
    let mut sums = [(0.0, 0.0); NUM_CLASSES - 1];
    let n = data.len();
    for start in (0..n).step_by(batch) {
        let ids: Vec<usize> = (start..(start + batch).min(n)).collect();
        let pairs = data.load(&ids, device)?;
        let classes = label_classes(masks_of(&pairs)?)?;
        let counts = hard_dice_counts(&net.forward(&pairs.images)?, &classes)?;
        for (s, c) in sums.iter_mut().zip(counts) {
            s.0 += c.0;
            s.1 += c.1;
        }
    }
    Ok(HeldOutDice::from_counts(data.description(), &sums))
}

/// One-hot class maps as RGB in [-1, 1] for the sample strips: background black, the classes
/// in their `s2m_core::anatomy::Class::colour`.
fn colourise(one_hot: &Tensor) -> Result<Tensor> {
    let mut flat = vec![-1f32; 3];
    for class in Class::ALL {
        flat.extend(class.colour().map(|v| v as f32 / 127.5 - 1.0));
    }
    let palette = Tensor::from_vec(flat, (NUM_CLASSES, 3), one_hot.device())?
        .t()?
        .reshape((1, 3, NUM_CLASSES, 1, 1))?;
    Ok(one_hot
        .unsqueeze(1)?
        .broadcast_mul(&palette)?
        .sum(2)?
        .contiguous()?)
}

/// DICE on the evaluation pairs recorded in an export. NOTE: the name is kept for the export
/// format (`held_out` in structure.json); the CLI evaluates on the phantom's `seg_val`, which is a
/// subset of the training images, so the number is not a held-out score (`data` says what it
/// was measured on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutDice {
    /// What it was measured on.
    pub data: String,
    /// Uvula, pharyngeal wall, tonsil, tongue.
    pub per_class: Vec<f64>,
    pub mean: f64,
}

impl HeldOutDice {
    /// From the per-structure `(intersection, |pred| + |target|)` of [`hard_dice_counts`]
    /// summed over images: DICE `2 i / d` per structure, NaN for a structure that neither the
    /// labels nor the predictions contain (left out of the mean).
    pub fn from_counts(data: String, sums: &[(f64, f64)]) -> Self {
        let per_class: Vec<f64> = sums
            .iter()
            .map(|(i, d)| if *d > 0.0 { 2.0 * i / d } else { f64::NAN })
            .collect();
        let present: Vec<f64> = per_class
            .iter()
            .copied()
            .filter(|d| d.is_finite())
            .collect();
        let mean = present.iter().sum::<f64>() / present.len().max(1) as f64;
        Self {
            data,
            per_class,
            mean,
        }
    }
}

/// `structure.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureMeta {
    /// [`STRUCTURE_FORMAT`].
    pub format: String,
    pub net: StructureNetConfig,
    pub data: DataInfo,
    pub training: StructureTrainConfig,
    pub steps: u64,
    pub held_out: Option<HeldOutDice>,
    pub created_unix_s: u64,
    /// sha256 of `structure.safetensors` (checked on load).
    pub weights_sha256: String,
}

/// A trained structure net and its metadata.
#[derive(Debug, Clone)]
pub struct StructureBundle {
    pub net: StructureNet,
    pub meta: StructureMeta,
}

impl StructureBundle {
    /// Loads an export folder (frozen net); errors name the missing or bad file or key.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let meta: StructureMeta =
            read_bundle_json(dir, STRUCTURE_JSON, "structure net", STRUCTURE_FORMAT)?;
        let path = s2m_train::bundle::bundle_file(dir, STRUCTURE_WEIGHTS, "structure net")?;
        verify_sha256(&path, &meta.weights_sha256)?;
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)?;
        let what = path.display().to_string();
        let net = StructureNet::from_tensors(meta.net.clone(), &tensors, &what, device)?;
        Ok(Self { net, meta })
    }
}
