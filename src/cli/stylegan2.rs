//! `sketch2medi stylegan2 ...`: train the generator G on a dataset folder, sample from it.

use crate::cli::progress;
use anyhow::Context;
use candle_core::Device;
use clap::{Args, Subcommand};
use pharynx_phantom::layout::Split;
use pharynx_phantom::{DatasetSource, Loader, LoaderConfig};
use std::path::PathBuf;
use stylegan2::StyleGan2Config;
use stylegan2::train::{ImageDataset, TrainConfig, TrainError, Trainer};

#[derive(Debug, Subcommand)]
pub enum StyleGan2Command {
    /// Train G (and D) on a phantom dataset folder or any folder of images; resumes from the
    /// latest checkpoint in --out.
    Train(TrainArgs),
    /// Write images sampled from a trained generator (fixed seeds, constant noise).
    Sample(SampleArgs),
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Generator safetensors (config in the .json beside it or in the header).
    #[arg(long)]
    weights: PathBuf,
    /// Output folder for the PNGs.
    #[arg(long)]
    out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 64, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    n: usize,
    /// Seed of the latents (image i uses z from derive_seed(seed, 0, i)).
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::count0::<u64>, allow_hyphen_values = true)]
    seed: u64,
    /// Truncation psi towards the mean latent (1 = none).
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    truncation: f64,
    /// Key prefix inside the file (e.g. g_ema for a rosinality conversion).
    #[arg(long, default_value = "")]
    prefix: String,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A phantom dataset folder (uses its `train` split) or a folder of PNG/JPEG images.
    #[arg(long)]
    data: PathBuf,
    /// Run folder: checkpoints/, samples/, log.csv, loss.png, and the exported generator.
    #[arg(long)]
    out: PathBuf,
    /// Model preset: phantom_64, paper_256, tiny_fixture; or a JSON config file.
    #[arg(long, default_value = "phantom_64")]
    model: String,
    /// Total steps (a resumed run continues up to this step).
    #[arg(long, default_value_t = 20_000, value_parser = crate::cli::args::count::<u64>, allow_hyphen_values = true)]
    steps: u64,
    #[arg(long, default_value_t = 8, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    batch: usize,
    #[arg(long, default_value_t = 0.002, value_parser = crate::cli::args::positive, allow_hyphen_values = true)]
    lr: f64,
    /// R1 weight gamma.
    #[arg(long, default_value_t = 10.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    r1: f64,
    /// Path-length weight (0 disables it).
    #[arg(long, default_value_t = 2.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    path_regularize: f64,
    #[command(flatten)]
    schedule: crate::cli::encoder::ScheduleArgs,
}

pub fn run(cmd: StyleGan2Command) -> anyhow::Result<()> {
    match cmd {
        StyleGan2Command::Train(args) => train(args),
        StyleGan2Command::Sample(args) => sample(args),
    }
}

/// Resolves `--model`: a preset name or a JSON file.
pub fn model_config(name: &str) -> anyhow::Result<StyleGan2Config> {
    Ok(match name {
        "phantom_64" => StyleGan2Config::phantom_64(),
        "paper_256" => StyleGan2Config::paper_256(),
        "tiny_fixture" => StyleGan2Config::tiny_fixture(),
        path => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("--model {path}: not a preset (phantom_64, paper_256, tiny_fixture) and not a readable JSON file")
            })?;
            serde_json::from_str(&text)
                .with_context(|| format!("--model {path}: bad JSON config"))?
        }
    })
}

/// The phantom loader as GAN training data (resized to the generator's size).
struct LoaderImages(Loader);

impl ImageDataset for LoaderImages {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn load(&self, indices: &[usize], device: &Device) -> Result<candle_core::Tensor, TrainError> {
        let batch = self
            .0
            .batch(indices)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        Ok(batch.images.to_device(device)?)
    }
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let model = model_config(&args.model)?;
    let source = if args.data.join(pharynx_phantom::layout::MANIFEST).exists() {
        DatasetSource::phantom(&args.data, Split::Train)?
    } else {
        DatasetSource::image_folder(&args.data, None, None)?
    };
    let loader = Loader::new(
        source,
        LoaderConfig {
            batch_size: args.batch,
            resize_to: Some(model.size),
            ..LoaderConfig::default()
        },
        &Device::Cpu,
    )?;
    let cfg = TrainConfig {
        model,
        batch: args.batch,
        lr: args.lr,
        r1_gamma: args.r1,
        path_regularize: args.path_regularize,
        schedule: args.schedule.to_schedule(),
        ..TrainConfig::default()
    };
    let device = crate::cli::device()?;
    let mut trainer = Trainer::open(cfg, &args.out, &device)
        .with_context(|| format!("opening the run in {}", args.out.display()))?;
    progress::print_resume_notes(trainer.resume_report());
    let start = trainer.step();
    let bar = progress::progress_bar(args.steps, start);
    let data = LoaderImages(loader);
    let budget = crate::cli::encoder::budget(args.schedule.max_minutes)?;
    trainer.train_for(&data, args.steps, budget, |s| {
        bar.set_position(s.step);
        bar.set_message(format!(
            "D {:.3} G {:.3} real {:+.2} fake {:+.2} {:.2}s/step",
            s.d_loss, s.g_loss, s.real_score, s.fake_score, s.seconds
        ));
    })?;
    bar.finish();
    let export = args.out.join("generator.safetensors");
    trainer.export_generator(&export)?;
    println!(
        "trained to step {} (from {start}); G_ema: {} (+ .json config); samples in {}",
        trainer.step(),
        export.display(),
        args.out.join("samples").display()
    );
    Ok(())
}

fn sample(args: SampleArgs) -> anyhow::Result<()> {
    use s2m_core::rng::{derive_seed, randn_vec, rng_from_seed};
    use stylegan2::{GeneratorInput, NoiseMode};
    anyhow::ensure!(args.n > 0, "--n must be at least 1");
    let device = crate::cli::device()?;
    let ck = stylegan2::Checkpoint::open(&args.weights)
        .with_context(|| format!("opening {}", args.weights.display()))?;
    let g = ck.generator(&args.prefix, candle_core::DType::F32, &device)?;
    let s = g.config().style_dim;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mean = if args.truncation < 1.0 {
        Some(g.mean_latent(4096, &mut rng_from_seed(derive_seed(args.seed, 1, 0)))?)
    } else {
        None
    };
    let bar = progress::bar(args.n as u64, progress::PLAIN);
    let mut done = 0;
    while done < args.n {
        let b = (args.n - done).min(16);
        let z: Vec<f32> = (done..done + b)
            .flat_map(|i| randn_vec(&mut rng_from_seed(derive_seed(args.seed, 0, i as u64)), s))
            .collect();
        let z = candle_core::Tensor::from_vec(z, (b, s), &device)?;
        let mut input = GeneratorInput::z(vec![z]).with_noise(NoiseMode::Const);
        if let Some(m) = &mean {
            input = input.with_truncation(args.truncation, m.clone());
        }
        let images = g.forward(&input)?.image.clamp(-1f32, 1f32)?;
        for (k, img) in s2m_core::imageio::tensor_to_rgb_batch(&images)?
            .iter()
            .enumerate()
        {
            s2m_core::imageio::save_png(args.out.join(format!("{:06}.png", done + k)), img)?;
        }
        done += b;
        bar.set_position(done as u64);
    }
    bar.finish_and_clear();
    println!("wrote {} images to {}", args.n, args.out.display());
    Ok(())
}
