//! `sketch2medi phantom ...`: dataset folders and contact sheets of the pharynx phantom.

use crate::cli::progress::StageBars;
use anyhow::Context;
use clap::{Args, Subcommand};
use pharynx_phantom::{BuildConfig, build_dataset, contact_sheet};
use s2m_core::imageio::save_png;
use sketch_synth::SketchConfig;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum PhantomCommand {
    /// Write a dataset folder with the paper's splits (see docs/DATASET.md).
    Build(BuildArgs),
    /// Draw a contact sheet: image | mask overlay | synthesized sketch | 2 free-hand sketches.
    ContactSheet(SheetArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Output folder; must be absent or empty unless --force.
    #[arg(long)]
    out: PathBuf,
    /// Fraction of the paper's counts (1.0 = 60,000 images, 1,600/400 segmentation split,
    /// 495 free-hand sketches); at most 100.
    #[arg(long, default_value_t = 0.01, value_parser = crate::cli::args::positive, allow_hyphen_values = true)]
    scale: f64,
    /// Square image size in pixels (a multiple of 8, from 32 to 4096).
    #[arg(long, default_value_t = 256, value_parser = crate::cli::args::count::<u32>, allow_hyphen_values = true)]
    size: u32,
    /// Base seed: the same seed always gives the same folder, byte for byte.
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::count0::<u64>, allow_hyphen_values = true)]
    seed: u64,
    /// Stroke width of the synthesized sketches, in pixels at 256 px.
    #[arg(long, default_value_t = SketchConfig::default().stroke_width, value_parser = crate::cli::args::positive_f32, allow_hyphen_values = true)]
    stroke_width: f32,
    /// Replace a non-empty output folder (only once the new one is complete).
    #[arg(long)]
    force: bool,
    /// Also write a contact sheet of 8 samples to <out>/contact_sheet.png.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    contact_sheet: bool,
}

#[derive(Debug, Args)]
pub struct SheetArgs {
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::count0::<u64>, allow_hyphen_values = true)]
    seed: u64,
    /// Tile size in pixels (a multiple of 8, from 32 to 4096).
    #[arg(long, default_value_t = 256, value_parser = crate::cli::args::count::<u32>, allow_hyphen_values = true)]
    size: u32,
    /// Number of samples (rows, 1 to 256).
    #[arg(long, default_value_t = 8, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    rows: usize,
}

pub fn run(cmd: PhantomCommand) -> anyhow::Result<()> {
    match cmd {
        PhantomCommand::Build(args) => build(args),
        PhantomCommand::ContactSheet(args) => sheet(args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    // The library checks these too; here the message names the option first.
    pharynx_phantom::check_size(args.size).context("--size")?;
    pharynx_phantom::Counts::scaled(args.scale)?;
    let sketch = SketchConfig {
        stroke_width: args.stroke_width,
        ..SketchConfig::default()
    };
    let cfg = BuildConfig {
        out: args.out.clone(),
        scale: args.scale,
        size: args.size,
        seed: args.seed,
        force: args.force,
        sketch: sketch.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let bars = StageBars::new(
        "{spinner} {msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    );
    let report = build_dataset(&cfg, &bars)
        .with_context(|| format!("building the phantom dataset in {}", args.out.display()))?;
    let c = report.counts;
    println!(
        "wrote {} ({} train, {}/{} seg train/val, {} free-hand) in {:.1} s: {:.0} images/s",
        args.out.display(),
        c.train,
        c.seg_train,
        c.seg_val,
        c.freehand,
        report.seconds,
        report.images_per_second
    );
    println!(
        "visible tonsils 0/1/2: {:?}; empty synthesized sketches: {}",
        report.tonsil_histogram, report.empty_sketches
    );
    println!(
        "free-hand styles (mean chamfer to the true contours, px at {} px):",
        args.size
    );
    for s in &report.styles {
        println!(
            "  {:<22} {:>3} sketches  {:>6.2} px  (configured {:.1}-{:.1})",
            s.style,
            s.sketches,
            s.mean_chamfer_px,
            s.expected_chamfer_px[0],
            s.expected_chamfer_px[1]
        );
    }
    if args.contact_sheet {
        let path = args.out.join("contact_sheet.png");
        let sheet = contact_sheet(args.seed, args.size, 8, &sketch)?;
        save_png(&path, &sheet)?;
        println!("contact sheet: {}", path.display());
    }
    Ok(())
}

fn sheet(args: SheetArgs) -> anyhow::Result<()> {
    pharynx_phantom::check_size(args.size).context("--size")?;
    let sheet = contact_sheet(args.seed, args.size, args.rows, &SketchConfig::default())
        .context("--rows")?;
    save_png(&args.out, &sheet)?;
    println!("contact sheet: {}", args.out.display());
    Ok(())
}
