//! Subcommands of the `sketch2medi` binary: thin layers over the library crates.

mod args;
mod bench;
mod encoder;
mod evaluate;
mod generate;
mod phantom;
mod progress;
mod refiner;
mod solov2;
mod stylegan2;

use clap::{Parser, Subcommand};

/// Sketch2MedI: realistic pharyngeal images from free-hand sketches.
#[derive(Debug, Parser)]
#[command(name = "sketch2medi", version, about)]
pub struct Cli {
    /// Compute device: cpu (default) or cuda (needs a build with `--features cuda`). Overrides
    /// the SKETCH2MEDI_DEVICE environment variable.
    #[arg(long, global = true)]
    device: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The `--device` of this process, set once by [`run`] before any subcommand starts.
static DEVICE_ARG: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: a sketch in, a synthetic throat image out (E + T refinements by H).
    Generate(generate::GenerateArgs),
    /// The procedural pharynx phantom: build dataset folders, draw contact sheets.
    #[command(subcommand)]
    Phantom(phantom::PhantomCommand),
    /// Table I metrics (FID/FD, KID, TReS, CLIP-IQA, DICE, LPIPS, DISTS, ST-LPIPS) over
    /// folders of generated images; writes report.json and report.md.
    Evaluate(evaluate::EvaluateArgs),
    /// The StyleGAN2 generator G: training.
    #[command(subcommand)]
    Stylegan2(stylegan2::StyleGan2Command),
    /// The SOLOv2 sketch synthesizer S: training, DICE evaluation, batch sketch synthesis.
    #[command(subcommand)]
    Solov2(solov2::SoloV2Command),
    /// Phase 1 of Sketch2MedI's training: the sketch encoder E (+ latent discriminator D_w).
    #[command(subcommand)]
    Encoder(encoder::EncoderCommand),
    /// Phase 2 of Sketch2MedI's training: the hypernetwork refiner H.
    #[command(subcommand)]
    Refiner(refiner::RefinerCommand),
    /// Wall-clock timings of the main models on the selected device (`--device cuda` too).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = DEVICE_ARG.set(cli.device);
    match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Phantom(cmd) => phantom::run(cmd),
        Command::Stylegan2(cmd) => stylegan2::run(cmd),
        Command::Solov2(cmd) => solov2::run(cmd),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Encoder(cmd) => encoder::run(cmd),
        Command::Refiner(cmd) => refiner::run(cmd),
    }
}

/// The compute device: CUDA device 0 when built with `--features cuda` and `--device cuda`
/// (or `SKETCH2MEDI_DEVICE=cuda`), else the CPU.
/// The device is created once and shared (each `Device::new_cuda` is a distinct device whose
/// tensors cannot mix with another's).
pub fn device() -> anyhow::Result<candle_core::Device> {
    static DEVICE: std::sync::OnceLock<candle_core::Device> = std::sync::OnceLock::new();
    if let Some(d) = DEVICE.get() {
        return Ok(d.clone());
    }
    let d = new_device()?;
    Ok(DEVICE.get_or_init(|| d).clone())
}

fn new_device() -> anyhow::Result<candle_core::Device> {
    let choice = match DEVICE_ARG.get().cloned().flatten() {
        Some(d) => Ok(d),
        None => std::env::var("SKETCH2MEDI_DEVICE"),
    };
    match choice.as_deref() {
        Ok("cuda") => {
            #[cfg(feature = "cuda")]
            {
                Ok(candle_core::Device::new_cuda(0)?)
            }
            #[cfg(not(feature = "cuda"))]
            {
                anyhow::bail!("device cuda needs a build with `--features cuda`")
            }
        }
        Ok("cpu") | Err(_) => Ok(candle_core::Device::Cpu),
        Ok(other) => anyhow::bail!("device {other:?}: use cpu or cuda"),
    }
}
