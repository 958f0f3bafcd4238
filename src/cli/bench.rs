//! `sketch2medi bench ...`: wall-clock timings of the main kernels on the selected device
//! (`--device cpu|cuda`). Criterion benches (`cargo bench`) are the CPU reference; this command
//! exists so that a CUDA build can be timed on a machine without a Rust toolchain.

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand};
use s2m_core::rng::{derive_seed, randn_vec, rng_from_seed};
use std::time::Instant;
use stylegan2::init::{init_discriminator, init_generator_frozen};
use stylegan2::train::{TensorDataset, TrainConfig, Trainer};
use stylegan2::{GeneratorInput, NoiseMode};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// StyleGAN2 generator forward, discriminator forward and one training step (random
    /// weights; timings do not depend on the values).
    Stylegan2(Stylegan2BenchArgs),
    /// The Sketch2MedI stages with seeded random weights (timing only): E forward, one refinement step
    /// (H + G with offsets), and the whole generate (E + ŷ_0 + T refinements).
    Pipeline(PipelineBenchArgs),
}

#[derive(Debug, Args)]
pub struct PipelineBenchArgs {
    /// phantom64 (the shipped CPU pipeline) or paper256 (IR-SE-50 E, paper_256 G, ResNet-34 H).
    #[arg(long, default_value = "phantom64")]
    preset: sketch2medi::timing::TimingPreset,
    /// Batch sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batch: Vec<usize>,
    #[arg(long, default_value_t = 5, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    iters: usize,
    #[arg(long, default_value_t = 1, value_parser = crate::cli::args::count0::<usize>, allow_hyphen_values = true)]
    warmup: usize,
    /// Refinement steps T of the full generate (0 to 16).
    #[arg(long, default_value_t = 3, value_parser = crate::cli::args::count0::<usize>, allow_hyphen_values = true)]
    steps: usize,
}

#[derive(Debug, Args)]
pub struct Stylegan2BenchArgs {
    /// Model preset (phantom_64, paper_256, tiny_fixture) or a JSON config file.
    #[arg(long, default_value = "paper_256")]
    model: String,
    /// Batch sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batch: Vec<usize>,
    /// Timed repetitions per measurement (after `--warmup` untimed ones).
    #[arg(long, default_value_t = 10, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    iters: usize,
    #[arg(long, default_value_t = 2, value_parser = crate::cli::args::count0::<usize>, allow_hyphen_values = true)]
    warmup: usize,
    /// Also time training steps (G and D updates, lazy R1 every 16 steps included).
    #[arg(long)]
    train_step: bool,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Stylegan2(args) => stylegan2_bench(args),
        BenchCommand::Pipeline(args) => pipeline_bench(args),
    }
}

/// Mean and minimum seconds of `iters` calls of `f` after `warmup` calls, synchronising the
/// device after each call so that asynchronous (CUDA) work is counted.
pub fn time_it(
    device: &Device,
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    anyhow::ensure!(iters > 0, "--iters must be at least 1");
    for _ in 0..warmup {
        f()?;
        device.synchronize()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    Ok((mean, min))
}

fn report(what: &str, batch: usize, (mean, min): (f64, f64)) {
    println!(
        "{what:<28} batch {batch:>3}: mean {:>9.2} ms  min {:>9.2} ms  ({:.1} images/s)",
        mean * 1e3,
        min * 1e3,
        batch as f64 / mean
    );
}

fn stylegan2_bench(args: Stylegan2BenchArgs) -> anyhow::Result<()> {
    let cfg = crate::cli::stylegan2::model_config(&args.model)?;
    let device = crate::cli::device()?;
    println!(
        "device {:?}, model {} ({} px, style_dim {}), {} timed runs after {} warm-up",
        device, args.model, cfg.size, cfg.style_dim, args.iters, args.warmup
    );
    // The forward is timed as inference runs it: plain tensors (a loaded checkpoint), so the
    // CPU inference kernels apply; the training step below uses the Var-backed models.
    let g = init_generator_frozen(&cfg, &mut rng_from_seed(0), DType::F32, &device)?;
    let (d, _dv) = init_discriminator(&cfg, &mut rng_from_seed(1), DType::F32, &device)?;
    let size = cfg.size as usize;
    for &b in &args.batch {
        anyhow::ensure!(
            (1..=crate::cli::generate::MAX_BATCH).contains(&b),
            "--batch sizes must lie in 1..={}",
            crate::cli::generate::MAX_BATCH
        );
        let z = randn_vec(
            &mut rng_from_seed(derive_seed(2, 0, b as u64)),
            b * cfg.style_dim,
        );
        let z = Tensor::from_vec(z, (b, cfg.style_dim), &device)?;
        let input = GeneratorInput::z(vec![z]).with_noise(NoiseMode::Const);
        let t = time_it(&device, args.warmup, args.iters, || {
            g.forward(&input)?;
            Ok(())
        })?;
        report("generator forward", b, t);
        let x = randn_vec(&mut rng_from_seed(3), b * 3 * size * size);
        let x = Tensor::from_vec(x, (b, 3, size, size), &device)?;
        let t = time_it(&device, args.warmup, args.iters, || {
            d.forward(&x)?;
            Ok(())
        })?;
        report("discriminator forward", b, t);
        if args.train_step {
            let dir = tempfile::tempdir().context("creating a temporary run folder")?;
            let n = (4 * b).max(16);
            let imgs = randn_vec(&mut rng_from_seed(4), n * 3 * size * size);
            let data = TensorDataset {
                images: Tensor::from_vec(imgs, (n, 3, size, size), &device)?.clamp(-1f32, 1f32)?,
            };
            let tcfg = TrainConfig {
                model: cfg.clone(),
                batch: b,
                schedule: s2m_train::Schedule::default().only_at_end(),
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::open(tcfg, dir.path(), &device)?;
            // 16 steps hold one lazy R1 (and path-length) step, as in a real run.
            let t = time_it(&device, 1, args.iters.max(16), || {
                trainer.train_step(&data)?;
                Ok(())
            })?;
            report("training step (G+D)", b, t);
        }
    }
    Ok(())
}

fn pipeline_bench(args: PipelineBenchArgs) -> anyhow::Result<()> {
    let device = crate::cli::device()?;
    anyhow::ensure!(
        args.steps <= sketch2medi::pipeline::MAX_STEPS,
        "--steps {}: at most {} refinement steps",
        args.steps,
        sketch2medi::pipeline::MAX_STEPS
    );
    let m = sketch2medi::timing::TimingModels::new(args.preset, &device)?;
    println!(
        "device {:?}, preset {:?} ({} px), {} timed runs after {} warm-up",
        device, args.preset, m.size, args.iters, args.warmup
    );
    for &b in &args.batch {
        anyhow::ensure!(
            (1..=crate::cli::generate::MAX_BATCH).contains(&b),
            "--batch sizes must lie in 1..={}",
            crate::cli::generate::MAX_BATCH
        );
        let x = m.sketches(b)?;
        let t = time_it(&device, args.warmup, args.iters, || {
            m.encode(&x)?;
            Ok(())
        })?;
        report("E forward", b, t);
        let w = m.encode(&x)?;
        let y0 = m.synthesize(&w)?;
        let t = time_it(&device, args.warmup, args.iters, || {
            m.refinement_step(&x, &w, &y0)?;
            Ok(())
        })?;
        report("one refinement (H + G)", b, t);
        let t = time_it(&device, args.warmup, args.iters, || {
            m.generate(&x, args.steps)?;
            Ok(())
        })?;
        report(&format!("generate (E + {} steps)", args.steps), b, t);
    }
    Ok(())
}
