//! Subcommands of the `sketch2medi` binary: thin layers over the library crates.

mod evaluate;
mod phantom;
mod stylegan2;

use clap::{Parser, Subcommand};

/// Sketch2MedI: realistic pharyngeal images from free-hand sketches.
#[derive(Debug, Parser)]
#[command(name = "sketch2medi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The procedural pharynx phantom: build dataset folders, draw contact sheets.
    #[command(subcommand)]
    Phantom(phantom::PhantomCommand),
    /// Table I metrics (FID/FD, KID, TReS, CLIP-IQA, DICE, LPIPS, DISTS, ST-LPIPS) over
    /// folders of generated images; writes report.json and report.md.
    Evaluate(evaluate::EvaluateArgs),
    /// The StyleGAN2 generator G: training.
    #[command(subcommand)]
    Stylegan2(stylegan2::StyleGan2Command),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Phantom(cmd) => phantom::run(cmd),
        Command::Stylegan2(cmd) => stylegan2::run(cmd),
        Command::Evaluate(args) => evaluate::run(args),
    }
}

/// The compute device: CUDA device 0 when built with `--features cuda` and
/// `SKETCH2MEDI_DEVICE=cuda`, else the CPU.
pub fn device() -> anyhow::Result<candle_core::Device> {
    match std::env::var("SKETCH2MEDI_DEVICE").as_deref() {
        Ok("cuda") => {
            #[cfg(feature = "cuda")]
            {
                Ok(candle_core::Device::new_cuda(0)?)
            }
            #[cfg(not(feature = "cuda"))]
            {
                anyhow::bail!("SKETCH2MEDI_DEVICE=cuda needs a build with --features cuda")
            }
        }
        Ok("cpu") | Err(_) => Ok(candle_core::Device::Cpu),
        Ok(other) => anyhow::bail!("SKETCH2MEDI_DEVICE={other}: use cpu or cuda"),
    }
}
