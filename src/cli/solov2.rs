//! `sketch2medi solov2 ...`: train S on a phantom dataset's `seg_train` split, evaluate its DICE
//! on `seg_val`, and synthesize the training sketches of a whole dataset folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::progress::bar;
use anyhow::Context;
use clap::{Args, Subcommand};
use pharynx_phantom::DatasetSource;
use pharynx_phantom::layout::Split;
use rayon::prelude::*;
use sketch_synth::SketchConfig;
use sketch_synth::solov2::{
    AugmentConfig, BackboneNorm, EmptySketchCounter, SegDataset, SoloV2Config, StopReason,
    TrainConfig, Trainer, sketch_from_prediction,
};
use sketch2medi::segmenter::{PhantomSegDataset, SoloV2Segmenter, evaluate_dice, sketch_path};

#[derive(Debug, Subcommand)]
pub enum SoloV2Command {
    /// Train S on the `seg_train` split (resumes from <out>/checkpoints), export it to
    /// <out>/export, then report its DICE on `seg_val`.
    Train(TrainArgs),
    /// DICE of trained weights on a split (per class and mean) against the ground truth.
    Eval(EvalArgs),
    /// Synthesize the sketches of a dataset split (contours of instances >= threshold).
    Sketches(SketchesArgs),
    /// Copy an export folder with its weights stored as f16 (half the size) or f32.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Export folder to read.
    #[arg(long)]
    weights: PathBuf,
    /// Export folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Storage type: f16 or f32.
    #[arg(long, default_value = "f16")]
    dtype: String,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder written by `sketch2medi phantom build`.
    #[arg(long)]
    data: PathBuf,
    /// Run folder (checkpoints/, log.csv, loss.png, export/, val_dice.json).
    #[arg(long)]
    out: PathBuf,
    /// Network preset: phantom_r18 (CPU), light_r18, default_r50, tiny_r18.
    #[arg(long, default_value = "phantom_r18")]
    preset: String,
    /// Square input size (multiple of 32); the preset's scale ranges are rescaled to it.
    #[arg(long, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    input_size: Option<usize>,
    /// Length of the schedule in steps (lr decays at 3/4 and 11/12 of it).
    #[arg(long, default_value_t = 3000, value_parser = crate::cli::args::count::<u64>, allow_hyphen_values = true)]
    steps: u64,
    /// Images per step.
    #[arg(long, default_value_t = 8, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    batch: usize,
    /// Peak AdamW learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = crate::cli::args::positive, allow_hyphen_values = true)]
    lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 200, value_parser = crate::cli::args::count0::<u64>, allow_hyphen_values = true)]
    warmup: u64,
    /// Base seed.
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::count0::<u64>, allow_hyphen_values = true)]
    seed: u64,
    /// Stop at a step boundary before this wall-clock budget (minutes), checkpoint and export.
    #[arg(long, value_parser = crate::cli::args::positive, allow_hyphen_values = true)]
    max_minutes: Option<f64>,
    /// torchvision-named ResNet weights (safetensors) for the backbone; then BatchNorm is
    /// frozen and stage 1 too, as the reference. Without it the backbone trains from scratch
    /// with batch statistics.
    #[arg(long)]
    backbone_weights: Option<PathBuf>,
    /// Turn augmentation off.
    #[arg(long)]
    no_augment: bool,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 200, value_parser = crate::cli::args::count::<u64>, allow_hyphen_values = true)]
    checkpoint_every: u64,
    /// Skip the validation DICE at the end.
    #[arg(long)]
    no_eval: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Export folder (solov2.safetensors + solov2.json).
    #[arg(long)]
    weights: PathBuf,
    /// Dataset folder.
    #[arg(long)]
    data: PathBuf,
    /// Split to score (seg_val, seg_train, train, freehand).
    #[arg(long, default_value = "seg_val")]
    split: String,
    /// Score threshold of the instances that make the label maps (the paper's delta).
    #[arg(long, default_value_t = 0.35, value_parser = crate::cli::args::probability, allow_hyphen_values = true)]
    threshold: f32,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    batch: usize,
    /// Also write the result as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SketchesArgs {
    /// Export folder (solov2.safetensors + solov2.json).
    #[arg(long)]
    weights: PathBuf,
    /// Dataset folder.
    #[arg(long)]
    data: PathBuf,
    /// Output folder: <id>.png per image and report.json.
    #[arg(long)]
    out: PathBuf,
    /// Split whose images are sketched (train = the generation set).
    #[arg(long, default_value = "train")]
    split: String,
    /// Instances with a score below this are not drawn (the paper's delta).
    #[arg(long, default_value_t = 0.35, value_parser = crate::cli::args::probability, allow_hyphen_values = true)]
    threshold: f32,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    batch: usize,
    /// Only the first N images (timing runs).
    #[arg(long, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    limit: Option<usize>,
}

pub fn run(cmd: SoloV2Command) -> anyhow::Result<()> {
    match cmd {
        SoloV2Command::Train(a) => train(a),
        SoloV2Command::Eval(a) => eval(a),
        SoloV2Command::Sketches(a) => sketches(a),
        SoloV2Command::Convert(a) => convert(a),
    }
}

fn convert(a: ConvertArgs) -> anyhow::Result<()> {
    let dtype = match a.dtype.as_str() {
        "f16" => candle_core::DType::F16,
        "f32" => candle_core::DType::F32,
        other => anyhow::bail!("--dtype {other}: use f16 or f32"),
    };
    let info = sketch_synth::solov2::convert_export(&a.weights, &a.out, dtype)?;
    println!(
        "wrote {} ({} weights, {} steps)",
        a.out.display(),
        info.weights_dtype,
        info.steps
    );
    Ok(())
}

fn split(name: &str) -> anyhow::Result<Split> {
    Split::from_name(name).ok_or_else(|| {
        anyhow::anyhow!("unknown split `{name}` (train, seg_train, seg_val, freehand)")
    })
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let mut model = SoloV2Config::preset(&a.preset)?;
    if let Some(s) = a.input_size {
        model = model.with_input_size(s);
    }
    let pretrained = a.backbone_weights.is_some();
    let cfg = TrainConfig {
        model,
        batch: a.batch,
        steps: a.steps,
        lr: a.lr,
        warmup_steps: a.warmup,
        schedule: s2m_train::Schedule {
            seed: a.seed,
            checkpoint_every: a.checkpoint_every,
            ..TrainConfig::default().schedule
        },
        frozen_stages: if pretrained { 1 } else { 0 },
        backbone_norm: if pretrained {
            BackboneNorm::Frozen
        } else {
            BackboneNorm::BatchStats
        },
        augment: if a.no_augment {
            AugmentConfig::none()
        } else {
            AugmentConfig::default()
        },
        ..TrainConfig::default()
    };
    let device = crate::cli::device()?;
    let data = PhantomSegDataset::open(&a.data, Split::SegTrain)
        .with_context(|| format!("reading the seg_train split of {}", a.data.display()))?;
    let mut trainer = Trainer::open(cfg, &a.out, a.backbone_weights.as_deref(), &device)
        .with_context(|| format!("opening the run in {}", a.out.display()))?;
    super::progress::print_resume_notes(trainer.resume_report());
    println!(
        "SOLOv2 {} at {} px on {} images ({}), step {} of {}",
        a.preset,
        trainer.config().model.input_size,
        data.len(),
        data.describe(),
        trainer.step(),
        a.steps
    );
    let pb = bar(
        a.steps,
        "[{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
    );
    pb.set_position(trainer.step());
    let budget = a
        .max_minutes
        .map(|m| Duration::from_secs_f64(m.max(0.0) * 60.0));
    let reason = trainer.train(&data, a.steps, budget, |s| {
        pb.set_position(s.step);
        pb.set_message(format!(
            "loss {:.3} (cls {:.3} mask {:.3}) lr {:.1e}",
            s.loss, s.cls, s.mask, s.lr
        ));
    })?;
    pb.finish();
    if reason == StopReason::Budget {
        println!("stopped at step {} (time budget)", trainer.step());
    }
    let export = a.out.join("export");
    let info = trainer.export(&export, &data.describe())?;
    println!(
        "exported {} steps ({:.1} min of training) to {}",
        info.steps,
        info.train_seconds / 60.0,
        export.display()
    );
    if !a.no_eval {
        let report = validate(&export, &a.data, Split::SegVal, 0.35, a.batch)?;
        let path = a.out.join("val_dice.json");
        s2m_core::fsio::atomic_write(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn validate(
    weights: &Path,
    data: &Path,
    split: Split,
    threshold: f32,
    batch: usize,
) -> anyhow::Result<sketch2medi::segmenter::ValidationDice> {
    let device = crate::cli::device()?;
    let seg = SoloV2Segmenter::load(weights, threshold, &device)?;
    let ds = PhantomSegDataset::open(data, split)?;
    let pb = bar(
        ds.len() as u64,
        "DICE [{elapsed_precise}] {wide_bar} {pos}/{len}",
    );
    let r = evaluate_dice(&seg, &ds, ds.ids(), batch, |n| pb.set_position(n as u64))?;
    pb.finish();
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.4}", v));
    println!("DICE on {} ({} images):", ds.describe(), r.summary.images);
    for (class, v) in &r.summary.per_class {
        println!("  {class:<16} {}", fmt(*v));
    }
    println!(
        "  {:<16} {:.4} (std {:.4})",
        "mean", r.summary.mean, r.summary.std
    );
    println!(
        "  empty predictions: {} ; {:.1} ms per image (batch {batch})",
        r.empty_predictions,
        r.seconds_per_image * 1e3
    );
    Ok(r)
}

fn eval(a: EvalArgs) -> anyhow::Result<()> {
    let r = validate(&a.weights, &a.data, split(&a.split)?, a.threshold, a.batch)?;
    if let Some(path) = a.out {
        s2m_core::fsio::atomic_write(&path, serde_json::to_string_pretty(&r)?.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `report.json` of a sketch run (also read by `encoder train --sketches`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SketchReport {
    pub data: String,
    pub split: String,
    pub weights: String,
    pub threshold: f32,
    pub images: usize,
    pub empty: usize,
    pub empty_ids: Vec<String>,
    pub seconds: f64,
    pub ms_per_image: f64,
}

fn sketches(a: SketchesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.batch > 0, "--batch must be at least 1");
    let sketch_cfg = SketchConfig {
        score_threshold: a.threshold,
        ..SketchConfig::default()
    };
    sketch_cfg.validate()?;
    let device = crate::cli::device()?;
    let seg = SoloV2Segmenter::load(&a.weights, a.threshold, &device)?;
    let source = DatasetSource::phantom(&a.data, split(&a.split)?)?;
    let mut items = source.items().to_vec();
    if let Some(n) = a.limit {
        items.truncate(n);
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let counter = EmptySketchCounter::default();
    let empty_ids = std::sync::Mutex::new(Vec::new());
    let pb = bar(
        items.len() as u64,
        "sketches [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
    );
    let start = Instant::now();
    for chunk in items.chunks(a.batch) {
        let images = chunk
            .par_iter()
            .map(|it| s2m_core::imageio::load_rgb(&it.image))
            .collect::<Result<Vec<_>, _>>()?;
        let preds = seg.model().predict(&images)?;
        preds
            .into_par_iter()
            .zip(chunk.par_iter().zip(&images))
            .try_for_each(|(p, (it, img))| -> anyhow::Result<()> {
                let s = sketch_from_prediction(p, img.dimensions(), &sketch_cfg)?;
                counter.record(&s);
                if s.is_empty()
                    && let Ok(mut v) = empty_ids.lock()
                {
                    v.push(it.id.clone());
                }
                s2m_core::imageio::save_png(sketch_path(&a.out, &it.id), &s.sketch)?;
                Ok(())
            })?;
        pb.inc(chunk.len() as u64);
        let (_, empty) = counter.counts();
        pb.set_message(format!("{empty} empty"));
    }
    pb.finish();
    let seconds = start.elapsed().as_secs_f64();
    let (total, empty) = counter.counts();
    let mut ids = empty_ids.into_inner().unwrap_or_default();
    ids.sort();
    let report = SketchReport {
        data: a.data.display().to_string(),
        split: a.split.clone(),
        weights: a.weights.display().to_string(),
        threshold: a.threshold,
        images: total,
        empty,
        empty_ids: ids,
        seconds,
        ms_per_image: seconds * 1e3 / total.max(1) as f64,
    };
    let path = a.out.join("report.json");
    s2m_core::fsio::atomic_write(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!(
        "{total} sketches in {seconds:.1} s ({:.1} ms/image); {empty} empty (no instance >= {}); \
         wrote {}",
        report.ms_per_image,
        a.threshold,
        path.display()
    );
    if empty > 0 {
        eprintln!("warning: {empty} empty predictions (blank sketches), listed in report.json");
    }
    Ok(())
}
