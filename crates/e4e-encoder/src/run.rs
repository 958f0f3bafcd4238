//! Run-folder machinery shared by the two training phases of Sketch2MedI (phase 1: E + D_w in
//! [`crate::train`]; phase 2: H in `hyperstyle_refiner::train`).
//!
//! Follows the patterns of `stylegan2::train` (the GAN loop): a run lives in one folder
//! (`checkpoints/`, `log.csv`, `loss.png`, `samples/`, `export/`), checkpoints are atomic and
//! rotated (`s2m_train::checkpoint`), the data order is a pure function of `(seed, epoch)`
//! ([`EpochOrder`]) so a resumed run sees exactly the batches an uninterrupted one would, and a
//! non-finite loss stops the run with [`TrainError::Diverged`].
//!
//! - [`PairDataset`]: (image, sketch) pairs; the CLI adapts the phantom loader, tests use
//!   [`TensorPairs`].
//! - [`FrozenGenerator`]: G with plain-tensor (non-`Var`) weights, so no gradient can reach
//!   them, plus the sha256 recorded in every export.
//! - [`TrainLoop`] + [`run_training`]: the step loop with checkpoint / sample schedules and a
//!   wall-clock budget.
//! - Bundle helpers: an export folder is staged next to its final place and renamed into it;
//!   loading names the missing or bad file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use s2m_core::imageio::{image_grid, save_png, tensor_to_rgb_batch};
use s2m_core::rng::{derive_seed, seeded_permutation};
use s2m_train::logcsv::CsvLogger;
use s2m_train::plot::plot_training_log;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use stylegan2::{Generator, GeneratorInput, NoiseMode, StyleGan2Config, WeightOffsets};

/// Errors of a training run, of an export and of loading an exported bundle.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Encoder(#[from] crate::E4eError),
    #[error(transparent)]
    StyleGan2(#[from] stylegan2::StyleGan2Error),
    #[error(transparent)]
    Loss(#[from] losses::LossError),
    #[error(transparent)]
    Core(#[from] s2m_core::CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    SecondOrder(#[from] s2m_train::autograd::SecondOrderError),
    #[error(
        "training diverged at step {step}: {what} is {value} (not finite); the last checkpoint in {dir} is intact"
    )]
    Diverged {
        step: u64,
        what: String,
        value: f64,
        dir: PathBuf,
    },
    #[error("data: {0}")]
    Data(String),
    #[error("cannot resume from {path}: {message}")]
    Resume { path: PathBuf, message: String },
    #[error("invalid training config: {0}")]
    Config(String),
    /// A file of an exported bundle is missing, unreadable or inconsistent.
    #[error("{path}: {message}")]
    Bundle { path: PathBuf, message: String },
}

pub type TrainResult<T> = std::result::Result<T, TrainError>;

impl TrainError {
    pub(crate) fn bundle(path: &Path, message: impl Into<String>) -> Self {
        Self::Bundle {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// One batch of training pairs.
#[derive(Debug, Clone)]
pub struct Pairs {
    /// Targets `[B, 3, H, W]` in [-1, 1] (H = the generator's size).
    pub images: Tensor,
    /// Sketches `[B, 1, n, n]` in [-1, 1] (dark strokes near -1 on white near 1; n = the
    /// encoder's / hypernetwork's input size).
    pub sketches: Tensor,
    /// Label maps `[B, H, W]` `u8` of the targets (`class_id * 16 + instance`, 0 =
    /// background; the phantom's masks), when the dataset provides them and they were asked
    /// for (the refiner's region loss).
    pub masks: Option<Tensor>,
}

/// (image, sketch) pairs for training E and H.
pub trait PairDataset: Sync {
    /// Number of pairs.
    fn len(&self) -> usize;
    /// True when there is no pair.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The pairs at `indices` on `device`.
    fn load(&self, indices: &[usize], device: &Device) -> TrainResult<Pairs>;
    /// What the data is (folder, split, count, size), recorded in the exports.
    fn description(&self) -> String {
        format!("{} pairs", self.len())
    }
    /// Where the sketches come from (ground-truth contours, the SOLOv2 synthesizer S, ...),
    /// recorded in the exports.
    fn sketch_source(&self) -> String {
        "unspecified".into()
    }
}

/// Pairs held in memory (tests, small experiments).
#[derive(Debug, Clone)]
pub struct TensorPairs {
    /// `[N, 3, H, W]`.
    pub images: Tensor,
    /// `[N, 1, n, n]`.
    pub sketches: Tensor,
    /// `[N, H, W]` `u8` label maps, if any (see [`Pairs::masks`]).
    pub masks: Option<Tensor>,
    pub description: String,
}

impl PairDataset for TensorPairs {
    fn len(&self) -> usize {
        self.images.dim(0).unwrap_or(0)
    }
    fn load(&self, indices: &[usize], device: &Device) -> TrainResult<Pairs> {
        let ids: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let ids = Tensor::new(ids.as_slice(), self.images.device())?;
        let pick = |t: &Tensor| -> TrainResult<Tensor> {
            Ok(t.contiguous()?.index_select(&ids, 0)?.to_device(device)?)
        };
        Ok(Pairs {
            images: pick(&self.images)?,
            sketches: pick(&self.sketches)?,
            masks: self.masks.as_ref().map(pick).transpose()?,
        })
    }
    fn description(&self) -> String {
        self.description.clone()
    }
}

/// Checks a batch against the sizes the models need; the error names both shapes.
pub fn check_pairs(pairs: &Pairs, image_size: usize, sketch_size: usize) -> TrainResult<()> {
    let i = pairs.images.dims();
    let s = pairs.sketches.dims();
    if i.len() != 4 || i[1] != 3 || i[2] != image_size || i[3] != image_size {
        return Err(TrainError::Data(format!(
            "images have shape {i:?}, the generator needs [B, 3, {image_size}, {image_size}]"
        )));
    }
    if s.len() != 4 || s[1] != 1 || s[2] != sketch_size || s[3] != sketch_size {
        return Err(TrainError::Data(format!(
            "sketches have shape {s:?}, the networks need [B, 1, {sketch_size}, {sketch_size}] \
             (one grey channel)"
        )));
    }
    if let Some(m) = &pairs.masks {
        let m = m.dims();
        if m.len() != 3 || m[0] != i[0] || m[1] != image_size || m[2] != image_size {
            return Err(TrainError::Data(format!(
                "masks have shape {m:?}, the images need [{}, {image_size}, {image_size}]",
                i[0]
            )));
        }
    }
    if i[0] != s[0] || i[0] == 0 {
        return Err(TrainError::Data(format!(
            "{} images but {} sketches in one batch",
            i[0], s[0]
        )));
    }
    Ok(())
}

/// The first `n` pairs of `data` (the fixed validation pairs of the sample strips), checked.
pub fn load_validation(
    data: &dyn PairDataset,
    n: usize,
    device: &Device,
    image_size: usize,
    sketch_size: usize,
) -> TrainResult<Pairs> {
    let n = n.min(data.len());
    if n == 0 {
        return Err(TrainError::Data("the validation data is empty".into()));
    }
    let pairs = data.load(&(0..n).collect::<Vec<_>>(), device)?;
    check_pairs(&pairs, image_size, sketch_size)?;
    Ok(pairs)
}

/// A checkpoint header with the run's step, seed, training config and the hashes of the frozen
/// networks it depends on (`extra`).
pub fn checkpoint_meta<C: Serialize>(
    step: u64,
    seed: u64,
    config: &C,
    hashes: &[(&str, &str)],
) -> TrainResult<s2m_train::checkpoint::CheckpointMeta> {
    let mut meta = s2m_train::checkpoint::CheckpointMeta::new(step, seed);
    meta.config = serde_json::to_value(config)
        .map_err(|e| TrainError::Config(format!("cannot serialise the config: {e}")))?;
    for (k, v) in hashes {
        meta.extra.insert(k.to_string(), (*v).into());
    }
    Ok(meta)
}

/// Lower-case hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> TrainResult<String> {
    let bytes = std::fs::read(path).map_err(|e| s2m_core::CoreError::io(path, e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 over sorted names, shapes and f32 little-endian values (for in-memory weights).
pub fn sha256_tensors(tensors: &HashMap<String, Tensor>) -> TrainResult<String> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        let t = &tensors[name];
        h.update(name.as_bytes());
        h.update(format!("{:?}", t.dims()).as_bytes());
        for v in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
            h.update(v.to_le_bytes());
        }
    }
    Ok(hex(&h.finalize()))
}

/// The generator G, frozen: its weights are plain tensors (never `Var`s), so a loss through G
/// produces gradients for its inputs (w, weight offsets) but none for its weights. Always run
/// with constant noise (`noises.noise_i`; HyperStyle's `randomize_noise=False`).
#[derive(Debug, Clone)]
pub struct FrozenGenerator {
    generator: Generator,
    sha256: String,
    source: String,
}

/// File name of a generator inside a generator folder.
pub const GENERATOR_FILE: &str = "generator.safetensors";

impl FrozenGenerator {
    /// Loads `path` (a `generator.safetensors` with its `.json` config, or a folder holding
    /// one) through `stylegan2::Checkpoint` (every key checked); records the file's sha256.
    pub fn load(path: &Path, device: &Device) -> TrainResult<Self> {
        let file = if path.is_dir() {
            path.join(GENERATOR_FILE)
        } else {
            path.to_path_buf()
        };
        if !file.is_file() {
            return Err(TrainError::bundle(&file, "generator weights not found"));
        }
        let ck = stylegan2::Checkpoint::open(&file)?;
        let generator = ck.generator("", DType::F32, device)?;
        Ok(Self {
            generator,
            sha256: sha256_file(&file)?,
            source: file.display().to_string(),
        })
    }

    /// A generator from in-memory tensors (rosinality names, noise buffers included). Every
    /// tensor is detached first, so even `Var`s handed in become constants.
    pub fn from_tensors(
        config: &StyleGan2Config,
        tensors: HashMap<String, Tensor>,
        source: &str,
        device: &Device,
    ) -> TrainResult<Self> {
        let sha256 = sha256_tensors(&tensors)?;
        let detached: HashMap<String, Tensor> =
            tensors.into_iter().map(|(k, t)| (k, t.detach())).collect();
        let generator = Generator::new(
            config,
            VarBuilder::from_tensors(detached, DType::F32, device),
        )?;
        Ok(Self {
            generator,
            sha256,
            source: source.to_string(),
        })
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }
    pub fn config(&self) -> &StyleGan2Config {
        self.generator.config()
    }
    /// sha256 of the weights file (or of the tensors for [`FrozenGenerator::from_tensors`]).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The file (or label) the weights came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn input(codes: &Tensor) -> TrainResult<GeneratorInput<'static>> {
        let input = match codes.rank() {
            2 => GeneratorInput::w(vec![codes.clone()]),
            3 => GeneratorInput::w_plus(codes.clone()),
            _ => {
                return Err(crate::E4eError::Shape {
                    what: "codes for the generator".into(),
                    expected: "[B, S] or [B, n_latent, S]".into(),
                    got: codes.dims().to_vec(),
                }
                .into());
            }
        };
        Ok(input.with_noise(NoiseMode::Const))
    }

    /// G(w) for `[B, S]` (one w broadcast to every layer) or W+ `[B, n_latent, S]` codes.
    pub fn image(&self, codes: &Tensor) -> TrainResult<Tensor> {
        Ok(self.generator.forward(&Self::input(codes)?)?.image)
    }

    /// G(w; theta * (1 + offsets)).
    pub fn image_with_offsets(
        &self,
        codes: &Tensor,
        offsets: &WeightOffsets,
    ) -> TrainResult<Tensor> {
        let input = Self::input(codes)?.with_offsets(offsets);
        Ok(self.generator.forward(&input)?.image)
    }
}

/// Seeded epoch orders: sample `i` of step `s` is a pure function of `(seed, epoch)`.
#[derive(Debug, Clone)]
pub struct EpochOrder {
    seed: u64,
    cache: Option<(u64, Vec<usize>)>,
}

/// Stream id of the data order.
pub const DATA_STREAM: u64 = 0xDA7A;

impl EpochOrder {
    pub fn new(seed: u64) -> Self {
        Self { seed, cache: None }
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
                    let seed = derive_seed(self.seed, DATA_STREAM, epoch);
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
pub fn write_loss_plot(out: &Path, title: &str, columns: &[&str]) -> TrainResult<()> {
    Ok(plot_training_log(
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
    s2m_train::optim::varmap_named_vars(varmap)
        .into_iter()
        .filter(|(n, _)| !(n.ends_with("running_mean") || n.ends_with("running_var")))
        .collect()
}

pub use s2m_train::optim::varmap_tensors;

/// A sample strip: one row per sample, one column per tensor of `columns` (each `[B, C, h, w]`
/// with C = 1 or 3, values in [-1, 1]; resized bilinearly to the first column's size).
pub fn write_strip(path: &Path, columns: &[Tensor]) -> TrainResult<()> {
    let Some(first) = columns.first() else {
        return Ok(());
    };
    let (b, _, h, w) = first.dims4()?;
    let mut per_column = Vec::with_capacity(columns.len());
    for c in columns {
        let (cb, ch, ih, iw) = c.dims4()?;
        if cb != b || !(ch == 1 || ch == 3) {
            return Err(TrainError::Data(format!(
                "sample strip column of shape {:?} does not fit [{b}, 1 or 3, H, W]",
                c.dims()
            )));
        }
        let rgb = if ch == 1 {
            Tensor::cat(&[c, c, c], 1)?
        } else {
            c.clone()
        };
        let rgb = if (ih, iw) != (h, w) {
            backbones::ops::resize_bilinear(&rgb, h, w).map_err(crate::E4eError::from)?
        } else {
            rgb
        };
        per_column.push(tensor_to_rgb_batch(&rgb.clamp(-1f32, 1f32)?)?);
    }
    let mut tiles = Vec::with_capacity(b * columns.len());
    for row in 0..b {
        for col in &per_column {
            tiles.push(col[row].clone());
        }
    }
    let grid = image_grid(&tiles, columns.len(), 2)?;
    save_png(path, &grid)?;
    Ok(())
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

/// A trainer that [`run_training`] can drive.
pub trait TrainLoop {
    type Stats;
    type Error: From<TrainError>;
    /// Steps completed so far.
    fn step(&self) -> u64;
    /// The run folder.
    fn out_dir(&self) -> &Path;
    /// `(checkpoint_every, sample_every)`; 0 = only at the end.
    fn schedule(&self) -> (u64, u64);
    /// Prepares the fixed validation pairs of the sample strips (first call only).
    fn prepare(&mut self, data: &dyn PairDataset) -> Result<(), Self::Error>;
    fn train_step(&mut self, data: &dyn PairDataset) -> Result<Self::Stats, Self::Error>;
    fn save_checkpoint(&self) -> Result<PathBuf, Self::Error>;
    fn write_samples(&self, path: &Path) -> Result<(), Self::Error>;
    fn write_loss_plot(&self) -> Result<(), Self::Error>;
}

/// Implements [`TrainLoop`] for a trainer with the fields `step`, `out`, `cfg.checkpoint_every`,
/// `cfg.sample_every`, `val`, `data_description`, `sketch_source` and the inherent methods
/// `set_validation`, `train_step`, `save_checkpoint`, `write_samples`, `write_loss_plot` (the
/// two phases' trainers share this shape).
#[macro_export]
macro_rules! impl_train_loop {
    ($trainer:ty, $stats:ty, $error:ty) => {
        impl $crate::run::TrainLoop for $trainer {
            type Stats = $stats;
            type Error = $error;
            fn step(&self) -> u64 {
                self.step
            }
            fn out_dir(&self) -> &std::path::Path {
                &self.out
            }
            fn schedule(&self) -> (u64, u64) {
                (self.cfg.checkpoint_every, self.cfg.sample_every)
            }
            fn prepare(
                &mut self,
                data: &dyn $crate::run::PairDataset,
            ) -> std::result::Result<(), $error> {
                self.data_description = data.description();
                self.sketch_source = data.sketch_source();
                if self.val.is_none() {
                    self.set_validation(data)?;
                }
                Ok(())
            }
            fn train_step(
                &mut self,
                data: &dyn $crate::run::PairDataset,
            ) -> std::result::Result<$stats, $error> {
                <$trainer>::train_step(self, data)
            }
            fn save_checkpoint(&self) -> std::result::Result<std::path::PathBuf, $error> {
                <$trainer>::save_checkpoint(self)
            }
            fn write_samples(&self, path: &std::path::Path) -> std::result::Result<(), $error> {
                <$trainer>::write_samples(self, path)
            }
            fn write_loss_plot(&self) -> std::result::Result<(), $error> {
                <$trainer>::write_loss_plot(self)
            }
        }
    };
}

/// Trains until `until_step` or until `budget` of wall-clock time has passed (checked at step
/// boundaries), with checkpoints, sample strips and loss curves on schedule, then a final
/// checkpoint, strip (`samples/final.png`) and curve. `on_step` sees every step's stats.
pub fn run_training<T: TrainLoop>(
    trainer: &mut T,
    data: &dyn PairDataset,
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

/// Writes an export folder: every `(file, tensors)` as safetensors, then `json_file` with the
/// metadata `meta(stage)` returns (it may hash the weight files written in `stage`), staged in
/// a sibling folder and renamed into `dir` (an existing `dir` is replaced), so a crash never
/// leaves a half-written bundle under the final name.
pub fn write_bundle<M: Serialize>(
    dir: &Path,
    files: &[(&str, &HashMap<String, Tensor>)],
    json_file: &str,
    meta: impl FnOnce(&Path) -> TrainResult<M>,
) -> TrainResult<M> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "export".into());
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| s2m_core::CoreError::io(parent, e))?;
    let stage = parent.join(format!(".{name}.partial"));
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(|e| s2m_core::CoreError::io(&stage, e))?;
    }
    std::fs::create_dir_all(&stage).map_err(|e| s2m_core::CoreError::io(&stage, e))?;
    for (file, tensors) in files {
        candle_core::safetensors::save(tensors, stage.join(file))?;
    }
    let meta = meta(&stage)?;
    let json = serde_json::to_string_pretty(&meta)
        .map_err(|e| TrainError::Config(format!("cannot serialise {json_file}: {e}")))?;
    s2m_core::fsio::atomic_write(stage.join(json_file), json.as_bytes())?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| s2m_core::CoreError::io(dir, e))?;
    }
    std::fs::rename(&stage, dir).map_err(|e| s2m_core::CoreError::io(dir, e))?;
    Ok(meta)
}

/// [`write_bundle`] of a single weights file whose sha256 goes into the metadata:
/// `meta(sha256 of weights_file)` is written as `json_file`.
pub fn write_weights_bundle<M: Serialize>(
    dir: &Path,
    weights_file: &str,
    tensors: &HashMap<String, Tensor>,
    json_file: &str,
    meta: impl FnOnce(String) -> M,
) -> TrainResult<M> {
    write_bundle(dir, &[(weights_file, tensors)], json_file, |stage| {
        Ok(meta(sha256_file(&stage.join(weights_file))?))
    })
}

/// A required file of a bundle folder; the error names it and the folder.
pub fn bundle_file(dir: &Path, file: &str, what: &str) -> TrainResult<PathBuf> {
    if !dir.is_dir() {
        return Err(TrainError::bundle(
            dir,
            format!("{what} bundle folder not found"),
        ));
    }
    let path = dir.join(file);
    if !path.is_file() {
        return Err(TrainError::bundle(
            &path,
            format!("missing {file} in the {what} bundle {}", dir.display()),
        ));
    }
    Ok(path)
}

/// Reads a bundle's JSON metadata and checks its `format` tag.
pub fn read_bundle_json<M: DeserializeOwned>(
    dir: &Path,
    file: &str,
    what: &str,
    format: &str,
) -> TrainResult<M> {
    let path = bundle_file(dir, file, what)?;
    let text = std::fs::read_to_string(&path).map_err(|e| s2m_core::CoreError::io(&path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::bundle(&path, format!("not valid JSON: {e}")))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(f) if f == format => {}
        other => {
            return Err(TrainError::bundle(
                &path,
                format!("format tag is {other:?}, expected {format:?}"),
            ));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| TrainError::bundle(&path, format!("unreadable {what} metadata: {e}")))
}

/// Checks a bundle file against the sha256 its metadata records.
pub fn verify_sha256(path: &Path, expected: &str) -> TrainResult<()> {
    let got = sha256_file(path)?;
    if got != expected {
        return Err(TrainError::bundle(
            path,
            format!("sha256 {got} differs from the {expected} recorded in the bundle metadata"),
        ));
    }
    Ok(())
}
