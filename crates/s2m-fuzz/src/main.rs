//! `s2m-fuzz`: runs the seeded mutation campaign of [`s2m_fuzz`] on one or all targets and
//! writes every input that made a target panic to `--crashes` (exit status 1 when any did).
//!
//! ```text
//! cargo run --release -p s2m-fuzz -- --target all --count 1000000 --seed 1
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use s2m_fuzz::{Target, campaign};

#[derive(Parser)]
#[command(about = "Seeded mutation fuzzing of sketch2medi's input parsers")]
struct Args {
    /// sketch, pipeline_json, checkpoint, safetensors or all.
    #[arg(long, default_value = "all")]
    target: String,
    /// Inputs per target.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Seed of the mutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for the inputs that made a target panic (`<target>/<index>.bin`).
    #[arg(long, default_value = "fuzz-crashes")]
    crashes: PathBuf,
    /// Run in chunks of this many inputs (each seeded from `--seed` and its index), printing
    /// the running totals after each: long runs show progress and keep partial results.
    #[arg(long, default_value_t = 50_000)]
    chunk: u64,
    /// Write each chunk's slowest input to `--crashes` when it took longer than this (ms).
    #[arg(long, default_value_t = 2000.0)]
    slow_ms: f64,
    /// Run the target once on each of these files (no mutation) and print the outcome and time.
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
    /// Extra corpus: a folder of files per target (`<corpus>/<target>/*`).
    #[arg(long)]
    corpus: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let targets: Vec<Target> = if args.target == "all" {
        Target::ALL.to_vec()
    } else {
        vec![Target::from_name(&args.target).with_context(|| {
            format!(
                "--target {}: use all or one of sketch, pipeline_json, checkpoint, safetensors",
                args.target
            )
        })?]
    };
    if !args.replay.is_empty() {
        for target in &targets {
            for path in &args.replay {
                let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
                let t = std::time::Instant::now();
                let outcome = target.run(&bytes);
                println!(
                    "{} {}: {:.1} ms, {}",
                    target.name(),
                    path.display(),
                    t.elapsed().as_secs_f64() * 1e3,
                    match outcome {
                        Ok(()) => "accepted".to_string(),
                        Err(e) => format!("refused: {e}"),
                    }
                );
            }
        }
        return Ok(());
    }
    let mut failed = false;
    for target in targets {
        let mut extra = Vec::new();
        if let Some(dir) = &args.corpus {
            let dir = dir.join(target.name());
            if dir.is_dir() {
                for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
                    let path = entry?.path();
                    extra.push(std::fs::read(&path).with_context(|| path.display().to_string())?);
                }
            }
        }
        anyhow::ensure!(args.chunk > 0, "--chunk must be at least 1");
        let (mut inputs, mut accepted, mut seconds, mut slowest, mut found) = (0, 0, 0.0, 0f64, 0);
        let mut index = 0;
        while inputs < args.count {
            let n = args.chunk.min(args.count - inputs);
            let seed = s2m_core::rng::derive_seed(args.seed, 0xF022, index);
            let report = campaign(target, n, seed, &extra);
            inputs += report.inputs;
            accepted += report.accepted;
            seconds += report.seconds;
            slowest = slowest.max(report.slowest_ms);
            if !report.panics.is_empty() {
                failed = true;
                let dir = args.crashes.join(target.name());
                std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
                for f in &report.panics {
                    let path = dir.join(format!("{found:04}.bin"));
                    std::fs::write(&path, &f.input).with_context(|| path.display().to_string())?;
                    println!("  panic: {} -> {}", f.message, path.display());
                    found += 1;
                }
            }
            if report.slowest_ms > args.slow_ms {
                let dir = args.crashes.join(target.name());
                std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
                let path = dir.join(format!("slow-{index:04}.bin"));
                std::fs::write(&path, &report.slowest_input)
                    .with_context(|| path.display().to_string())?;
                println!("  slow: {:.0} ms -> {}", report.slowest_ms, path.display());
            }
            println!(
                "{}: {inputs}/{} inputs (seed {}), {accepted} accepted, {} refused, {found} \
                 panics; {seconds:.2} s, slowest input {slowest:.1} ms (this chunk {:.1} ms), \
                 peak RSS {}",
                target.name(),
                args.count,
                args.seed,
                inputs - accepted - found,
                report.slowest_ms,
                report
                    .peak_rss_mib
                    .map_or("n/a".into(), |m| format!("{m:.0} MiB"))
            );
            index += 1;
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
