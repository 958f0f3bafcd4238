//! `sketch2medi encoder train`: phase 1 of the training (E + D_w with G frozen) on the
//! (image, synthesized sketch) pairs of a phantom dataset folder; see
//! `e4e_encoder::train` and docs/ENCODER_REFINER.md ("Training").

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use candle_core::{Device, Tensor};
use clap::{Args, Subcommand};
use e4e_encoder::train::run_training;
use e4e_encoder::train::{FrozenGenerator, PairDataset, Pairs, StopReason, TrainResult};
use e4e_encoder::{EncoderConfig, EncoderTrainConfig, EncoderTrainer, TrainError};
use image::{GrayImage, Luma};
use losses::SimilarityLoss;
use pharynx_phantom::layout::{Layout, Split};
use pharynx_phantom::{DatasetSource, Loader, LoaderConfig};
use s2m_core::LabelMap;
use s2m_core::rng::{derive_seed, rng_from_seed};
use s2m_train::Schedule;
use sketch_synth::augment::{AugmentConfig, augment_sketch};
use sketch_synth::normalise::NormaliseConfig;

#[derive(Debug, Subcommand)]
pub enum EncoderCommand {
    /// Train E (+ the latent discriminator D_w) with the generator frozen; resumes from the
    /// latest checkpoint in --out and exports to <out>/export.
    Train(EncoderTrainArgs),
}

/// Seed, sampling / checkpoint schedule and time budget of every training command.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::count0::<u64>, allow_hyphen_values = true)]
    pub seed: u64,
    /// Sample strip and loss curves every N steps.
    #[arg(long, default_value_t = 500, value_parser = crate::cli::args::count::<u64>, allow_hyphen_values = true)]
    pub sample_every: u64,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 500, value_parser = crate::cli::args::count::<u64>, allow_hyphen_values = true)]
    pub checkpoint_every: u64,
    /// Stop after this many minutes of wall-clock time (at a step boundary, with a checkpoint
    /// and the export); re-running the command continues.
    #[arg(long, value_parser = crate::cli::args::positive, allow_hyphen_values = true)]
    pub max_minutes: Option<f64>,
}

impl ScheduleArgs {
    /// The run's [`Schedule`]: these flags, the default log interval and checkpoint count.
    pub fn to_schedule(&self) -> Schedule {
        Schedule {
            seed: self.seed,
            sample_every: self.sample_every,
            checkpoint_every: self.checkpoint_every,
            ..Schedule::default()
        }
    }
}

/// Options shared by `encoder train` and `refiner train`.
#[derive(Debug, Args)]
pub struct CommonTrainArgs {
    /// A phantom dataset folder: trains on its `train` split (images + synthesized sketches),
    /// draws the sample strips from `seg_val` (or the first training pairs).
    #[arg(long)]
    pub data: PathBuf,
    /// The frozen generator: a folder with generator.safetensors (+ .json) or the file itself.
    #[arg(long, default_value = "weights/stylegan2_phantom64")]
    pub generator: PathBuf,
    /// Run folder: checkpoints/, samples/, log.csv, loss.png, export/.
    #[arg(long)]
    pub out: PathBuf,
    /// Total steps (a resumed run continues up to this step).
    #[arg(long, default_value_t = 20_000, value_parser = crate::cli::args::count::<u64>, allow_hyphen_values = true)]
    pub steps: u64,
    #[arg(long, default_value_t = 8, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-4, value_parser = crate::cli::args::positive, allow_hyphen_values = true)]
    pub lr: f64,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Write a log.csv row every N steps.
    #[arg(long, default_value_t = 10, value_parser = crate::cli::args::count::<u64>, allow_hyphen_values = true)]
    pub log_every: u64,
    /// L_sim weights: MSE, perceptual (LPIPS-alex if its trunk is in --loss-weights, else the
    /// shipped ST-LPIPS-alex), MoCo (only if moco_v2 weights are in --loss-weights).
    #[arg(long, default_value_t = SimilarityLoss::DEFAULT_L2, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    pub l2: f64,
    #[arg(long, default_value_t = SimilarityLoss::DEFAULT_LPIPS, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    pub lpips: f64,
    #[arg(long, default_value_t = SimilarityLoss::DEFAULT_MOCO, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    pub moco: f64,
    /// Folder with the loss networks' weights (default: the repository's weights/).
    #[arg(long)]
    pub loss_weights: Option<PathBuf>,
    /// Training sketches from this folder (`<id>.png` per training image), as the paper does
    /// with the sketches that S drew (`sketch2medi solov2 sketches --split train --out DIR`);
    /// default: the dataset's ground-truth-contour sketches. The sample strips keep the
    /// dataset's validation sketches.
    #[arg(long)]
    pub sketches: Option<PathBuf>,
    /// Augment the training sketches on the fly (seeded by --seed and the step): each is kept
    /// with probability --augment-keep, else drawn again from the image's label map by a
    /// free-hand drawer style (12 styles, part-wise ones with probability
    /// --augment-partwise) on a 64-1024 px page with a 1-8 px pen; every sketch is then
    /// normalised as the pipeline does (`sketch_synth::augment`).
    #[arg(long, default_value_t = false)]
    pub augment: bool,
    #[arg(long, default_value_t = AugmentConfig::default().keep_probability, value_parser = crate::cli::args::probability, allow_hyphen_values = true)]
    pub augment_keep: f32,
    #[arg(long, default_value_t = AugmentConfig::default().partwise_probability, value_parser = crate::cli::args::probability, allow_hyphen_values = true)]
    pub augment_partwise: f32,
}

impl CommonTrainArgs {
    /// The augmentation of the training sketches of `size` px, if asked for (normalised with
    /// the pipeline's default for that size).
    pub fn augmentation(&self, size: u32) -> Option<AugmentConfig> {
        self.augment.then(|| AugmentConfig {
            keep_probability: self.augment_keep,
            partwise_probability: self.augment_partwise,
            normalise: NormaliseConfig::for_size(size),
            ..AugmentConfig::default()
        })
    }
}

#[derive(Debug, Args)]
pub struct EncoderTrainArgs {
    #[command(flatten)]
    pub common: CommonTrainArgs,
    /// E preset: narrow_cpu, resnet34, resnet50, ir_se50; or a JSON EncoderConfig file.
    /// style_dim and the input size follow the generator.
    #[arg(long, default_value = "narrow_cpu")]
    pub preset: String,
    /// Weight lambda_adv of E's adversarial term (0 disables D_w).
    #[arg(long, default_value_t = 0.1, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    pub adv_lambda: f64,
    /// D_w's Adam learning rate.
    #[arg(long, default_value_t = 2e-5, value_parser = crate::cli::args::positive, allow_hyphen_values = true)]
    pub d_lr: f64,
    /// R1 weight gamma of D_w (lazy, every 16 steps).
    #[arg(long, default_value_t = 10.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    pub r1: f64,
    /// Fine-tune: start E (and w_avg) from this encoder export folder (same preset and
    /// generator); D_w starts fresh.
    #[arg(long)]
    pub init: Option<PathBuf>,
}

pub fn run(cmd: EncoderCommand) -> anyhow::Result<()> {
    match cmd {
        EncoderCommand::Train(args) => train(args),
    }
}

/// The phantom loader as (image, sketch) pairs, optionally with augmented training sketches.
pub struct LoaderPairs {
    loader: Loader,
    description: String,
    sketch_source: String,
    /// Whether the caller asked for the label maps (the loader also loads them to augment).
    masks: bool,
    augment: Option<Augment>,
}

/// On-the-fly sketch augmentation of [`LoaderPairs`].
struct Augment {
    cfg: AugmentConfig,
    seed: u64,
    size: u32,
}

/// Stream of the augmentation draws (derived from the run's seed, then the step and the index).
const AUGMENT_STREAM: u64 = 0xA06;

impl LoaderPairs {
    /// Augments the sketches of [`PairDataset::load_for_step`] with `cfg`, seeded by `seed`
    /// (with the step and the pair's index); [`PairDataset::load`] (the validation strips)
    /// stays unaugmented. Needs the loader to load the label maps.
    pub fn with_augmentation(mut self, cfg: AugmentConfig, seed: u64) -> anyhow::Result<Self> {
        let size = self.loader.config().resize_to.unwrap_or(0);
        cfg.validate(size).context("--augment")?;
        anyhow::ensure!(
            self.loader.config().load_masks,
            "augmentation needs the label maps (masks/) of the dataset"
        );
        self.sketch_source = format!(
            "{}; augmented on the fly (sketch_synth::augment, seed {seed}): kept with \
             probability {}, else redrawn by a drawer style (part-wise with probability {}) on \
             pages of {:?} px with a {}-{} px pen; all normalised (work_scale {}, pen {} px)",
            self.sketch_source,
            cfg.keep_probability,
            cfg.partwise_probability,
            cfg.canvases,
            cfg.pen_px[0],
            cfg.pen_px[1],
            cfg.normalise.work_scale,
            cfg.normalise.pen_px
        );
        self.augment = Some(Augment { cfg, seed, size });
        Ok(self)
    }

    /// The pairs of `batch` with `sketches`, on `device` (the label maps if asked for).
    fn pairs(
        &self,
        batch: pharynx_phantom::Batch,
        sketches: Tensor,
        device: &Device,
    ) -> TrainResult<Pairs> {
        Ok(Pairs {
            images: batch.images.to_device(device)?,
            sketches: sketches.to_device(device)?,
            masks: batch
                .masks
                .filter(|_| self.masks)
                .map(|m| m.to_device(device))
                .transpose()?,
        })
    }

    fn load_batch(&self, indices: &[usize]) -> TrainResult<pharynx_phantom::Batch> {
        self.loader
            .batch(indices)
            .map_err(|e| TrainError::Data(e.to_string()))
    }
}

/// The augmented sketches `[B, 1, n, n]` of one batch.
fn augment_batch(
    aug: &Augment,
    step: u64,
    indices: &[usize],
    sketches: &Tensor,
    masks: &Tensor,
) -> TrainResult<Tensor> {
    use rayon::prelude::*;
    let data = |e: String| TrainError::Data(e);
    let (b, _, h, w) = sketches.dims4()?;
    let own: Vec<f32> = sketches.flatten_all()?.to_vec1()?;
    let (_, mh, mw) = masks.dims3()?;
    let labels: Vec<u8> = masks.flatten_all()?.to_vec1()?;
    let size = aug.size;
    let drawn: Vec<Vec<f32>> = (0..b)
        .into_par_iter()
        .map(|k| {
            let own = GrayImage::from_fn(w as u32, h as u32, |x, y| {
                let v = own[k * h * w + y as usize * w + x as usize];
                Luma([((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8])
            });
            let map = GrayImage::from_raw(
                mw as u32,
                mh as u32,
                labels[k * mh * mw..(k + 1) * mh * mw].to_vec(),
            )
            .ok_or_else(|| data("label map of the wrong size".into()))?;
            let map =
                LabelMap::from_gray(map, "training label map").map_err(|e| data(e.to_string()))?;
            let seed = derive_seed(
                derive_seed(aug.seed, AUGMENT_STREAM, step),
                0,
                indices[k] as u64,
            );
            let (sketch, _) = augment_sketch(&map, &own, size, &aug.cfg, &mut rng_from_seed(seed))
                .map_err(|e| data(format!("augmenting pair {}: {e}", indices[k])))?;
            Ok(sketch
                .pixels()
                .map(|p| p.0[0] as f32 / 127.5 - 1.0)
                .collect())
        })
        .collect::<TrainResult<_>>()?;
    let n = size as usize;
    Ok(Tensor::from_vec(
        drawn.concat(),
        (b, 1, n, n),
        sketches.device(),
    )?)
}

impl PairDataset for LoaderPairs {
    fn len(&self) -> usize {
        self.loader.len()
    }
    fn load(&self, indices: &[usize], device: &Device) -> TrainResult<Pairs> {
        let mut batch = self.load_batch(indices)?;
        let sketches = batch
            .sketches
            .take()
            .ok_or_else(|| TrainError::Data("the loader returned no sketches".into()))?;
        self.pairs(batch, sketches, device)
    }
    fn load_for_step(&self, step: u64, indices: &[usize], device: &Device) -> TrainResult<Pairs> {
        let Some(aug) = &self.augment else {
            return self.load(indices, device);
        };
        let batch = self.load_batch(indices)?;
        let (Some(sketches), Some(masks)) = (&batch.sketches, &batch.masks) else {
            return Err(TrainError::Data(
                "the loader returned no sketches or no label maps".into(),
            ));
        };
        let sketches = augment_batch(aug, step, indices, sketches, masks)?;
        self.pairs(batch, sketches, device)
    }
    fn description(&self) -> String {
        self.description.clone()
    }
    fn sketch_source(&self) -> String {
        self.sketch_source.clone()
    }
}

/// The pairs of `split` of the phantom folder `data`, resized to `size` px; the sketches from
/// `sketches` (`<id>.png`) when given, else the dataset's own; with the label maps when
/// `masks`.
pub fn phantom_pairs(
    data: &Path,
    split: Split,
    size: u32,
    sketches: Option<&Path>,
    masks: bool,
) -> anyhow::Result<LoaderPairs> {
    let layout = Layout::new(data);
    anyhow::ensure!(
        layout.manifest().is_file(),
        "{}: not a phantom dataset folder (no {}); build one with `sketch2medi phantom build`",
        data.display(),
        layout.manifest().display()
    );
    let mut source = DatasetSource::phantom(data, split)
        .with_context(|| format!("reading split {} of {}", split.name(), data.display()))?;
    if let Some(dir) = sketches {
        source = source.with_sketches_from(dir);
    }
    let manifest = source
        .manifest()
        .cloned()
        .context("the dataset has no manifest")?;
    let loader = Loader::new(
        source,
        LoaderConfig {
            load_sketches: true,
            load_masks: masks,
            resize_to: Some(size),
            ..LoaderConfig::default()
        },
        &Device::Cpu,
    )?;
    let description = format!(
        "phantom dataset {} (split {}, {} pairs, {} px files resized to {size} px, dataset seed \
         {}, scale {}, {})",
        data.display(),
        split.name(),
        loader.len(),
        manifest.size,
        manifest.seed,
        manifest.scale,
        manifest.generator_version
    );
    let sketch_source = match sketches {
        Some(dir) => sketch_folder_source(dir),
        None => format!(
            "synthesized from the ground-truth mask contours (sketch_synth, stroke width {} px at \
             {} px); the SOLOv2 sketch synthesizer S was not used",
            manifest.sketch_stroke_width, manifest.size
        ),
    };
    Ok(LoaderPairs {
        loader,
        description,
        sketch_source,
        masks,
        augment: None,
    })
}

/// Describes a `--sketches` folder from the `report.json` that `solov2 sketches` leaves in it.
fn sketch_folder_source(dir: &Path) -> String {
    let report = std::fs::read(dir.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::cli::solov2::SketchReport>(&b).ok());
    match report {
        Some(r) => format!(
            "drawn by the SOLOv2 sketch synthesizer S ({}, contours of instances with score >= \
             {}) for split {} of {}: {} sketches in {}, {} empty",
            r.weights,
            r.threshold,
            r.split,
            r.data,
            r.images,
            dir.display(),
            r.empty
        ),
        None => format!(
            "read from {} (no report.json of `solov2 sketches` there: origin not recorded)",
            dir.display()
        ),
    }
}

/// Training pairs, validation pairs (seg_val, else None), the generator and L_sim.
pub struct Inputs {
    pub train: LoaderPairs,
    pub val: Option<LoaderPairs>,
    pub generator: FrozenGenerator,
    pub loss: SimilarityLoss,
}

/// The inputs of a training command; `masks`: load the training images' label maps too.
pub fn load_inputs(args: &CommonTrainArgs, masks: bool, device: &Device) -> anyhow::Result<Inputs> {
    let generator = FrozenGenerator::load(&args.generator, device)
        .with_context(|| format!("loading the generator {}", args.generator.display()))?;
    let size = generator.config().size;
    let augment = args.augmentation(size);
    let mut train = phantom_pairs(
        &args.data,
        Split::Train,
        size,
        args.sketches.as_deref(),
        masks || augment.is_some(),
    )?;
    train.masks = masks;
    if let Some(cfg) = augment {
        train = train.with_augmentation(cfg, args.schedule.seed)?;
    }
    let val = phantom_pairs(&args.data, Split::SegVal, size, None, false)
        .ok()
        .filter(|p| !p.is_empty());
    let dir = args
        .loss_weights
        .clone()
        .unwrap_or_else(losses::weights::shipped_weights_dir);
    let loss = SimilarityLoss::from_dir(&dir, candle_core::DType::F32, device)
        .with_context(|| format!("loading the loss networks from {}", dir.display()))?;
    for n in loss.notes() {
        eprintln!("losses::SimilarityLoss: {n}");
    }
    Ok(Inputs {
        train,
        val,
        generator,
        loss,
    })
}

/// `--max-minutes` as a duration.
pub fn budget(max_minutes: Option<f64>) -> anyhow::Result<Option<Duration>> {
    match max_minutes {
        Some(m) if !(m > 0.0 && m.is_finite()) => {
            anyhow::bail!("--max-minutes must be positive, got {m}")
        }
        Some(m) => Ok(Some(Duration::from_secs_f64(m * 60.0))),
        None => Ok(None),
    }
}

/// Prints how the run ended and what L_sim left out.
pub fn report(
    what: &str,
    reason: StopReason,
    step: u64,
    start: u64,
    export: &Path,
    notes: &[String],
) {
    for n in notes {
        println!("note: {n}");
    }
    let why = match reason {
        StopReason::Finished => "reached the requested step",
        StopReason::Budget => "stopped by --max-minutes (re-run the command to continue)",
    };
    println!(
        "{what}: step {step} (from {start}), {why}; export: {}",
        export.display()
    );
}

/// A named preset constructor.
pub type Preset<'a, T> = (&'a str, fn() -> T);

/// `name` from `presets`, else a JSON file of `T` at the path `name`.
pub fn preset_or_json<T: serde::de::DeserializeOwned>(
    name: &str,
    presets: &[Preset<T>],
    what: &str,
) -> anyhow::Result<T> {
    if let Some((_, make)) = presets.iter().find(|(n, _)| *n == name) {
        return Ok(make());
    }
    let names: Vec<&str> = presets.iter().map(|(n, _)| *n).collect();
    let text = std::fs::read_to_string(name).with_context(|| {
        format!(
            "--preset {name}: not a preset ({}) and not a readable JSON file",
            names.join(", ")
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("--preset {name}: bad {what} JSON"))
}

fn train(args: EncoderTrainArgs) -> anyhow::Result<()> {
    let device = crate::cli::device()?;
    let budget = budget(args.common.schedule.max_minutes)?;
    let inputs = load_inputs(&args.common, false, &device)?;
    let gen_cfg = inputs.generator.config().clone();
    let presets: [Preset<EncoderConfig>; 4] = [
        ("narrow_cpu", EncoderConfig::narrow_cpu),
        ("resnet34", EncoderConfig::resnet34),
        ("resnet50", EncoderConfig::resnet50),
        ("ir_se50", EncoderConfig::ir_se50),
    ];
    let encoder = preset_or_json(&args.preset, &presets, "EncoderConfig")?
        .for_generator(&gen_cfg)
        .with_input_size(gen_cfg.size as usize);
    let c = &args.common;
    let cfg = EncoderTrainConfig {
        encoder,
        batch: c.batch,
        lr: c.lr,
        l2_lambda: c.l2,
        lpips_lambda: c.lpips,
        moco_lambda: c.moco,
        adv_lambda: args.adv_lambda,
        d_lr: args.d_lr,
        r1_gamma: args.r1,
        schedule: Schedule {
            log_every: c.log_every,
            ..c.schedule.to_schedule()
        },
        init_from: args.init.clone(),
        ..EncoderTrainConfig::default()
    };
    let mut trainer = EncoderTrainer::open(cfg, inputs.generator, inputs.loss, &c.out, &device)
        .with_context(|| format!("opening the run in {}", c.out.display()))?;
    super::progress::print_resume_notes(trainer.resume_report());
    if let Some(val) = &inputs.val {
        trainer.set_validation(val)?;
    }
    if let (Some(init), 0) = (&args.init, trainer.step()) {
        eprintln!("initialised E and w_avg from {}", init.display());
    }
    let start = trainer.step();
    let bar = crate::cli::progress::progress_bar(c.steps, start);
    let reason = run_training(&mut trainer, &inputs.train, c.steps, budget, |s| {
        bar.set_position(s.step);
        bar.set_message(format!(
            "L {:.3} sim {:.3} (l2 {:.3} perc {:.3}) adv {:.3} D {:.3} {:.2}s/step",
            s.total, s.sim, s.l2, s.perceptual, s.adv, s.d_loss, s.seconds
        ));
    })?;
    bar.finish();
    let export = c.out.join("export");
    trainer.export(&export)?;
    report(
        "encoder E",
        reason,
        trainer.step(),
        start,
        &export,
        trainer.similarity().notes(),
    );
    Ok(())
}
